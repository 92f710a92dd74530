"""berth.record: the hot path's stand-in for dataclasses."""

from __future__ import annotations

import pytest

from berth.record import Factory, Record


class Point(Record, frozen=True):
    x: int
    y: int = 0


class Bag(Record):
    items: list[int] = Factory(list)


def test_a_frozen_record_refuses_assignment_and_deletion():
    p = Point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 3
    with pytest.raises(AttributeError):
        del p.y
    assert (p.x, p.y) == (1, 2)


def test_a_frozen_record_hashes_by_its_fields():
    assert hash(Point(1, 2)) == hash(Point(1, y=2))
    assert len({Point(1, 2), Point(1, 2), Point(2)}) == 2
    assert Point(1).replace(y=5) == Point(1, 5)


def test_a_plain_record_stays_mutable_and_unhashable():
    b = Bag()
    b.items = [1]
    assert b == Bag([1]) and Bag().items is not Bag().items
    with pytest.raises(TypeError):
        hash(b)
