"""Find the OCI runtimes and check that each really starts a container here (probe once, remember)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from berth.host.probe import RuntimeFacts
from berth.proc import run
from berth.storage.fsutil import atomic_write

RUNTIMES = ("crun", "runc")
STATIC_BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _busybox() -> str | None:
    for p in STATIC_BUSYBOX:
        if os.path.exists(p):
            cp = run(["file", "-L", p], check=False) if shutil.which("file") else None
            if cp is None or b"statically linked" in cp.stdout or b"static-pie" in cp.stdout:
                return p
    return None


def _trial_config() -> dict[str, object]:
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/busybox", "true"],
                    "env": ["PATH=/"], "cwd": "/", "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "berth-probe",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")]},
    }


def trial_run(path: str) -> tuple[bool, str]:
    busybox = _busybox()
    if busybox is None:
        return False, "not verified: no static busybox to start a trial container with (apt-get install busybox-static)"
    bundle = tempfile.mkdtemp(prefix="berth-rt-")
    cid = f"berth-probe-{os.urandom(6).hex()}"
    try:
        os.makedirs(f"{bundle}/rootfs/proc")
        shutil.copy2(busybox, f"{bundle}/rootfs/busybox")
        with open(f"{bundle}/config.json", "w", encoding="utf-8") as f:
            json.dump(_trial_config(), f)
        cp = run([path, "run", "--bundle", bundle, cid], check=False, timeout=30)
        if cp.returncode == 0:
            return True, "started a trial container"
        err = (cp.stderr or cp.stdout).decode(errors="replace").strip().splitlines()
        return False, (err[-1] if err else f"exit {cp.returncode}")[:300]
    finally:
        run([path, "delete", "-f", cid], check=False, timeout=30)
        shutil.rmtree(bundle, ignore_errors=True)


_MEMO: dict[str | None, list[RuntimeFacts]] = {}


def probe_runtimes(cache_dir: str | None) -> list[RuntimeFacts]:
    """Each known runtime with its version and whether it starts a container on this host.

    The answer is remembered in cache_dir, keyed by the binary (path, size, mtime) and the boot,
    so only the first call after an upgrade or a reboot runs the trial container."""
    if cache_dir in _MEMO:
        return _MEMO[cache_dir]
    _MEMO[cache_dir] = _probe(cache_dir)
    return _MEMO[cache_dir]


def _probe(cache_dir: str | None) -> list[RuntimeFacts]:
    cache_file = os.path.join(cache_dir, "runtimes.json") if cache_dir else None
    cached: dict[str, dict[str, object]] = {}
    if cache_file and os.path.exists(cache_file):
        try:
            with open(cache_file, encoding="utf-8") as f:
                cached = json.load(f)
        except (OSError, ValueError):
            cached = {}
    out: list[RuntimeFacts] = []
    changed = False
    for name in RUNTIMES:
        path = shutil.which(name)
        if path is None:
            out.append(RuntimeFacts(name, None, reason=f"{name} is not installed (apt-get install {name})"))
            continue
        st = os.stat(path)
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{_boot_id()}"
        hit = cached.get(name)
        if hit and hit.get("key") == key:
            out.append(RuntimeFacts(name, path, str(hit.get("version", "")), bool(hit["works"]), str(hit["reason"])))
            continue
        cp = run([path, "--version"], check=False)
        version = cp.stdout.decode(errors="replace").splitlines()[0] if cp.stdout else ""
        works, reason = trial_run(path)
        cached[name] = {"key": key, "works": works, "reason": reason, "version": version}
        changed = True
        out.append(RuntimeFacts(name, path, version, works, reason))
    if cache_file and changed:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        atomic_write(cache_file, json.dumps(cached).encode())
    return out
