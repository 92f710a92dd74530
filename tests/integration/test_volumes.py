"""Named volumes through the real CLI and runc: created on first use and filled from the image
(ownership and modes kept), data that outlives its containers, --mount of every type, removal
refused while in use, system df and prune."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import berth


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    # an image with content at /srv/data: a directory and a file owned by others, with their own modes
    berth(e, "run", "--name", "maker", "--network", "none", "busybox", "sh", "-c",
          "mkdir -p /srv/data/sub && echo seed > /srv/data/sub/f && chown -R 1234:2345 /srv/data && "
          "chmod 0750 /srv/data && chmod 0604 /srv/data/sub/f")
    berth(e, "commit", "maker", "seeded")
    berth(e, "rm", "maker")
    return e


def run(env: dict[str, str], *args: str, check: bool = True) -> str:
    return berth(env, "run", "--rm", "--network", "none", *args, check=check).stdout


def volume_dir(env: dict[str, str], name: str) -> str:
    return str(json.loads(berth(env, "volume", "inspect", name).stdout)[0]["Mountpoint"])


def test_created_on_first_use_and_filled_from_the_image(env: dict[str, str]) -> None:
    assert run(env, "-v", "app:/srv/data", "seeded", "cat", "/srv/data/sub/f") == "seed\n"
    d = volume_dir(env, "app")
    assert d == os.path.join(env["BERTH_ROOT"], "volumes", "app", "_data")
    st, fst = os.stat(d), os.stat(os.path.join(d, "sub", "f"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o750)
    assert (fst.st_uid, fst.st_gid, stat.S_IMODE(fst.st_mode)) == (1234, 2345, 0o604)
    # not empty any more: a later container sees what the first one left, not the image's content
    run(env, "-v", "app:/srv/data", "seeded", "sh", "-c", "rm /srv/data/sub/f && echo mine > /srv/data/new")
    assert run(env, "-v", "app:/srv/data", "seeded", "ls", "/srv/data/sub", "/srv/data/new").split() == \
        ["/srv/data/new", "/srv/data/sub:"]
    # a volume made empty beforehand is not filled from an image path that does not exist
    berth(env, "volume", "create", "blank")
    assert run(env, "-v", "blank:/nowhere", "busybox", "ls", "-A", "/nowhere") == ""


def test_data_survives_removal_and_recreation(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "w", "--network", "none", "-v", "keep:/data", "busybox",
          "sh", "-c", "echo kept > /data/file; sleep 300")
    berth(env, "rm", "-f", "w")
    berth(env, "create", "--name", "w", "--network", "none", "--mount", "type=volume,source=keep,target=/data",
          "busybox", "cat", "/data/file")
    assert berth(env, "start", "-a", "w").stdout == "kept\n"


def test_removal_refused_while_in_use(env: dict[str, str]) -> None:
    berth(env, "volume", "create", "--label", "team=db", "used")
    berth(env, "create", "--name", "holder", "--network", "none", "-v", "used:/v", "busybox", "true")
    cp = berth(env, "volume", "rm", "used", check=False)
    assert cp.returncode == 1 and "in use by container(s) holder" in cp.stderr
    cp = berth(env, "volume", "rm", "-f", "used", check=False)
    assert cp.returncode == 1 and "holder" in cp.stderr
    assert berth(env, "volume", "prune", "-f").stdout.startswith("Total reclaimed space")
    info = json.loads(berth(env, "volume", "inspect", "used").stdout)[0]
    assert info["Labels"] == {"team": "db"} and info["UsedBy"] == ["holder"]
    berth(env, "rm", "holder")
    assert berth(env, "volume", "rm", "used").stdout == "used\n"
    assert berth(env, "volume", "ls", "-q").stdout == ""
    assert not os.path.exists(os.path.join(env["BERTH_ROOT"], "volumes", "used"))
    cp = berth(env, "volume", "rm", "used", check=False)
    assert cp.returncode == 1 and "no such volume: used" in cp.stderr
    assert berth(env, "volume", "rm", "-f", "used").returncode == 0


def test_mount_types(env: dict[str, str], tmp_path: str) -> None:
    host = os.path.join(str(tmp_path), "host")
    os.mkdir(host)
    out = run(env, "--mount", "type=bind,source=" + host + ",target=/h",
              "--mount", "type=volume,src=ro-vol,dst=/r,readonly",
              "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
              "busybox", "sh", "-c",
              "echo b > /h/b; touch /r/x 2>/dev/null && echo writable; stat -c %a /t; grep ' /t ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0] == "1770" and "size=1024k" in lines[1] and "writable" not in out
    with open(os.path.join(host, "b")) as f:
        assert f.read() == "b\n"
    cp = berth(env, "run", "--rm", "--mount", "type=volume,target=/x", "busybox", "true", check=False)
    assert cp.returncode == 125 and "needs source" in cp.stderr and "Traceback" not in cp.stderr
    cp = berth(env, "run", "--rm", "-v", "x:/x", "busybox", "true", check=False)
    assert cp.returncode == 125 and "at least two characters" in cp.stderr
    cp = berth(env, "run", "--rm", "--mount", "type=nfs,source=a,target=/x", "busybox", "true", check=False)
    assert cp.returncode == 125 and "use bind, volume or tmpfs" in cp.stderr


def test_system_df_and_prune(env: dict[str, str]) -> None:
    run(env, "-v", "big:/data", "busybox", "dd", "if=/dev/zero", "of=/data/blob", "bs=64k", "count=16")
    berth(env, "create", "--name", "holder", "--network", "none", "-v", "held:/d", "busybox", "true")
    rows = {r["Type"]: r for r in json.loads(berth(env, "system", "df", "--format", "json").stdout)}
    vols = rows["Volumes"]
    assert vols["Total"] == 2 and vols["Active"] == 1
    assert vols["Size"] >= 1 << 20 and vols["Reclaimable"] >= 1 << 20
    out = berth(env, "system", "prune", "-f").stdout
    assert "Deleted Volumes" not in out and berth(env, "volume", "ls", "-q").stdout.split() == ["big", "held"]
    out = berth(env, "system", "prune", "-f", "--volumes").stdout
    # the container was stopped, so it went first and its volume with the rest
    assert "Deleted Volumes:\nbig\nheld\n" in out
    assert berth(env, "volume", "ls", "-q").stdout == ""


def test_declared_volumes(env: dict[str, str], tmp_path: str) -> None:
    state = os.path.join(str(tmp_path), "state.yml")

    def write(labels: str, old_state: str) -> None:
        with open(state, "w") as f:
            f.write(f"volumes:\n  - name: web-data\n    labels: {{{labels}}}\n"
                    f"  - {{name: old-data, state: {old_state}}}\n"
                    "containers:\n  - name: web\n    image: busybox\n    network: none\n    state: present\n"
                    "    command: [cat, /data/f]\n    mounts: [{type: volume, source: web-data, target: /data}]\n")

    write("team: web", "present")
    assert berth(env, "plan", "-f", state).stdout.splitlines() == [
        "volume web-data: volume web-data does not exist", "volume old-data: volume old-data does not exist",
        "create web: container web does not exist"]
    berth(env, "apply", "-f", state)
    assert berth(env, "plan", "-f", state).stdout == "no changes: the host matches the state\n"
    assert json.loads(berth(env, "volume", "inspect", "web-data").stdout)[0]["Labels"] == {"team": "web"}
    with open(os.path.join(volume_dir(env, "web-data"), "f"), "w") as f:
        f.write("data")
    write("team: ops", "absent")
    assert berth(env, "plan", "-f", state).stdout.splitlines() == [
        "volume web-data: label team changed", "remove-volume old-data: declared absent"]
    berth(env, "apply", "-f", state)
    assert berth(env, "plan", "-f", state).stdout == "no changes: the host matches the state\n"
    assert berth(env, "volume", "ls", "-q").stdout.split() == ["web-data"]
    assert berth(env, "start", "-a", "web").stdout == "data"  # relabelling kept the data
    with open(state, "a") as f:
        f.write("  - {name: gone, state: absent}\n")
    with open(state.replace(".yml", "2.yml"), "w") as f:
        f.write("volumes:\n  - name: web-data\n    state: absent\n")
    cp = berth(env, "apply", "-f", state.replace(".yml", "2.yml"), check=False)
    assert cp.returncode == 1 and "in use by container(s) web" in cp.stderr
    with open(state, "w") as f:
        f.write("volumes:\n  - name: x\n")
    cp = berth(env, "plan", "-f", state, check=False)
    assert cp.returncode == 1 and "line 2: invalid volume name 'x'" in cp.stderr


def test_snapshot_with_volumes(env: dict[str, str]) -> None:
    berth(env, "run", "-d", "--name", "db", "--network", "none", "-v", "db-data:/data", "busybox",
          "sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait")
    berth(env, "exec", "db", "sh", "-c", "echo v1 > /data/row; mkdir /data/dir; echo old > /data/dir/keep; "
                                         "echo r1 > /root-file")
    read = "cat /data/row /root-file /data/dir/keep; ls /data"

    def state() -> list[str]:
        return berth(env, "exec", "db", "sh", "-c", read + " 2>&1; true").stdout.splitlines()

    first = state()
    assert first[:3] == ["v1", "r1", "old"]
    berth(env, "snapshot", "create", "--with-volumes", "db", "both")
    berth(env, "snapshot", "create", "db", "layer-only")
    snaps = {s["name"]: s for s in json.loads(berth(env, "snapshot", "ls", "db", "--format", "json").stdout)}
    assert snaps["both"]["volumes"] == ["db-data"] and snaps["layer-only"]["volumes"] == []
    assert "db-data" in berth(env, "snapshot", "ls", "db").stdout
    berth(env, "exec", "db", "sh", "-c", "echo v2 > /data/row; rm -r /data/dir; echo extra > /data/new; "
                                         "echo r2 > /root-file")
    changed = state()
    assert changed[:2] == ["v2", "r2"]
    # without volumes, only the file system goes back
    berth(env, "snapshot", "restore", "db", "layer-only")
    assert state()[:2] == ["v2", "r1"]
    berth(env, "snapshot", "restore", "db", "both")
    assert state() == first  # data and file system back together (the added file gone, the removed back)
    copies = os.path.join(env["BERTH_ROOT"], "volume-snapshots")
    assert len(os.listdir(copies)) == 1
    berth(env, "snapshot", "rm", "db", "both")
    cid = json.loads(berth(env, "inspect", "db").stdout)[0]["Id"]
    assert not os.path.exists(os.path.join(copies, cid, "both"))
    berth(env, "snapshot", "create", "--with-volumes", "db", "again")
    berth(env, "rm", "-f", "db")
    assert not os.path.exists(os.path.join(copies, cid))
