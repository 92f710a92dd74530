"""The health state machine (docker's rules) and the merge of the image's HEALTHCHECK with the
container's options, without containers; the monitor itself is tested in tests/integration."""

from __future__ import annotations

import pytest

from berth.container import health
from berth.container.config import ContainerConfig
from berth.errors import InvalidInput
from berth.units import format_duration, parse_duration

CHECK = health.Check(["CMD-SHELL", "true"], 1.0, 1.0, 10.0, 2)


def test_failures_count_after_the_start_period_and_a_success_resets() -> None:
    h = health.record(None, CHECK, 100.0, 105.0, 105.1, 1, "no")
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)  # in the start period
    h = health.record(h, CHECK, 100.0, 111.0, 111.1, 1, "no")
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.record(h, CHECK, 100.0, 112.0, 112.1, 1, "no")
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.record(h, CHECK, 100.0, 113.0, 113.1, 0, "yes")
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    # once healthy, a failure in the start period counts
    h = health.record(h, CHECK, 100.0, 104.0, 104.1, 1, "no")
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    for i in range(10):
        h = health.record(h, CHECK, 100.0, 120.0 + i, 120.5 + i, 0, str(i))
    assert [e["Output"] for e in h["Log"]] == ["5", "6", "7", "8", "9"]


def test_the_container_options_override_the_image_field_by_field() -> None:
    image = {"Healthcheck": {"Test": ["CMD", "curl", "-f", "localhost"], "Interval": 5_000_000_000, "Retries": 7}}
    c = health.effective(ContainerConfig(image="i"), image)
    assert c is not None and (c.test, c.interval, c.timeout, c.retries) == (["CMD", "curl", "-f", "localhost"], 5.0,
                                                                             30.0, 7)
    assert c.argv() == ["curl", "-f", "localhost"]
    c = health.effective(ContainerConfig(image="i", health_cmd="true", health_timeout=0.5), image)
    assert c is not None and (c.test, c.interval, c.timeout) == (["CMD-SHELL", "true"], 5.0, 0.5)
    assert c.argv() == ["/bin/sh", "-c", "true"]
    assert health.effective(ContainerConfig(image="i", no_healthcheck=True), image) is None
    assert health.effective(ContainerConfig(image="i"), {"Healthcheck": {"Test": ["NONE"]}}) is None
    assert health.effective(ContainerConfig(image="i"), {}) is None


def test_durations() -> None:
    assert [parse_duration(v) for v in ("1m30s", "500ms", "0.2s", "2", 3, "1h")] == [90, 0.5, 0.2, 2, 3, 3600]
    for bad in ("soon", "1x", "", "-1s", "s"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    assert [format_duration(v) for v in (0.3, 30, 90)] == ["300ms", "30s", "1m30s"]
