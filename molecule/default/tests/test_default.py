"""testinfra checks of the converged host."""

import json

ROOT = "--root /tmp/berth-molecule/root --runroot /tmp/berth-molecule/run"


def berth(host, args):
    import os

    exe = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".venv", "bin", "berth")
    return host.run(f"{exe} {ROOT} {args}")


def test_containers_run(host):
    out = berth(host, "ps --format json")
    assert out.rc == 0, out.stderr
    running = {c["Name"]: c for c in json.loads(out.stdout)}
    assert {"molecule-web", "molecule-worker"} <= set(running)


def test_web_answers(host):
    out = host.run("wget -qO- http://127.0.0.1:18099/index.html || curl -s http://127.0.0.1:18099/index.html")
    assert out.stdout.strip() == "molecule"


def test_limits_applied(host):
    info = json.loads(berth(host, "inspect molecule-worker").stdout)[0]
    assert info["Config"]["pids_limit"] == 20
    assert info["Config"]["labels"]["berth.managed"] == "true"
