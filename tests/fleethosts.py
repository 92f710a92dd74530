"""A fleet of system containers on this machine, for the SSH fleet test and bench/fleet.py.

Each host is a privileged berth container of the fleet image (scripts/fleet-image.sh) running
sshd in its own network namespace on berth's bridge, with this checkout's runtime/ and the
busybox archive mounted read-only. The same hosts are reachable through the berth connection
plugin (berth_inventory) and over SSH (ssh_inventory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
FLEET_IMAGE = "berth-fleet-host:bookworm"

Berth = Callable[..., subprocess.CompletedProcess[str]]


def ssh_keypair(directory: str) -> str:
    """An ed25519 key for the fleet; returns the private key's path (authorized_keys beside it)."""
    key = os.path.join(directory, "id_fleet")
    if not os.path.exists(key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth-fleet", "-f", key], check=True,
                       timeout=300)
        with open(key + ".pub") as src, open(os.path.join(directory, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(directory, "authorized_keys"), 0o644)
    return key


def import_image(berth: Berth, fleet_tar: str) -> None:
    if berth("inspect", "--type", "image", FLEET_IMAGE, check=False).returncode != 0:
        berth("import", "-c", 'CMD ["/usr/local/sbin/fleet-init"]', fleet_tar, FLEET_IMAGE)


def start_hosts(berth: Berth, names: list[str], *, label: str, keydir: str, busybox_tar: str) -> dict[str, str]:
    """Start the hosts; returns name -> IP address once each one's sshd accepts connections."""
    for name in names:
        berth("run", "-d", "--name", name, "--hostname", name, "--privileged", "-l", f"fleet={label}",
              "-e", "FLEET_SSHD=1",
              "-v", f"{os.path.join(REPO, 'runtime')}:/opt/berth/runtime:ro",
              "-v", f"{busybox_tar}:/var/tmp/busybox.tar:ro",
              "-v", f"{os.path.join(keydir, 'authorized_keys')}:/root/.ssh/authorized_keys:ro",
              FLEET_IMAGE)
    ips = {}
    for name in names:
        info = json.loads(berth("inspect", name).stdout)[0]
        ips[name] = info["NetworkSettings"]["IPAddress"]
    for name, ip in ips.items():
        wait_for_port(ip, 22, what=f"sshd of {name}")
    return ips


def remove_hosts(berth: Berth, names: list[str]) -> None:
    if names:
        berth("rm", "-f", *names, check=False)


def wait_for_port(ip: str, port: int, *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((ip, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} at {ip}:{port} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


def containers_vars(count: int) -> dict[str, object]:
    """The declaration every host converges to: busybox and `count` containers."""
    return {
        "berth_runtime_manage_packages": False,
        "berth_runtime_install": False,  # these hosts run the checkout's berth, mounted
        "berth_containers_images": [{"name": "busybox:latest", "import": "/var/tmp/busybox.tar",
                                     "changes": ['CMD ["sh"]']}],
        "berth_containers_containers": [
            {"name": f"app{i}", "image": "busybox:latest", "command": ["sleep", "100000"], "network": "none",
             "memory": f"{16 + i}m", "pids_limit": 10 + i, "labels": {"tier": f"t{i % 2}"}}
            for i in range(1, count + 1)],
    }


def berth_inventory(path: str, *, root: str, runroot: str, label: str) -> str:
    """A berth inventory plugin file listing the hosts labelled fleet=label."""
    with open(path, "w") as f:
        f.write(f"plugin: berth.runtime.berth\nroot: {root}\nrunroot: {runroot}\nlabels:\n  fleet: {label}\n"
                f"berth_executable: {os.path.join(VENV_BIN, 'berth')}\n"
                "compose:\n  ansible_python_interpreter: \"'/usr/bin/python3'\"\n")
    return path


def ssh_inventory(path: str, ips: dict[str, str], *, key: str) -> str:
    """The same hosts over SSH, with pipelining (the shape of inventory/example-fleet)."""
    hosts = {name: {"ansible_host": ip} for name, ip in ips.items()}
    inventory = {"all": {"hosts": hosts, "vars": {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_ssh_pipelining": True,
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}
    with open(path, "w") as f:
        json.dump(inventory, f)
    return path


def converge(inventory: str, vars_file: str, env: dict[str, str], *, forks: int | None = None,
             playbook: str = "playbooks/site.yml") -> subprocess.CompletedProcess[str]:
    """ansible-playbook with this checkout's configuration (library, roles, plugins)."""
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "-e", f"@{vars_file}", playbook]
    if forks:
        argv += ["--forks", str(forks)]
    run_env = dict(env, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_NOCOLOR="1", PATH=f"{VENV_BIN}:{env.get('PATH', os.defpath)}")
    return subprocess.run(argv, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    out: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line:
            host, _, rest = line.partition(":")
            out[host.strip()] = {k: int(v) for k, v in (kv.split("=") for kv in rest.split())}
    return out
