"""The OCI runtime (runc or crun) and its monitor (conmon)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from berth import faults, trace
from berth.errors import BerthError, InvalidInput
from berth.host.runtimes import probe_runtimes
from berth.proc import run

CONMON_API = "1"


class StartError(BerthError):
    """The runtime could not start the process; exit_code follows docker (126 / 127 / 125)."""

    def __init__(self, message: str) -> None:
        low = message.lower()
        self.exit_code = 125
        if low.startswith("exec:") or "exec: " in low:
            if "executable file not found" in low or "no such file or directory" in low:
                self.exit_code = 127
            elif "permission denied" in low or "exec format error" in low:
                self.exit_code = 126
        super().__init__(message)


def select(runroot: str, wanted: str | None) -> OCIRuntime:
    """crun where it really starts a container here, else runc; an explicit choice must work."""
    facts = probe_runtimes(runroot)
    by_name = {f.name: f for f in facts}
    if wanted:
        f = by_name.get(wanted)
        if f is None:
            raise InvalidInput(f"unknown runtime {wanted!r}: use one of {', '.join(by_name)}")
        if not f.path:
            raise BerthError(f"runtime {wanted} is not installed (apt-get install {wanted})")
        if not f.works:
            raise BerthError(f"runtime {wanted} cannot start containers on this host: {f.reason}")
        return OCIRuntime(f.name, f.path, os.path.join(runroot, "runtime", f.name))
    for f in facts:
        if f.works and f.path:
            return OCIRuntime(f.name, f.path, os.path.join(runroot, "runtime", f.name))
    reasons = "; ".join(f"{f.name}: {f.reason}" for f in facts)
    raise BerthError(f"no OCI runtime can start containers here ({reasons}); berth host check says more")


class OCIRuntime:
    def __init__(self, name: str, path: str, state_root: str) -> None:
        self.name = name
        self.path = path
        self.state_root = state_root

    def _argv(self, *args: str) -> list[str]:
        return [self.path, f"--root={self.state_root}", *args]

    def state(self, cid: str) -> dict[str, object] | None:
        cp = run(self._argv("state", cid), check=False)
        if cp.returncode != 0:
            return None
        try:
            return json.loads(cp.stdout)
        except ValueError:
            return None

    def start(self, cid: str) -> None:
        cp = run(self._argv("start", cid), check=False)
        if cp.returncode != 0:
            raise StartError(cp.stderr.decode(errors="replace").strip() or f"{self.name} start failed")

    def kill(self, cid: str, signal: str, all_processes: bool = False) -> bool:
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, signal]
        return run(self._argv(*args), check=False).returncode == 0

    def update(self, cid: str, resources: dict[str, object]) -> None:
        """Change a running container's cgroup limits (LinuxResources JSON)."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(resources, f)
        try:
            cp = run(self._argv("update", "-r", f.name, cid), check=False)
            if cp.returncode != 0:
                raise BerthError(f"{self.name} could not update {cid[:12]}: "
                                 f"{cp.stderr.decode(errors='replace').strip()[-200:]}")
        finally:
            os.unlink(f.name)

    def checkpoint(self, cid: str, image_dir: str, leave_running: bool, timeout: float) -> None:
        """Dump the container's processes with CRIU into image_dir (they exit unless leave_running)."""
        args = ["checkpoint", "--image-path", image_dir, "--work-path", image_dir]
        cp = run(self._argv(*args, *(["--leave-running"] if leave_running else []), cid), check=False,
                 timeout=timeout)
        if cp.returncode != 0:
            err = cp.stderr.decode(errors="replace").strip().splitlines()
            raise BerthError(f"{self.name} checkpoint failed: {err[-1] if err else 'no error output'} "
                             f"(CRIU's log: {os.path.join(image_dir, 'dump.log')})")

    def pause(self, cid: str) -> bool:
        return run(self._argv("pause", cid), check=False).returncode == 0

    def resume(self, cid: str) -> None:
        run(self._argv("resume", cid), check=False)

    def delete(self, cid: str) -> None:
        if os.path.exists(os.path.join(self.state_root, cid)):
            run(self._argv("delete", "--force", cid), check=False)

    def exec_file_argv(self, cid: str, process_file: str) -> list[str]:
        """The command that runs the process a process file describes in the running container
        (both runtimes take --process; see berth.container.execproc)."""
        return self._argv("exec", "--process", process_file, cid)

    def run_attached_argv(self, cid: str, bundle: str, log: str) -> list[str]:
        return [self.path, f"--root={self.state_root}", "--log", log, "--log-format", "json",
                "run", "--bundle", bundle, cid]


def launch_conmon(rt: OCIRuntime, cid: str, name: str, bundle: str, state_dir: str, exit_dir: str,
                  log_path: str, socket_dir: str, timeout: float = 60, exit_command: list[str] | None = None,
                  terminal: bool = False, restore: str | None = None) -> int:
    """Start conmon, which creates the container through the runtime (restore: restores it from
    that CRIU checkpoint directory instead, already running); returns the container's pid.
    terminal: conmon makes the pseudo-terminal (the runtime hands it the master over a console
    socket), holds it open so that the container's shell waits on it, and logs what it writes."""
    with trace.span("exec", f"conmon + {os.path.basename(rt.path)} {'restore' if restore else 'create'}"):
        return _launch_conmon(rt, cid, name, bundle, state_dir, exit_dir, log_path, socket_dir, timeout,
                              exit_command, terminal, restore)


def _launch_conmon(rt: OCIRuntime, cid: str, name: str, bundle: str, state_dir: str, exit_dir: str,
                   log_path: str, socket_dir: str, timeout: float, exit_command: list[str] | None,
                   terminal: bool = False, restore: str | None = None) -> int:
    """conmon's launch and sync-pipe handshake.

    conmon reports over the sync pipe: {"data": pid} or {"data": -1, "message": "..."}; without the
    pipe a create failure would be silent.
    """
    conmon = shutil.which("conmon")
    if conmon is None:
        raise BerthError("conmon is not installed (apt-get install conmon)")
    for d in (state_dir, exit_dir, socket_dir, rt.state_root):
        os.makedirs(d, exist_ok=True)
    r, w = os.pipe()
    os.set_inheritable(w, True)
    argv = [conmon, "--api-version", CONMON_API, "-c", cid, "-u", cid, "-r", rt.path, "-b", bundle,
            "-p", os.path.join(state_dir, "pidfile"), "-P", os.path.join(state_dir, "conmon.pid"),
            "-n", name, "--exit-dir", exit_dir, "-0", os.path.join(state_dir, "persist"),
            "--socket-dir-path", socket_dir, "-l", f"k8s-file:{log_path}", "--log-level", "error",
            "--runtime-arg", f"--root={rt.state_root}"]
    if terminal:
        argv.append("--terminal")
    if restore:
        argv += ["--restore", restore]
    if exit_command:
        argv += ["--exit-command", exit_command[0]]
        for arg in exit_command[1:]:
            argv += ["--exit-command-arg", arg]
    os.makedirs(os.path.join(state_dir, "persist"), exist_ok=True)
    env = {k: v for k, v in faults.clean_env(dict(os.environ)).items() if not k.startswith("NOTIFY_SOCKET")}
    env["_OCI_SYNCPIPE"] = str(w)
    try:
        proc = subprocess.Popen(argv, env=env, pass_fds=(w,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    finally:
        os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
            try:
                msg = json.loads(data)
                break
            except ValueError:
                continue
        else:
            raise BerthError(f"conmon did not report within {timeout}s")
    finally:
        os.close(r)
    _, err = proc.communicate(timeout=timeout)
    if not data:
        raise BerthError(f"conmon exited {proc.returncode} without reporting: "
                         f"{err.decode(errors='replace').strip()[-300:]}")
    msg = json.loads(data)
    pid = int(msg.get("data", -1))
    faults.point("conmon: reported")
    if pid <= 0:
        raise StartError(_clean_runtime_message(str(msg.get("message", "the runtime failed to create the container"))))
    return pid


def _clean_runtime_message(msg: str) -> str:
    """runc wraps its errors in quotes and prefixes; keep the part a user can act on."""
    msg = msg.strip().strip('"').replace('\\"', '"').replace("\\n", " ")
    if ' msg="' in msg:
        msg = msg.split(' msg="', 1)[1].rstrip('"')
    for prefix in ("runc create failed: ", "crun: ", "unable to start container process: "):
        msg = msg.removeprefix(prefix)
    return msg.strip()
