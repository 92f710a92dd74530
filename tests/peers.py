"""Real peer engines for interop tests, each isolated in its own temporary directories and
stopped by PID afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

DOCKER_CLI = "/usr/bin/docker"  # the 20.10 client that matches Debian's dockerd


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process we started, SIGKILL it if it does not go in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def dockerd(base: str) -> Iterator[list[str]]:
    """Start a private dockerd (own data root, no iptables, no bridge); yields the CLI argv."""
    if not shutil.which("dockerd") or not os.path.exists(DOCKER_CLI):
        import pytest

        pytest.skip("docker.io is not installed")
    import tempfile

    os.makedirs(base, exist_ok=True)
    short = tempfile.mkdtemp(prefix="bd-", dir="/tmp")  # unix socket paths must stay under 108 bytes
    sock = os.path.join(short, "docker.sock")
    pidfile = os.path.join(short, "docker.pid")
    with open(os.path.join(base, "daemon.json"), "w") as f:
        f.write("{}")
    log = open(os.path.join(base, "dockerd.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["dockerd", "--config-file", os.path.join(base, "daemon.json"), "--data-root", os.path.join(base, "data"),
         "--exec-root", os.path.join(short, "x"), "-H", f"unix://{sock}", "--pidfile", pidfile,
         "--iptables=false", "--ip6tables=false", "--bridge=none"],
        stdout=log, stderr=log, start_new_session=True)
    cli = [DOCKER_CLI, "-H", f"unix://{sock}"]
    env = dict(os.environ, DOCKER_CONFIG=os.path.join(base, "cli"))
    os.makedirs(env["DOCKER_CONFIG"], exist_ok=True)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("dockerd exited: " + open(os.path.join(base, "dockerd.log")).read()[-2000:])
            if subprocess.run([*cli, "version"], capture_output=True, env=env, timeout=300).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("dockerd did not come up in 30 s")
        os.environ["DOCKER_CONFIG"] = env["DOCKER_CONFIG"]
        yield cli
    finally:
        os.environ.pop("DOCKER_CONFIG", None)
        subprocess.run([*cli, "rm", "-f", *subprocess.run([*cli, "ps", "-aq"], capture_output=True, text=True,
                                                          timeout=300)
                        .stdout.split()], capture_output=True, timeout=300)
        stop(proc, timeout=30)
        log.close()
        # containerd-shims started by this dockerd have the exec root in their command line
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                if short.encode() in cmd or base.encode() in cmd:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            target = line.split()[4]
            if target.startswith((short + "/", base + "/")):
                subprocess.run(["umount", "-l", target], capture_output=True, timeout=300)
        shutil.rmtree(short, ignore_errors=True)


@contextmanager
def registry(base: str, tls: tuple[str, str] | None = None, htpasswd: str | None = None) -> Iterator[str]:
    """`docker-registry serve` on 127.0.0.1 with filesystem storage (optionally TLS with the given
    certificate and key, and basic auth from an htpasswd file); yields HOST:PORT."""
    import socket

    if not shutil.which("docker-registry"):
        import pytest

        pytest.skip("docker-registry is not installed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    os.makedirs(base, exist_ok=True)
    cfg = os.path.join(base, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n  delete:\n"
                f"    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
        if tls:
            f.write(f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n")
        if htpasswd:
            f.write(f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n")
    log = open(os.path.join(base, "registry.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=log, stderr=log, start_new_session=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(open(os.path.join(base, "registry.log")).read()[-1000:]) from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc, timeout=10)
        log.close()
