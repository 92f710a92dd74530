"""One size grammar for every size berth reads, and the dm.* options checked in one place."""

from __future__ import annotations

import pytest

from berth.errors import BerthError, InvalidInput
from berth.storage.devicemapper import DmOptions
from berth.units import parse_size


@pytest.mark.parametrize(("text", "value"), [("4096", 4096), ("64m", 64 << 20), ("4G", 4 << 30), ("1.5g", 3 << 29),
                                             ("10GB", 10 << 30), ("512K", 512 << 10), ("2t", 2 << 40),
                                             (" 7 b ", 7)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "m", "-1g", "1x", "1.2.3m", "4 GiB"])
def test_bad_sizes_are_one_line_errors(text: str) -> None:
    with pytest.raises(InvalidInput, match=f"invalid memory limit {text!r}: use a number"):
        parse_size(text, "memory limit")


def test_dm_options_defaults_and_pool_shape() -> None:
    o = DmOptions({})
    assert (o.basesize, o.fs, o.min_free, o.thinpooldev, o.vg, o.chunk, o.chunk_kib) == \
        (10 << 30, "ext4", 10, None, "berth", "512K", 512)
    o = DmOptions({"dm.basesize": "2g", "dm.blocksize": "1M", "dm.thinp_percent": "90%", "dm.vg": "data-vg"})
    assert (o.basesize, o.chunk, o.chunk_kib, o.data_percent) == (2 << 30, "1M", 1024, 90)


@pytest.mark.parametrize(("opts", "message"), [
    ({"dm.blocksize": "100K"}, "multiple of 64K"), ({"dm.blocksize": "2G"}, "multiple of 64K"),
    ({"dm.vg": "-bad"}, "not a valid volume group name"), ({"dm.fs": "btrfs"}, "dm.fs must be ext4 or xfs"),
    ({"dm.min_free_space": "100%"}, "percentage below 100"), ({"dm.thinp_percent": "0"}, "percentage from 1 to 100"),
    ({"dm.thinp_percent": "95", "dm.thinp_metapercent": "10"}, "must not exceed 100"),
    ({"dm.basesize": "big"}, "invalid dm.basesize"), ({"dm.nope": "1"}, "unknown storage option 'dm.nope'")])
def test_dm_options_refused(opts: dict[str, str], message: str) -> None:
    with pytest.raises(BerthError, match=message):
        DmOptions(opts)
