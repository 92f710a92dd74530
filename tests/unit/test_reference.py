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
