"""Declarative state: berth plan / apply with reasons, in-place updates, idempotence, prune."""

from __future__ import annotations

import json
import textwrap

from tests.conftest import CGROUP_PARENT, berth

STATE = """\
images:
  - name: busybox:latest
    import: {tar}
    changes: ['CMD ["sh"]']
containers:
  - name: web
    image: busybox:latest
    command: [sh, -c, "echo hi > /index.html; exec httpd -f -p 80 -h /"]
    env: {{GREETING: hello, MODE: prod}}
    memory: 64m
    restart: always
    snapshots: [initial]
  - name: worker
    image: busybox:latest
    command: [sleep, "1000"]
    state: stopped
"""


def plan(env: dict[str, str], path: str) -> list[dict[str, object]]:
    return json.loads(berth(env, "plan", "-f", path, "--format", "json").stdout)


def test_apply_is_idempotent_and_explains_changes(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    state = tmp_path / "state.yml"
    state.write_text(STATE.format(tar=busybox_tar))
    first = plan(env, str(state))
    assert [(a["action"], a["target"]) for a in first] == [
        ("image", "busybox:latest"), ("create", "web"), ("snapshot", "web"), ("create", "worker")]
    out = berth(env, "apply", "-f", str(state)).stdout
    assert "4 change(s)" in out
    assert berth(env, "apply", "-f", str(state)).stdout.strip() == "no changes: the host matches the state"
    web = json.loads(berth(env, "inspect", "web").stdout)[0]
    assert web["State"]["Running"] is True and web["Berth"]["Snapshots"] == ["initial"]
    assert json.loads(berth(env, "inspect", "worker").stdout)[0]["State"]["Running"] is False

    # a limit changes in place; removing an env var is a change that needs a new container
    state.write_text(STATE.format(tar=busybox_tar).replace("memory: 64m", "memory: 128m"))
    p = plan(env, str(state))
    assert p == [{"action": "update", "target": "web", "reasons": ["memory 64m → 128m"]}]
    berth(env, "apply", "-f", str(state))
    cid = web["Id"]
    assert int(open(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}/memory.limit_in_bytes").read()) == 128 << 20
    assert json.loads(berth(env, "inspect", "web").stdout)[0]["Id"] == cid  # same container
    assert plan(env, str(state)) == []
    current = (STATE.format(tar=busybox_tar).replace("memory: 64m", "memory: 128m")
               .replace("{GREETING: hello, MODE: prod}", "{GREETING: hello}")
               .replace("state: stopped", "state: running"))
    state.write_text(current)
    p = plan(env, str(state))
    assert {"action": "recreate", "target": "web", "reasons": ["env MODE removed"]} in p
    assert {"action": "start", "target": "worker", "reasons": ["state created → running"]} in p
    berth(env, "apply", "-f", str(state))
    assert json.loads(berth(env, "inspect", "web").stdout)[0]["Id"] != cid
    assert plan(env, str(state)) == [{"action": "snapshot", "target": "web", "reasons": ["snapshot initial missing"]}]
    berth(env, "apply", "-f", str(state))
    assert plan(env, str(state)) == []

    # prune: a managed container that is no longer declared goes, with the reason
    state.write_text(current.split("  - name: worker")[0])
    assert plan(env, str(state)) == []
    pruned = json.loads(berth(env, "plan", "-f", str(state), "--prune", "--format", "json").stdout)
    assert pruned == [{"action": "remove", "target": "worker", "reasons": ["not declared any more (--prune)"]}]
    berth(env, "apply", "-f", str(state), "--prune")
    assert "worker" not in berth(env, "ps", "-a").stdout


def test_validation_names_file_line_and_key(berth_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "containers:\n  - name: x\n    image: busybox\n    colour: red\n": ("line 4", "unknown container key 'colour'"),
        "containers:\n  - name: x\n": ("line 2", "needs image"),
        "containers:\n  - name: x\n    image: busybox\n    state: sleeping\n": ("line 4", "state must be one of"),
        "containers:\n  - name: x\n    image: busybox\n    memory: lots\n": ("line 4", "invalid memory limit"),
        "images:\n  - name: a\n    pull: a\n    import: b\n": ("line 2", "exactly one of"),
        "containers: [\n": ("line", "not valid YAML"),
        "services: []\n": ("line 1", "unknown key 'services'"),
    }
    for text, (where, what) in cases.items():
        f = tmp_path / "s.yml"
        f.write_text(textwrap.dedent(text))
        cp = berth(berth_env, "plan", "-f", str(f), check=False)
        assert cp.returncode == 1, text
        assert str(f) in cp.stderr and where in cp.stderr and what in cp.stderr, cp.stderr
        assert len(cp.stderr.strip().splitlines()) == 1
    f = tmp_path / "missing-image.yml"
    f.write_text("containers:\n  - name: x\n    image: nothing:here\n")
    cp = berth(berth_env, "plan", "-f", str(f), check=False)
    assert cp.returncode == 1 and "neither exists nor is declared" in cp.stderr


def test_require_signature(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    state = tmp_path / "signed.yml"
    state.write_text(f"images:\n  - name: busybox:latest\n    import: {busybox_tar}\n    require_signature: true\n")
    cp = berth(env, "apply", "-f", str(state), check=False)
    assert cp.returncode == 1 and "must be signed" in cp.stderr
    reject = tmp_path / "policy.json"
    reject.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "AAAA"}]}))
    cp = berth(dict(env, BERTH_POLICY=str(reject)), "plan", "-f", str(state), check=False)
    assert cp.returncode == 1 and "has none" in cp.stderr


ROLLING = """\
images:
  - name: busybox:latest
    import: {tar}
    changes: ['CMD ["sh"]']
containers:
""" + "".join(f"""\
  - name: {name}
    image: busybox:latest
    command: [sleep, "1000"]
    network: none
    env: {{{{VERSION: "{{{name}}}"}}}}
    health_cmd: 'echo "version $VERSION"; test "$VERSION" != bad'
    health_interval: 0.2s
    health_retries: 1
    state: healthy
    healthy_timeout: 20
""" for name in ("a", "b", "c"))


def test_state_healthy_rolls_one_container_at_a_time_and_stops_at_an_unhealthy_one(
        berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    state = tmp_path / "rolling.yml"
    state.write_text(ROLLING.format(tar=busybox_tar, a="v1", b="v1", c="v1"))
    out = berth(env, "apply", "-f", str(state)).stdout
    assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith(("create", "healthy"))] == [
        "create a", "healthy a", "create b", "healthy b", "create c", "healthy c"]
    for name in "abc":
        assert json.loads(berth(env, "inspect", name).stdout)[0]["State"]["Health"]["Status"] == "healthy"
    assert berth(env, "apply", "-f", str(state)).stdout.strip() == "no changes: the host matches the state"
    # a rolling change whose second container never becomes healthy: a is replaced, c is left alone
    c_before = json.loads(berth(env, "inspect", "c").stdout)[0]["Id"]
    state.write_text(ROLLING.format(tar=busybox_tar, a="v2", b="bad", c="v2"))
    cp = berth(env, "apply", "-f", str(state), check=False)
    assert cp.returncode == 1
    assert "apply stopped at container b: container b is unhealthy" in cp.stderr
    assert "version bad" in cp.stderr and "not done: c" in cp.stderr
    assert "Traceback" not in cp.stderr
    env_of = {n: json.loads(berth(env, "inspect", n).stdout)[0]["Berth"]["Spec"]["env"] for n in "abc"}
    assert "VERSION=v2" in env_of["a"] and "VERSION=bad" in env_of["b"] and "VERSION=v1" in env_of["c"]
    assert json.loads(berth(env, "inspect", "c").stdout)[0]["Id"] == c_before
