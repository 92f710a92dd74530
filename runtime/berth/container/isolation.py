"""Bridge networks do not reach each other, as docker's do: with IP forwarding on, the host would
route between any two of them. Two chains in the filter table, hooked first into FORWARD, drop
what leaves one berth bridge for another (docker's DOCKER-ISOLATION-STAGE-1/2 in berth's names):

    FORWARD            -j BERTH-ISOLATION-1
    BERTH-ISOLATION-1  -i BR ! -o BR -j BERTH-ISOLATION-2    (one per bridge)
    BERTH-ISOLATION-2  -o BR -j DROP                         (one per bridge)

Traffic inside one network and traffic out to the host's other interfaces is untouched. The
rules are made when a container joins a network (iptables rules do not outlive a reboot; the
network's file does) and removed with the network."""

from __future__ import annotations

import shutil

from berth.proc import run

FIRST = "BERTH-ISOLATION-1"
SECOND = "BERTH-ISOLATION-2"


def available() -> bool:
    return shutil.which("iptables") is not None


def _iptables(*args: str, check: bool = False) -> bool:
    """iptables -w (waits for the xtables lock another process holds); True on success."""
    return run(["iptables", "-w", *args], check=check, what="setting up network isolation").returncode == 0


def _leaving(bridge: str) -> list[str]:
    return [FIRST, "-i", bridge, "!", "-o", bridge, "-j", SECOND]


def _entering(bridge: str) -> list[str]:
    return [SECOND, "-o", bridge, "-j", "DROP"]


def ensure(bridge: str) -> None:
    """The bridge's two rules, and the chains and FORWARD's jump the first time (idempotent: one
    iptables check when they are there already; the leaving rule is made last, so it stands for
    both). Without iptables the networks are not isolated (`network inspect` says so)."""
    if not available() or _iptables("-C", *_leaving(bridge)):
        return
    for chain in (FIRST, SECOND):
        _iptables("-N", chain)  # fails when it exists: fine
    if not _iptables("-C", "FORWARD", "-j", FIRST):
        _iptables("-I", "FORWARD", "1", "-j", FIRST, check=True)
    if not _iptables("-C", *_entering(bridge)):
        _iptables("-A", *_entering(bridge), check=True)
    if not _iptables("-C", *_leaving(bridge)):
        _iptables("-A", *_leaving(bridge), check=True)


def remove(bridge: str) -> None:
    """The bridge's rules (every copy); the chains stay, empty chains match nothing."""
    if not available():
        return
    for rule in (_leaving(bridge), _entering(bridge)):
        while _iptables("-D", *rule):
            pass
