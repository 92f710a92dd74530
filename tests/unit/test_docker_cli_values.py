"""docker's value formats in berth's CLI: go-units durations, --since/--until times, filters, the
management-command table."""

from __future__ import annotations

import pytest

from berth.cli import aliases
from berth.cli.listing import human_duration, parse_filters
from berth.cli.logcmd import parse_time
from berth.cli.main import command_index
from berth.errors import InvalidInput


@pytest.mark.parametrize(("secs", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (2 * 365 * 86400, "2 years"),
])
def test_human_duration_is_go_units(secs: float, text: str) -> None:
    assert human_duration(secs) == text


def test_since_until_values() -> None:
    now = 1_700_000_000.0
    assert parse_time("10m", now, "--since") == now - 600
    assert parse_time("1h30m", now, "--since") == now - 5400
    assert parse_time("1.5s", now, "--since") == now - 1.5
    assert parse_time("1699999999", now, "--since") == 1699999999.0
    assert parse_time("1699999999.25", now, "--since") == 1699999999.25
    assert parse_time("2023-11-14T22:13:20Z", now, "--since") == now
    assert parse_time("2023-11-14T23:13:20+01:00", now, "--since") == now
    assert parse_time("2023-11-14T22:13:20.5Z", now, "--since") == now + 0.5
    for bad in ("yesterday", "10x", "", "2023-13-45"):
        with pytest.raises(InvalidInput, match="invalid value for --since"):
            parse_time(bad, now, "--since")


def test_filters() -> None:
    assert parse_filters(["status=exited", "status=created", "label=a=b"], ("status", "label")) == \
        {"status": ["exited", "created"], "label": ["a=b"]}
    with pytest.raises(InvalidInput, match="Invalid filter 'bogus'"):
        parse_filters(["bogus=1"], ("status",))
    with pytest.raises(InvalidInput, match="Invalid filter 'status'"):
        parse_filters(["status"], ("status",))


@pytest.mark.parametrize(("argv", "expected"), [
    (["container", "ls", "-a"], ["ps", "-a"]),
    (["--root", "/r", "container", "inspect", "x"], ["--root", "/r", "inspect", "--type", "container", "x"]),
    (["image", "rm", "bb"], ["rmi", "bb"]),
    (["image", "ls"], ["images"]),
    (["system", "info"], ["info"]),
    (["container", "prune", "-f"], ["container", "prune", "-f"]),  # a real subcommand stays
    (["system", "df"], ["system", "df"]),
    (["ps", "container"], ["ps", "container"]),  # only the command word is looked at
])
def test_management_command_forms(argv: list[str], expected: list[str]) -> None:
    assert aliases.rewrite(argv, command_index(argv)) == expected


@pytest.mark.parametrize("ports,exposed,network,text", [
    (["8080:80"], [], "bridge", "0.0.0.0:8080->80/tcp"),
    # exposed and not published, as docker's DisplayablePorts: grouped into ranges, before the mappings
    (["8080:80"], ["80/tcp", "443/tcp"], "bridge", "443/tcp, 0.0.0.0:8080->80/tcp"),
    ([], ["80/tcp", "81/tcp", "82/tcp", "90/udp"], "bridge", "80-82/tcp, 90/udp"),
    (["80:80", "81:81", "127.0.0.1:9000:9000/udp"], [], "bridge",
     "0.0.0.0:80-81->80-81/tcp, 127.0.0.1:9000->9000/udp"),
    # no network of its own: nothing, as docker
    ([], ["80/tcp"], "none", ""),
])
def test_ps_ports_are_dockers(ports: list[str], exposed: list[str], network: str, text: str) -> None:
    from berth.cli.listing import ports_text
    from berth.container.config import ContainerConfig
    from berth.container.store import Container

    cfg = ContainerConfig(image="bb", ports=ports, network=network)
    c = Container("c" * 64, "web", "i" * 64, "l" * 64, cfg, 0.0, "running", 1, None, False, 0.0, None, "crun", None)
    assert ports_text(c, exposed) == text
    assert ports_text(c.replace(state="exited"), exposed) == ""
