"""Resolve `-u user[:group]` against the container's own /etc/passwd and /etc/group."""

from __future__ import annotations

from berth.container import pathres
from berth.errors import InvalidInput


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    # resolved inside the rootfs through file descriptors: a link to a host file is never followed
    data = pathres.read_in_root(rootfs, f"/etc/{name}")
    if data is None:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve(rootfs: str, user: str | None) -> tuple[int, int, list[int], str]:
    """(uid, gid, additional gids, home) for a user spec; numeric ids need no passwd entry."""
    spec = user or "root"
    uname, _, gname = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid: int | None = None
    gid: int | None = None
    home = "/"
    entry = None
    for p in passwd:
        if len(p) >= 7 and (p[0] == uname or (uname.isdigit() and p[2] == uname)):
            entry = p
            break
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
    elif uname.isdigit():
        uid, gid = int(uname), int(uname) if not gname else 0
    elif uname == "root" and not user:
        uid, gid = 0, 0  # no user asked for: root, even in an image without /etc/passwd (FROM scratch)
    else:
        raise InvalidInput(f"unable to find user {uname}: no matching entries in the image's /etc/passwd")
    if gname:
        if gname.isdigit():
            gid = int(gname)
        else:
            match = [g for g in groups if len(g) >= 3 and g[0] == gname]
            if not match:
                raise InvalidInput(f"unable to find group {gname}: no matching entries in the image's /etc/group")
            gid = int(match[0][2])
    extra = []
    if entry is not None:
        for g in groups:
            if len(g) >= 4 and uname in g[3].split(",") and g[2].isdigit():
                extra.append(int(g[2]))
    assert uid is not None and gid is not None
    return uid, gid, sorted(set(extra) - {gid}), home
