"""Resolve `-u user[:group]` and `--group-add` against the container's own /etc/passwd and
/etc/group, as docker does (runc's libcontainer/user GetExecUser and GetAdditionalGroups):

- a user matched by name or uid gets its passwd entry's uid, gid and home; a numeric uid with no
  entry runs with gid 0 and home /;
- an explicit group (name or gid; a gid need not exist) replaces the primary group, and then no
  supplementary groups come from /etc/group;
- otherwise the supplementary groups are the groups whose member list names the matched user;
- `--group-add` groups (names looked up in /etc/group, gids taken as they are) are added.
"""

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


def _id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _group(groups: list[list[str]], spec: str) -> int:
    """A group by name or gid (a gid need not have an entry)."""
    for g in groups:
        if len(g) >= 3 and _id(g[2]) is not None and (g[0] == spec or g[2] == spec):
            return int(g[2])
    n = _id(spec)
    if n is None:
        raise InvalidInput(f"unable to find group {spec}: no matching entries in the image's /etc/group")
    return n


def resolve(rootfs: str, user: str | None, group_add: list[str] | None = None
            ) -> tuple[int, int, list[int], str]:
    """(uid, gid, additional gids, home) for a user spec and the groups to add."""
    spec = user or "root"
    uname, _, gname = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    entry = next((p for p in passwd if len(p) >= 7 and _id(p[2]) is not None and _id(p[3]) is not None
                  and (p[0] == uname or p[2] == uname)), None)
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
    elif _id(uname) is not None:
        uid, gid, home = int(uname), 0, "/"  # docker: a uid without an entry runs with gid 0
    elif uname == "root" and not user:
        uid, gid, home = 0, 0, "/"  # no user asked for: root, even in an image without /etc/passwd (FROM scratch)
    else:
        raise InvalidInput(f"unable to find user {uname}: no matching entries in the image's /etc/passwd")
    extra: list[int] = []
    if gname:
        gid = _group(groups, gname)
    elif entry is not None:
        extra = [int(g[2]) for g in groups if len(g) >= 4 and _id(g[2]) is not None and entry[0] in g[3].split(",")]
    extra += [_group(groups, g) for g in group_add or []]
    return uid, gid, sorted(set(extra) - {gid}), home
