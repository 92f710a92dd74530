"""Bridge networks through the CNI plugins: reachability by IP and name, published ports on
127.0.0.1, fixed IPs, and nothing left behind (veth, netns, IPAM lease)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import berth

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"),
                                reason="containernetworking-plugins is not installed")


def veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
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
    time.sleep(0.3)
    out = berth(env, "run", "--rm", "--network", "bridge", "busybox:bb", "sh", "-c",
                f"wget -qO- http://{ip}/index.html; wget -qO- http://web/index.html").stdout
    assert out == "hello-web\nhello-web\n"
    body = urllib.request.urlopen("http://127.0.0.1:18931/index.html", timeout=5).read()
    assert body == b"hello-web\n"
    members = json.loads(berth(env, "network", "inspect", "berth").stdout)[0]["containers"]
    assert [m["Name"] for m in members] == ["web"]
    berth(env, "rm", "-f", "web")
    assert veths() == before
    assert os.listdir(os.path.join(env["BERTH_RUNROOT"], "netns")) == []
    ipam = os.path.join(env["BERTH_ROOT"], "networks", "ipam", "berth")
    assert not [n for n in os.listdir(ipam) if n[0].isdigit()] if os.path.isdir(ipam) else True
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:18931/index.html", timeout=2)


def test_networks_are_separate_and_fixed_ip(env) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(berth(env, "network", "create", "backend", "--subnet", "10.77.5.0/24").stdout)
    assert created["subnet"] == "10.77.5.0/24"
    berth(env, "run", "-d", "--name", "db", "--network", "backend", "--ip", "10.77.5.50", "busybox:bb", "sh", "-c",
          "echo db > /index.html; exec httpd -f -p 80 -h /")
    time.sleep(0.3)
    assert berth(env, "run", "--rm", "--network", "backend", "busybox:bb", "wget", "-qO-",
                 "http://db/index.html").stdout == "db\n"
    cp = berth(env, "run", "--rm", "--network", "bridge", "busybox:bb", "wget", "-T", "2", "-qO-",
               "http://10.77.5.50/index.html", check=False)
    assert cp.returncode != 0  # another network cannot reach it
    cp = berth(env, "network", "rm", "backend", check=False)
    assert cp.returncode == 1 and "used by container" in cp.stderr
    cp = berth(env, "run", "--rm", "--network", "nosuch", "busybox:bb", "true", check=False)
    assert cp.returncode == 125 and "no such network" in cp.stderr
    cp = berth(env, "run", "--rm", "--network", "none", "-p", "80:80", "busybox:bb", "true", check=False)
    assert cp.returncode == 125 and "bridge network" in cp.stderr
    berth(env, "rm", "-f", "db")
    berth(env, "network", "rm", "backend")
    assert shutil.which("ip")
