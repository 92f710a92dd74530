"""A malformed desired-state file (issue 18 item 16) is one line naming the file, the line and the
key, and a non-zero exit, from `berth plan/apply` and from the berth_state module (fail_json with
that line): wrong types at every level, a binary file, YAML that is not a mapping, unknown keys."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.path.join(REPO, ".venv", "bin", "berth")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
COLLECTIONS = os.path.join(REPO, ".collections")
STATE_MODULE = os.path.join(COLLECTIONS, "ansible_collections", "berth", "runtime", "plugins", "modules",
                            "berth_state.py")

C = "containers:\n  - name: a\n    image: bb\n"  # a container entry to add one bad key to (line 4)
IMG = "images:\n  - name: bb\n"  # an image entry (its next key is on line 3)

# text -> (line, words the message names)
CASES: dict[str, tuple[int, tuple[str, ...]]] = {
    C + '    cpus: "lots"\n': (4, ("cpus", "lots")),
    C + '    pids_limit: "abc"\n': (4, ("pids_limit", "abc")),
    C + "    bogus: 1\n": (4, ("unknown container key 'bogus'",)),
    C + "    read_only: maybe\n": (4, ("read_only", "true or false")),
    C + "    user: [1]\n": (4, ("user", "a string")),
    C + "    memory: {a: 1}\n": (4, ("memory", "a string")),
    C + "    labels: {a: [1]}\n": (4, ("labels", "mapping of names to strings")),
    C + "    env: {A: {b: 1}}\n": (4, ("env", "mapping of names to strings")),
    C + "    command: {a: 1}\n": (4, ("command", "list of strings")),
    C + "    ports: 5.5\n": (4, ("ports",)),
    C + "    restart_retries: x\n": (4, ("restart_retries",)),
    "containers:\n  - name: a\n    image: {x: 1}\n": (3, ("image", "a string")),
    "containers:\n  - name: [1, 2]\n    image: bb\n": (2, ("name", "string")),
    "containers: 5\n": (1, ("containers", "list")),
    "containers:\n  - just a string\n": (1, ("container", "mapping")),
    "images: {a: 1}\n": (1, ("images", "list")),
    IMG + "    import: [1]\n": (3, ("import", "string")),
    IMG + "    pull: 'bad ref'\n": (3, ("pull", "invalid reference")),
    IMG + "    pull: bb\n    tls_verify: 'x'\n": (4, ("tls_verify", "true or false")),
    IMG + "    import: x.tar\n    changes: 5\n": (4, ("changes", "list")),
    IMG + "    build: {context: ., colour: red}\n": (3, ("build", "colour")),
    IMG + "    build: {dockerfile: D}\n": (3, ("build", "context")),
    IMG + "    build: {context: ., args: [1]}\n": (3, ("build", "args")),
    "images:\n  - name: {x: 1}\n    pull: bb\n": (2, ("name", "string")),
    "- a\n- b\n": (1, ("mapping",)),
    "just text\n": (1, ("mapping",)),
    "{1: 2}\n": (1, ("unknown key 1",)),
    "? [1, 2]\n: 3\n": (1, ("not valid YAML", "key")),
    "containers:\n  - name: a\n  \x01\n": (3, ("not valid YAML", "U+0001")),
    "a: &a [*a]\n": (1, ("not valid YAML",)),
    "!!python/object:os.system {}\n": (1, ("not valid YAML",)),
}


@pytest.fixture
def env(tmp_path: str) -> dict[str, str]:
    return dict(os.environ, BERTH_ROOT=os.path.join(str(tmp_path), "root"), BERTH_DRIVER="vfs",
                BERTH_RUNROOT=os.path.join(str(tmp_path), "run"), BERTH_CONFIG=os.path.join(str(tmp_path), "none"))


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, stderr
    return stderr


@pytest.mark.parametrize("verb", ["plan", "apply"])
@pytest.mark.parametrize("text", list(CASES), ids=range(len(CASES)))
def test_cli_names_file_line_and_key(env: dict[str, str], tmp_path, verb: str, text: str) -> None:  # type: ignore[no-untyped-def]
    line, words = CASES[text]
    f = tmp_path / "state.yml"
    f.write_text(text)
    cp = subprocess.run([BERTH, verb, "-f", str(f)], env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1, cp
    err = _one_line(cp.stderr)
    assert err.startswith(f"berth: error: {f} line {line}: "), err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("data,line", [
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 1),  # a binary file (an image)
    (b"containers:\n  - name: caf\xe9\n", 2),  # latin-1, not UTF-8
])
def test_binary_file(env: dict[str, str], tmp_path, data: bytes, line: int) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "state.yml"
    f.write_bytes(data)
    cp = subprocess.run([BERTH, "plan", "-f", str(f)], env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1
    assert _one_line(cp.stderr).startswith(f"berth: error: {f} line {line}: not UTF-8 text"), cp.stderr


def _module(env: dict[str, str], args: dict[str, object]) -> dict[str, object]:
    """berth_state run as Ansible runs it (its arguments in a file), on the env's root."""
    args = dict(args, root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"], driver="vfs")
    path = os.path.join(os.path.dirname(env["BERTH_ROOT"]), "args.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    cp = subprocess.run([PYTHON, STATE_MODULE, path], env=dict(env, PYTHONPATH=COLLECTIONS), capture_output=True,
                        text=True, timeout=60)
    assert "Traceback" not in cp.stdout + cp.stderr, cp
    result: dict[str, object] = json.loads(cp.stdout)
    return result


def test_module_fails_with_the_same_line(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "state.yml"
    f.write_text(C + '    pids_limit: "abc"\n')
    r = _module(env, {"state_file": str(f)})
    assert r["failed"] and r["msg"] == f"{f} line 4: container a: pids_limit: invalid pids_limit 'abc': use an integer"
    f.write_bytes(b"\x00\xff" * 100)
    r = _module(env, {"state_file": str(f)})
    assert r["failed"] and str(r["msg"]).startswith(f"{f} line 1: not UTF-8 text"), r
    r = _module(env, {"containers": [{"name": "a", "image": "bb", "cpus": "lots"}]})
    assert r["failed"] and str(r["msg"]).startswith("berth_state arguments containers[0].cpus:"), r
    r = _module(env, {"images": [{"name": "bb", "pull": "bb", "tls_verify": "x"}]})
    want = "berth_state arguments images[0].tls_verify: tls_verify must be true or false, not 'x'"
    assert r["failed"] and r["msg"] == want, r
