"""Is a host port free to publish? Published ports are DNAT rules, not sockets: a port another
container publishes is found in berth's own records and in the portmap plugin's DNAT rules (a
container of another berth root), a port a host process holds by trying to bind it; either way
the owner is named."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket

from berth.errors import BerthError, InvalidInput
from berth.proc import run

# /proc/net/{tcp,udp}[6] state column: LISTEN for tcp; for udp any bound socket holds the port
_HOLDING = {"tcp": {"0A"}, "udp": {"07", "01"}}
# the portmap plugin's rule per container: -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment
# "dnat name: \"NET\" id: \"CID\"" -m multiport --dports 8080,8443 -j CNI-DN-...
_DNAT_RE = re.compile(r'^-A CNI-HOSTPORT-DNAT .*-p (?P<proto>tcp|udp) .*id: \\"(?P<cid>[^\\"]+)\\".*'
                      r"--dports (?P<ports>[0-9,:]+)")


def _overlap(a: object, b: object) -> bool:
    wild = ("", "0.0.0.0", None)
    return a in wild or b in wild or a == b


def ports_in_use(wanted: list[dict[str, object]], published: list[tuple[str, dict[str, object]]]) -> None:
    """Raise InvalidInput naming the owner of the first wanted host port that is taken."""
    seen: list[dict[str, object]] = []
    for p in wanted:
        label = f"{p['hostPort']}/{p['protocol']}"
        for q in seen:
            if q["hostPort"] == p["hostPort"] and q["protocol"] == p["protocol"] and \
                    _overlap(q.get("hostIP"), p.get("hostIP")):
                raise InvalidInput(f"port {label} is published twice by this container")
        seen.append(p)
        for owner, q in published:
            if q["hostPort"] == p["hostPort"] and q["protocol"] == p["protocol"] and \
                    _overlap(q.get("hostIP"), p.get("hostIP")):
                raise InvalidInput(f"port {label} is already published by container {owner}")
        _host_free(str(p.get("hostIP") or "0.0.0.0"), int(p["hostPort"]), str(p["protocol"]))  # type: ignore[call-overload]


def _host_free(ip: str, port: int, proto: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers hold nothing
        try:
            s.bind((ip, port))
        except OSError as err:
            if err.errno == errno.EADDRNOTAVAIL:
                raise InvalidInput(f"cannot publish port {port}/{proto} on {ip}: no such address on this host") \
                    from None
            if err.errno != errno.EADDRINUSE:
                raise InvalidInput(f"cannot publish port {port}/{proto} on {ip}: {err.strerror}") from None
            raise InvalidInput(f"port {port}/{proto} is already in use on the host by {_owner(port, proto)}") \
                from None


def _owner(port: int, proto: str) -> str:
    """'process PID (COMM)' holding the port, from /proc; 'another program' if it is not visible."""
    inodes: set[str] = set()
    for table in (proto, proto + "6"):
        with contextlib.suppress(OSError), open(f"/proc/net/{table}", encoding="ascii") as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] in _HOLDING[proto]:
                    inodes.add(cols[9])
    wanted = {f"socket:[{i}]" for i in inodes if i != "0"}
    if wanted:
        for pid in sorted((d for d in os.listdir("/proc") if d.isdigit()), key=int):
            with contextlib.suppress(OSError):
                fds = os.listdir(f"/proc/{pid}/fd")
                for fd in fds:
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as c:
                                return f"process {pid} ({c.read().strip()})"
    return "another program"


def dnat_rules() -> list[tuple[str, dict[str, object]]]:
    """(container id, port) of every portmap DNAT rule on the host, whichever root made it."""
    try:
        text = run(["iptables-save", "-t", "nat"], check=False, timeout=30).stdout.decode(errors="replace")
    except BerthError:  # no iptables-save: no rules to find
        return []
    out: list[tuple[str, dict[str, object]]] = []
    for line in text.splitlines():
        m = _DNAT_RE.match(line)
        if not m:
            continue
        for item in m["ports"].split(","):
            lo, _, hi = item.partition(":")
            for port in range(int(lo), int(hi or lo) + 1):
                out.append((m["cid"], {"hostPort": port, "protocol": m["proto"]}))
    return out
