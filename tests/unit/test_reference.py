from __future__ import annotations

import pytest

from berth.errors import InvalidInput
from berth.image.reference import parse


@pytest.mark.parametrize("ref,expected", [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
    ("registry.example/a/b:v1.2-rc_3", "registry.example/a/b:v1.2-rc_3"),
    ("app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
])
def test_valid(ref: str, expected: str) -> None:
    assert str(parse(ref)) == expected


@pytest.mark.parametrize("ref", ["", "UPPER", "a//b", "app:", "app:-bad", "app@sha256:xyz", " app", "a" * 300])
def test_invalid(ref: str) -> None:
    with pytest.raises(InvalidInput):
        parse(ref)


@pytest.mark.parametrize("ref,why", [
    ("sha256:abcd", "image ID"),               # would be looked up as an ID, never as this tag
    ("sha256", "image ID"),
    ("sha256:" + "a" * 64, "image ID"),
    ("a" * 64, "64 hexadecimal"),              # the same: an image ID, not a name
    ("team/" + "b" * 64 + ":v1", "64 hexadecimal"),
    ("localhost:99999/app", "port 99999"),
    ("registry.example:0/app:1", "port 0"),
    ("[::1]:70000/app", "port 70000"),
])
def test_names_that_cannot_be_looked_up_again_are_refused(ref: str, why: str) -> None:
    """Issue 18 item 15: a reference berth would accept but then never resolve, or a registry port
    no host can have, is refused with one line saying why."""
    with pytest.raises(InvalidInput, match=why) as err:
        parse(ref)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("ref", ["localhost:65535/app", "sha256sum:v1", "team/sha256:v1", "a" * 63, "cafe:beef"])
def test_names_near_the_refused_ones_stay_valid(ref: str) -> None:
    assert parse(ref).name
