"""testinfra checks of the converged host: what runs, and the limits as the kernel holds them."""

import json
import time

ROOT = "--root /tmp/berth-molecule/root --runroot /tmp/berth-molecule/run"


def berth(host, args):
    import os

    exe = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".venv", "bin", "berth")
    return host.run(f"{exe} {ROOT} {args}")


def inspect(host, name):
    out = berth(host, f"inspect {name}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)[0]


def cgroup(host, info, ctrl, name):
    """A cgroup file of the container, read from the kernel (not from berth's record)."""
    path = f"/sys/fs/cgroup/{ctrl}/{info['HostConfig']['CgroupParent']}/{info['Id']}/{name}"
    return host.file(path).content_string.strip()


def test_containers_run(host):
    out = berth(host, "ps --format json")
    assert out.rc == 0, out.stderr
    running = {c["Name"].lstrip("/"): c for c in json.loads(out.stdout)}
    assert {"molecule-web", "molecule-worker"} <= set(running)


def test_web_answers(host):
    out = host.run("wget -qO- http://127.0.0.1:18099/index.html || curl -s http://127.0.0.1:18099/index.html")
    assert out.stdout.strip() == "molecule"


def test_limits_applied(host):
    worker = inspect(host, "molecule-worker")
    assert cgroup(host, worker, "pids", "pids.max") == "20"
    assert worker["Config"]["Labels"]["berth.managed"] == "true"
    web = inspect(host, "molecule-web")
    assert int(cgroup(host, web, "memory", "memory.limit_in_bytes")) == 32 << 20


def test_web_restarts_always(host):
    """restart: always as declared, and in action: its process killed behind berth's back, it is back."""
    web = inspect(host, "molecule-web")
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "always"
    before = web["RestartCount"]
    assert host.run(f"kill -9 {web['State']['Pid']}").rc == 0
    deadline = time.monotonic() + 60
    while True:
        web = inspect(host, "molecule-web")
        if web["RestartCount"] > before and web["State"]["Running"]:
            break
        assert time.monotonic() < deadline, web["State"]
        time.sleep(0.2)
    out = host.run("wget -T 5 -t 20 --retry-connrefused -qO- http://127.0.0.1:18099/index.html 2>/dev/null"
                   " || curl -s --retry 20 --retry-connrefused http://127.0.0.1:18099/index.html")
    assert out.stdout.strip() == "molecule"
