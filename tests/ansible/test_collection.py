"""The berth.runtime collection as users get it: built from this checkout, installed offline into an
empty collections path, used by FQCN from a playbook project in a fresh directory; the snapshot and
image modules change nothing the second time, and check mode predicts the real run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, berth

BIN = os.path.join(REPO, ".venv", "bin")
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "ansible-galaxy")),
                                reason="ansible-core is not installed in .venv")
MODULES = ["berth_container", "berth_container_info", "berth_host_info", "berth_image", "berth_image_info",
           "berth_snapshot", "berth_state", "berth_storage", "berth_volume"]
ROLES = ["berth_runtime", "berth_storage", "berth_containers"]


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The collection built from the checkout and installed (offline) into an empty collections path."""
    tmp = tmp_path_factory.mktemp("collection")
    built = subprocess.run([sys.executable, os.path.join(REPO, "collection", "build.py"), "build", "--dist",
                            str(tmp / "dist")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    tarball = built.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"berth-runtime-\d+\.\d+\.\d+\.tar\.gz", os.path.basename(tarball))
    path = tmp / "collections"
    path.mkdir()
    # from an empty directory: no ansible.cfg of this checkout's, nothing installed anywhere it looks
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    cp = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(path),
                         tarball], capture_output=True, text=True, timeout=300, cwd=str(path), env=env)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    root = path / "ansible_collections" / "berth" / "runtime"
    assert (root / "meta" / "runtime.yml").exists() and (root / "README.md").exists()
    assert [n for n in os.listdir(root / "roles" / "berth_runtime" / "files") if n.endswith(".whl")]
    return str(path)


def project(tmp_path, collections: str, playbook: str) -> str:  # type: ignore[no-untyped-def]
    """A playbook project of a user's own: its ansible.cfg names only the installed collection."""
    d = tmp_path / "project"
    d.mkdir(exist_ok=True)
    (d / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {collections}\nretry_files_enabled = false\n"
                                   "interpreter_python = auto_silent\n")
    (d / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": os.path.join(BIN, "python")}}}}))
    (d / "site.yml").write_text(playbook)
    return str(d)


def play(env: dict[str, str], where: str, *args: str) -> tuple[dict[str, int], str]:
    # no ANSIBLE_CONFIG from the caller, no checkout paths: the project's ansible.cfg only
    run_env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
    run_env.update(ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    cp = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory.yml", "site.yml", *args], cwd=where,
                        env=run_env, capture_output=True, text=True, timeout=600)
    m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", cp.stdout)
    assert m, cp.stdout[-3000:] + cp.stderr[-2000:]
    return {"ok": int(m[1]), "changed": int(m[2]), "failed": int(m[4]), "rc": cp.returncode}, cp.stdout


def test_ansible_doc_renders_everything(collections: str) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections)
    doc = os.path.join(BIN, "ansible-doc")
    for kind, names in (("module", MODULES), ("role", ROLES), ("connection", ["berth"]), ("inventory", ["berth"])):
        for name in names:
            cp = subprocess.run([doc, "-t", kind, f"berth.runtime.{name}"], env=env, capture_output=True, text=True,
                                timeout=120, cwd="/")
            assert cp.returncode == 0 and cp.stdout.strip(), (kind, name, cp.stderr)
    # role defaults as they are, not null
    cp = subprocess.run([doc, "-t", "role", "--json", "berth.runtime.berth_containers"], env=env, capture_output=True,
                        text=True, timeout=120, cwd="/")
    spec = json.loads(cp.stdout)["berth.runtime.berth_containers"]["entry_points"]["main"]["options"]
    assert spec["berth_containers_containers"]["default"] == [] and spec["berth_containers_prune"]["default"] is False


SNAPSHOT_IMAGE = """
- name: Snapshots and images, by FQCN only
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/berth.runtime.berth:
      root: "{{ lookup('env', 'BERTH_ROOT') }}"
      runroot: "{{ lookup('env', 'BERTH_RUNROOT') }}"
  tasks:
    - name: The image
      berth.runtime.berth_image:
        name: busybox:latest
        source: import
        import_from: "{{ busybox_tar }}"
        changes: "{{ image_changes }}"
        tags: [bb:tagged]
        archive_path: "{{ archive }}"
    - name: A container to snapshot
      berth.runtime.berth_state:
        containers:
          - {name: snap1, image: busybox:latest, command: [sleep, "100000"], network: none}
    - name: A snapshot, committed to an image
      berth.runtime.berth_snapshot:
        container: snap1
        name: s1
        commit_to: snap1:s1
    - name: Back to the snapshot
      berth.runtime.berth_snapshot:
        container: snap1
        name: s1
        state: restored
"""


def test_snapshot_and_image_tasks_change_nothing_the_second_time(collections: str, berth_env: dict[str, str],
                                                                  busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    where = project(tmp_path, collections, SNAPSHOT_IMAGE)
    archive = str(tmp_path / "bb.tar")
    extra = {"busybox_tar": busybox_tar, "archive": archive, "image_changes": ['CMD ["sh"]']}
    first, out = play(berth_env, where, "-e", json.dumps(extra))
    assert first["rc"] == 0 and first["changed"] == 3, out[-3000:]  # image, container, snapshot (restore: equal)
    images = json.loads(berth(berth_env, "images", "-a", "--format", "json").stdout)
    again, out = play(berth_env, where, "-e", json.dumps(extra))
    assert again["rc"] == 0 and again["changed"] == 0, out[-3000:]
    assert json.loads(berth(berth_env, "images", "-a", "--format", "json").stdout) == images  # no new <none> image
    committed = json.loads(berth(berth_env, "inspect", "--type", "image", "snap1:s1").stdout)[0]["Id"]

    # the container moves on: restored reports (and does) a change once, then nothing
    berth(berth_env, "exec", "snap1", "sh", "-c", "echo after > /state")
    check, out = play(berth_env, where, "-e", json.dumps(extra), "--check")
    assert check["rc"] == 0 and check["changed"] == 1, out[-3000:]
    assert berth(berth_env, "exec", "snap1", "cat", "/state").stdout == "after\n"  # check mode changed nothing
    real, out = play(berth_env, where, "-e", json.dumps(extra), "--diff")
    assert real["changed"] == 1 and "restore snapshot s1" in out, out[-3000:]
    assert berth(berth_env, "exec", "snap1", "test", "-e", "/state", check=False).returncode != 0
    assert play(berth_env, where, "-e", json.dumps(extra))[0]["changed"] == 0
    assert json.loads(berth(berth_env, "inspect", "--type", "image", "snap1:s1").stdout)[0]["Id"] == committed

    # other import changes: imported again (a change), then nothing
    extra["image_changes"] = ['CMD ["sh"]', "ENV MODE=test"]
    changed, out = play(berth_env, where, "-e", json.dumps(extra), "--check", "--diff")
    assert changed["changed"] == 1 and "changes: Env differ" in out, out[-3000:]
    changed, out = play(berth_env, where, "-e", json.dumps(extra))
    # the image (its tag and archive follow it), so the container on it is recreated, with a new snapshot
    assert changed["changed"] == 3, out[-3000:]
    env_now = json.loads(berth(berth_env, "inspect", "--type", "image", "bb:tagged").stdout)[0]
    assert "MODE=test" in json.dumps(env_now)
    assert play(berth_env, where, "-e", json.dumps(extra))[0]["changed"] == 0


REMOVE_IN_USE = """
- name: Remove an image a container uses
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The image goes
      berth.runtime.berth_image:
        name: busybox:latest
        state: absent
"""


def test_check_mode_predicts_a_refused_removal(collections: str, berth_env: dict[str, str], busybox_tar: str,
                                               tmp_path) -> None:  # type: ignore[no-untyped-def]
    berth(berth_env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    berth(berth_env, "create", "--name", "user1", "--network", "none", "busybox:latest", "sleep", "1000")
    where = project(tmp_path, collections, REMOVE_IN_USE)
    check, out = play(berth_env, where, "--check")
    real, out_real = play(berth_env, where)
    assert check["failed"] == 1 and real["failed"] == 1, out + out_real
    assert "used by container(s) user1" in out and "used by container(s) user1" in out_real


CONTAINER_LIFECYCLE = """
- name: A container's life, by FQCN only
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/berth.runtime.berth:
      root: "{{ lookup('env', 'BERTH_ROOT') }}"
      runroot: "{{ lookup('env', 'BERTH_RUNROOT') }}"
  tasks:
    - name: The image
      berth.runtime.berth_image:
        name: busybox:latest
        source: import
        import_from: "{{ busybox_tar }}"
        changes: ['CMD ["sh"]']
      tags: [converge]
    - name: Converged
      berth.runtime.berth_container:
        name: life1
        image: busybox:latest
        command: [sleep, "100000"]
        network_mode: none
        state: started
      tags: [converge]
    - name: Stopped by name alone
      berth.runtime.berth_container:
        name: life1
        state: stopped
      tags: [stop]
    - name: Started again by name alone
      berth.runtime.berth_container:
        name: life1
        state: started
      tags: [start]
    - name: Removed by name alone
      berth.runtime.berth_container:
        name: life1
        state: absent
      tags: [remove]
"""


def test_container_converges_stops_by_name_and_goes(collections: str, berth_env: dict[str, str], busybox_tar: str,
                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    where = project(tmp_path, collections, CONTAINER_LIFECYCLE)
    extra = json.dumps({"busybox_tar": busybox_tar})
    first, out = play(berth_env, where, "-e", extra, "--tags", "converge")
    assert first["rc"] == 0 and first["changed"] == 2, out[-3000:]
    cid = json.loads(berth(berth_env, "inspect", "life1").stdout)[0]["Id"]
    stop, out = play(berth_env, where, "-e", extra, "--tags", "stop")
    assert stop["rc"] == 0 and stop["changed"] == 1, out[-3000:]
    info = json.loads(berth(berth_env, "inspect", "life1").stdout)[0]
    assert info["Id"] == cid and info["State"]["Status"] != "running"  # the same container, not recreated
    again, out = play(berth_env, where, "-e", extra, "--tags", "stop")
    assert again["changed"] == 0, out[-3000:]
    start, out = play(berth_env, where, "-e", extra, "--tags", "start")
    assert start["changed"] == 1, out[-3000:]
    assert json.loads(berth(berth_env, "inspect", "life1").stdout)[0]["State"]["Status"] == "running"
    gone, out = play(berth_env, where, "-e", extra, "--tags", "remove")
    assert gone["changed"] == 1 and berth(berth_env, "inspect", "life1", check=False).returncode != 0, out[-3000:]
