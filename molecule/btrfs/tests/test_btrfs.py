"""testinfra: the container runs on the btrfs volume the storage role prepared."""

import json
import os

AREA = "/tmp/berth-molecule-btrfs"


def berth(host, args):
    exe = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".venv", "bin", "berth")
    return host.run(f"{exe} --config {AREA}/config.yml --runroot {AREA}/run {args}")


def test_volume_is_btrfs(host):
    assert host.mount_point(f"{AREA}/root").filesystem == "btrfs"


def test_berth_uses_btrfs(host):
    info = json.loads(berth(host, "info --format json").stdout)
    assert info["driver"] == "btrfs" and info["root"] == f"{AREA}/root"


def test_container_runs_on_it(host):
    out = berth(host, "exec on-btrfs cat /data")
    assert out.rc == 0 and out.stdout == "stored\n"
