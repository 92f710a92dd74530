"""Bridge networks through the CNI plugins: reachability by IP and name, published ports on
127.0.0.1, fixed IPs, and nothing left behind (veth, netns, IPAM lease)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request

import pytest

from tests.conftest import BERTH, berth, remove_networks
from tests.fleethosts import wait_for_port

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"),
                                reason="containernetworking-plugins is not installed")


def veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str):  # type: ignore[no-untyped-def]
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    yield e
    for c in berth(e, "ps", "-aq", check=False).stdout.split():
        berth(e, "rm", "-f", c, check=False)
    nets = json.loads(berth(e, "network", "ls", "--format", "json", check=False).stdout or "[]")
    for n in nets:
        berth(e, "network", "rm", n["name"], check=False)


def test_bridge_by_ip_and_name_published_port_and_cleanup(env) -> None:  # type: ignore[no-untyped-def]
    before = veths()
    berth(env, "run", "-d", "--name", "web", "--network", "bridge", "-p", "127.0.0.1:18931:80", "busybox:bb", "sh",
          "-c", "echo hello-web > /index.html; exec httpd -f -p 80 -h /")
    ip = json.loads(berth(env, "inspect", "web").stdout)[0]["NetworkSettings"]["IPAddress"]
    assert ip.startswith("10.")
    wait_for_port(ip, 80, what="web's httpd")
    out = berth(env, "run", "--rm", "--network", "bridge", "busybox:bb", "sh", "-c",
                f"wget -qO- http://{ip}/index.html; wget -qO- http://web/index.html").stdout
    assert out == "hello-web\nhello-web\n"
    body = urllib.request.urlopen("http://127.0.0.1:18931/index.html", timeout=5).read()
    assert body == b"hello-web\n"
    members = json.loads(berth(env, "network", "inspect", "berth").stdout)[0]["containers"]
    assert [m["Name"] for m in members] == ["web"]
    ipam = os.path.join(env["BERTH_ROOT"], "networks", "ipam", "berth")

    def leases() -> list[str]:
        return [n for n in os.listdir(ipam) if n[0].isdigit()]

    assert leases() == [ip]  # host-local IPAM keeps one file per leased address
    assert len(veths() - before) == 1
    berth(env, "rm", "-f", "web")
    assert veths() == before
    assert os.listdir(os.path.join(env["BERTH_RUNROOT"], "netns")) == []
    assert leases() == []
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:18931/index.html", timeout=2)


PROBE = 'timeout 5 wget -qO- http://10.77.5.50/index.html; echo "wget-exit=$?"'  # wget -T segfaults here


def isolation_rules(bridge: str) -> list[str]:
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True, timeout=60).stdout
    return [ln for ln in out.splitlines() if ln.startswith("-A BERTH-ISOLATION") and f" {bridge} " in f"{ln} "]


def test_networks_are_isolated_from_each_other(env) -> None:  # type: ignore[no-untyped-def]
    """docker's isolation between bridge networks: with forwarding on (as here) the host would route
    between them; berth's FORWARD rules drop what leaves one berth bridge for another."""
    berth(env, "network", "create", "backend", "--subnet", "10.77.5.0/24")
    bridge = json.loads(berth(env, "network", "inspect", "backend").stdout)[0]["bridge"]
    berth(env, "run", "-d", "--name", "db", "--network", "backend", "--ip", "10.77.5.50", "busybox:bb", "sh", "-c",
          "echo db > /index.html; exec httpd -f -p 80 -h /")
    wait_for_port("10.77.5.50", 80, what="db's httpd")
    assert sorted(isolation_rules(bridge)) == sorted([
        f"-A BERTH-ISOLATION-1 -i {bridge} ! -o {bridge} -j BERTH-ISOLATION-2",
        f"-A BERTH-ISOLATION-2 -o {bridge} -j DROP"])
    cp = berth(env, "run", "--rm", "--network", "backend", "busybox:bb", "sh", "-c", PROBE)
    assert cp.stdout == "db\nwget-exit=0\n"  # the probe works from the server's own network
    # from another network: the container runs (berth's part succeeds) and wget fails in it
    cp = berth(env, "run", "--rm", "--network", "bridge", "busybox:bb", "sh", "-c", PROBE)
    assert "db" not in cp.stdout and "wget-exit=" in cp.stdout and "wget-exit=0" not in cp.stdout, cp.stdout
    # the host itself still reaches it (isolation is between networks, not from the host)
    with urllib.request.urlopen("http://10.77.5.50/index.html", timeout=10) as r:
        assert r.read() == b"db\n"
    berth(env, "rm", "-f", "db")
    berth(env, "network", "rm", "backend")
    assert isolation_rules(bridge) == []


def test_network_fixed_ip_refusals_and_removal(env) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(berth(env, "network", "create", "backend", "--subnet", "10.77.5.0/24").stdout)
    assert created["subnet"] == "10.77.5.0/24"
    berth(env, "run", "-d", "--name", "db", "--network", "backend", "--ip", "10.77.5.50", "busybox:bb", "sh", "-c",
          "echo db > /index.html; exec httpd -f -p 80 -h /")
    wait_for_port("10.77.5.50", 80, what="db's httpd")
    assert berth(env, "run", "--rm", "--network", "backend", "busybox:bb", "wget", "-qO-",
                 "http://db/index.html").stdout == "db\n"
    cp = berth(env, "network", "rm", "backend", check=False)
    assert cp.returncode == 1 and "used by container" in cp.stderr
    cp = berth(env, "run", "--rm", "--network", "nosuch", "busybox:bb", "true", check=False)
    assert cp.returncode == 125 and "no such network" in cp.stderr
    cp = berth(env, "run", "--rm", "--network", "none", "-p", "80:80", "busybox:bb", "true", check=False)
    assert cp.returncode == 125 and "bridge network" in cp.stderr
    bridge = json.loads(berth(env, "network", "inspect", "backend").stdout)[0]["bridge"]
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, timeout=30).returncode == 0
    berth(env, "rm", "-f", "db")
    berth(env, "network", "rm", "backend")
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, timeout=30).returncode != 0
    assert "backend" not in berth(env, "network", "ls").stdout


def test_parallel_runs_on_a_fresh_root_share_one_default_network(berth_env, busybox_tar) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 6: 8 parallel `run --rm` on a fresh root all create the default network at
    once; none may read another's temp file as a network, and one network (one bridge) results."""
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    procs = [subprocess.Popen([BERTH, "run", "--rm", "busybox:bb", "true"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for s in (p.stdout, p.stderr):
            if s:
                s.close()
    assert [r for r in results if r[0] != 0] == []
    nets = json.loads(berth(env, "network", "ls", "--format", "json").stdout)
    assert [n["name"] for n in nets] == ["berth"]
    assert [n for n in os.listdir(os.path.join(env["BERTH_ROOT"], "networks")) if n.startswith(".tmp-")] == []



def test_parallel_network_creates_get_their_own_subnet_and_bridge(env) -> None:  # type: ignore[no-untyped-def]
    """Items 6 and 12, the class: creators racing on one root each get a distinct subnet and bridge,
    and no listing in between sees a half-written network."""
    procs = [subprocess.Popen([BERTH, "network", "create", f"par{i}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(8)]
    listers = [subprocess.Popen([BERTH, "network", "ls", "--format", "json"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = []
    for p in procs + listers:
        _out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            errors.append(err)
    assert errors == []
    nets = json.loads(berth(env, "network", "ls", "--format", "json").stdout)
    # `network ls` makes the default network on a root that has none
    assert sorted(n["name"] for n in nets) == ["berth"] + [f"par{i}" for i in range(8)]
    assert len({n["subnet"] for n in nets}) == 9 and len({n["bridge"] for n in nets}) == 9, nets


def _listener(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    return s


def test_published_port_in_use_is_refused_with_its_owner(env) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 11: a host port another berth container publishes, or a host process listens
    on, is refused (exit 125) naming the owner; the port is usable again once freed."""
    berth(env, "run", "-d", "--name", "first", "--network", "bridge", "-p", "127.0.0.1:18941:80", "busybox:bb",
          "sleep", "300")
    cp = berth(env, "run", "-d", "--name", "second", "--network", "bridge", "-p", "18941:80", "busybox:bb",
               "sleep", "300", check=False)
    assert cp.returncode == 125, cp
    assert "18941/tcp" in cp.stderr and "container first" in cp.stderr and len(cp.stderr.splitlines()) == 1
    assert json.loads(berth(env, "inspect", "second").stdout)[0]["State"]["Status"] != "running"
    # another protocol on the same number is no conflict
    berth(env, "run", "-d", "--name", "udp", "--network", "bridge", "-p", "127.0.0.1:18941:80/udp", "busybox:bb",
          "sleep", "300")
    berth(env, "rm", "-f", "first", "second", "udp")

    host = _listener(18942)
    try:
        cp = berth(env, "run", "--rm", "--network", "bridge", "-p", "127.0.0.1:18942:80", "busybox:bb", "true",
                   check=False)
        assert cp.returncode == 125, cp
        assert "18942/tcp" in cp.stderr and f"process {os.getpid()}" in cp.stderr, cp.stderr
        assert len(cp.stderr.splitlines()) == 1
        # the host's listener still gets its traffic (nothing was set up in front of it)
        with socket.create_connection(("127.0.0.1", 18942), timeout=5):
            conn, _ = host.accept()
            conn.close()
    finally:
        host.close()
    assert os.listdir(os.path.join(env["BERTH_RUNROOT"], "netns")) == []
    berth(env, "run", "--rm", "--network", "bridge", "-p", "127.0.0.1:18942:80", "busybox:bb", "true")


def test_bridge_names_never_collide_after_network_rm(env) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 12: create a, b; rm a; create c: c must not get b's bridge, and both work."""
    berth(env, "network", "create", "neta", "--subnet", "10.77.11.0/24")
    b = json.loads(berth(env, "network", "create", "netb", "--subnet", "10.77.12.0/24").stdout)
    berth(env, "network", "rm", "neta")
    c = json.loads(berth(env, "network", "create", "netc", "--subnet", "10.77.13.0/24").stdout)
    assert c["bridge"] != b["bridge"]
    for net in ("netb", "netc"):
        # the address itself (hostname -i asks the resolver, whose answer depends on the host's DNS)
        out = berth(env, "run", "--rm", "--network", net, "busybox:bb", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert " inet 10.77.1" in out, out


def test_a_port_another_root_publishes_is_refused(env, busybox_tar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Item 11 across roots: the other root's container is known by the DNAT rule it holds."""
    base = str(tmp_path)
    other = dict(env, BERTH_ROOT=os.path.join(base, "root2"), BERTH_RUNROOT=os.path.join(base, "run2"))
    try:
        berth(other, "import", busybox_tar, "busybox:bb")
        cid = berth(other, "run", "-d", "--network", "bridge", "-p", "127.0.0.1:18943:80", "busybox:bb",
                    "sleep", "300").stdout.strip()
        cp = berth(env, "run", "--rm", "--network", "bridge", "-p", "18943:80", "busybox:bb", "true", check=False)
        assert cp.returncode == 125, cp
        assert "18943/tcp" in cp.stderr and cid[:12] in cp.stderr and len(cp.stderr.splitlines()) == 1
        berth(other, "rm", "-f", cid)
        berth(env, "run", "--rm", "--network", "bridge", "-p", "18943:80", "busybox:bb", "true")
    finally:
        for c in berth(other, "ps", "-aq", check=False).stdout.split():
            berth(other, "rm", "-f", c, check=False)
        remove_networks(other["BERTH_ROOT"])
