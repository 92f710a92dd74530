"""Find the OCI runtimes and check that each really starts a container here (probe once, remember)."""

from __future__ import annotations

import json
import os
import shutil

from berth.host.probe import RuntimeFacts
from berth.locks import FileLock
from berth.proc import run
from berth.storage.fsutil import atomic_write

RUNTIMES = ("crun", "runc")
HYBRID_REFUSAL = "cgroups in hybrid mode not supported"
# crun refuses a cgroup v1 host that also mounts a v2 hierarchy with controllers ("hybrid"). In a
# private mount namespace without that v2 mount it sees plain cgroup v1 and works; the container's
# own namespaces are created from there, so nothing else changes.
CRUN_HYBRID_WRAPPER = """#!/bin/sh
exec unshare --mount --propagation private -- /bin/sh -c \
  'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"' {crun} "$@"
"""
TRIAL_PREFIX = ".trial-"  # a trial container's bundle in the probe's cache directory
TEMP_TRIAL_PREFIX = "berth-trial-"  # one in the temp dir (no cache directory): then the probe's pid follows
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


def _sweep_dead_trials() -> None:
    """Remove the trial bundles in the temp dir whose probe (the pid in the name) is gone."""
    import re
    import tempfile

    tmp = tempfile.gettempdir()
    for n in os.listdir(tmp):
        m = re.fullmatch(TEMP_TRIAL_PREFIX + r"(\d+)-.*", n)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(tmp, n), ignore_errors=True)


def trial_run(path: str, work_dir: str | None = None) -> tuple[bool, str]:
    """Start a trial container with the runtime at path; its bundle is made in work_dir (a probe's
    cache directory, where the next probe removes it if this one is killed) or the temp dir."""
    busybox = _busybox()
    if busybox is None:
        return False, "not verified: no static busybox to start a trial container with (apt-get install busybox-static)"
    import tempfile

    if work_dir is None:
        _sweep_dead_trials()
    bundle = tempfile.mkdtemp(prefix=TRIAL_PREFIX if work_dir else f"{TEMP_TRIAL_PREFIX}{os.getpid()}-", dir=work_dir)
    cid = f"berth-probe-{os.urandom(6).hex()}"
    try:
        os.makedirs(f"{bundle}/rootfs/proc")
        os.makedirs(f"{bundle}/rootfs/dev")
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


def _write_hybrid_wrapper(cache_dir: str, crun: str) -> str:
    path = os.path.join(cache_dir, "crun-hybrid")
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(path, CRUN_HYBRID_WRAPPER.format(crun=crun).encode(), mode=0o755)
    os.chmod(path, 0o755)
    return path


def _probe(cache_dir: str | None) -> list[RuntimeFacts]:
    if cache_dir is None:
        return _probe_in(None)
    # one probe at a time per cache directory: a trial bundle found there was left by a probe
    # that died, and a second process finds the first one's answer instead of probing again
    with FileLock(os.path.join(cache_dir, "runtimes.lock")):
        for n in os.listdir(cache_dir):
            if n.startswith(TRIAL_PREFIX):
                shutil.rmtree(os.path.join(cache_dir, n), ignore_errors=True)
        return _probe_in(cache_dir)


def _probe_in(cache_dir: str | None) -> list[RuntimeFacts]:
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
            run_path = str(hit.get("run_path") or path)
            if os.access(run_path, os.X_OK):
                out.append(RuntimeFacts(name, run_path, str(hit.get("version", "")), bool(hit["works"]),
                                        str(hit["reason"])))
                continue
        cp = run([path, "--version"], check=False)
        version = cp.stdout.decode(errors="replace").splitlines()[0] if cp.stdout else ""
        works, reason = trial_run(path, cache_dir)
        run_path = path
        if not works and name == "crun" and HYBRID_REFUSAL in reason and cache_dir:
            wrapper = _write_hybrid_wrapper(cache_dir, path)
            w_works, w_reason = trial_run(wrapper, cache_dir)
            if w_works:
                works, run_path = True, wrapper
                reason = ("started a trial container in a private mount namespace without the cgroup v2 mount "
                          f"(crun alone refuses this host: {reason})")
        cached[name] = {"key": key, "works": works, "reason": reason, "version": version, "run_path": run_path}
        changed = True
        out.append(RuntimeFacts(name, run_path, version, works, reason))
    if cache_file and changed:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        atomic_write(cache_file, json.dumps(cached).encode())
    return out
