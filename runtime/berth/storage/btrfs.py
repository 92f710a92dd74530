"""btrfs: a subvolume per layer, a child is a snapshot of its parent.

Native diff: `btrfs send --no-data -p` between two read-only snapshots lists every path that
changed (deletes, renames, chmod included, unlike find-new) without reading file data; the stream
is parsed here, and the shared differ compares only those paths.
"""

from __future__ import annotations

import os
import struct

from berth.errors import BerthError
from berth.host.probe import HostFacts, fs_type
from berth.proc import run
from berth.storage.differ import Candidates
from berth.storage.driver import ContentRoot, Driver, FastCommit, Mount, NativeDiffer, Snapshotter, directory, require

BTRFS_FIRST_FREE_OBJECTID = 256
SEND_MAGIC = b"btrfs-stream\0"
C_SUBVOL, C_SNAPSHOT, C_RENAME, C_LINK = 1, 2, 9, 10
C_END = 21
A_PATH, A_PATH_TO, A_PATH_LINK = 15, 16, 17


def parse_send_stream(data: bytes) -> Candidates:
    """Paths touched by a `btrfs send` stream (a rename's destination is compared in full)."""
    if not data.startswith(SEND_MAGIC):
        raise BerthError("btrfs send produced no stream (is btrfs-progs installed?)")
    pos = len(SEND_MAGIC) + 4
    cands = Candidates()
    while pos + 10 <= len(data):
        length, cmd, _crc = struct.unpack_from("<IHI", data, pos)
        body = data[pos + 10 : pos + 10 + length]
        pos += 10 + length
        attrs: dict[int, bytes] = {}
        i = 0
        while i + 4 <= len(body):
            t, n = struct.unpack_from("<HH", body, i)
            attrs[t] = body[i + 4 : i + 4 + n]
            i += 4 + n
        if cmd == C_END:
            break
        if cmd in (C_SUBVOL, C_SNAPSHOT):
            continue
        path = attrs.get(A_PATH)
        if path is None:
            continue
        p = os.fsdecode(path)
        if cmd == C_RENAME and A_PATH_TO in attrs:
            cands.paths.add(p)
            cands.subtrees.add(os.fsdecode(attrs[A_PATH_TO]))
        elif cmd == C_LINK and A_PATH_LINK in attrs:
            cands.paths.add(p)
            cands.paths.add(os.fsdecode(attrs[A_PATH_LINK]))
        else:
            cands.paths.add(p)
    cands.paths.discard("")
    return cands


class BtrfsDriver(Driver, NativeDiffer, FastCommit, Snapshotter, ContentRoot):
    subdirs = ("subvolumes", "tmp",)
    name = "btrfs"
    whiteouts = "delete"

    @classmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        if "btrfs" not in facts.filesystems:
            return False, "the kernel has no btrfs support"
        if facts.backing_fs != "btrfs":
            return False, (f"the berth root is on {facts.backing_fs}, not btrfs "
                           "(mount a btrfs file system at the root to use it)")
        return True, "the berth root is on btrfs"

    def __init__(self, home: str, options: dict[str, str], facts: HostFacts) -> None:
        super().__init__(home, options, facts)
        if fs_type(self.home) != "btrfs":
            raise BerthError(f"the btrfs driver needs {self.home} on a btrfs file system "
                             f"(it is on {fs_type(self.home)})")

    def native_diff(self) -> tuple[bool, str]:
        return True, "btrfs send --no-data between read-only snapshots"

    def _sv(self, id: str) -> str:
        return os.path.join(self.home, "subvolumes", id)

    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None:
        from berth.storage import quota

        size = quota.requested_size(opts, "btrfs")
        os.makedirs(os.path.join(self.home, "subvolumes"), exist_ok=True)
        if parent:
            require(self, parent)
            run(["btrfs", "subvolume", "snapshot", self._sv(parent), self._sv(id)], what="btrfs snapshot")
        else:
            run(["btrfs", "subvolume", "create", self._sv(id)], what="btrfs subvolume create")
        if size is not None:
            quota.BtrfsQgroup(self.home).limit(id, self._sv(id), size)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._sv(id))

    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        return directory(self._sv(id))

    def content_root(self, id: str) -> str:
        return self._sv(id)

    def _delete_subvolume(self, path: str) -> None:
        """Delete path and any subvolumes nested in it (a container may create some), deepest first."""
        nested = []
        for root, dirs, _files in os.walk(path):
            for d in list(dirs):
                p = os.path.join(root, d)
                st = os.lstat(p)
                if st.st_ino == BTRFS_FIRST_FREE_OBJECTID:
                    nested.append(p)
        for p in sorted(nested, key=len, reverse=True):
            run(["btrfs", "property", "set", "-ts", p, "ro", "false"], check=False)
            run(["btrfs", "subvolume", "delete", p], what="btrfs subvolume delete")
        run(["btrfs", "property", "set", "-ts", path, "ro", "false"], check=False)
        run(["btrfs", "subvolume", "delete", path], what="btrfs subvolume delete")

    def remove(self, id: str) -> None:
        from berth.storage import quota

        qgroups = quota.BtrfsQgroup(self.home)
        limited = qgroups.quotas.get(id) is not None
        subvolume_id = qgroups.subvolume_id(self._sv(id)) if limited and os.path.isdir(self._sv(id)) else None
        if os.path.lexists(self._sv(id)):
            self._delete_subvolume(self._sv(id))
        if limited:
            qgroups.release(id, subvolume_id, self.home)

    def snapshot(self, id: str, new_id: str) -> None:
        from berth.storage import quota

        require(self, id)
        run(["btrfs", "subvolume", "snapshot", self._sv(id), self._sv(new_id)], what="btrfs snapshot")
        record = quota.Quotas(self.home).get(id)
        if record:
            quota.BtrfsQgroup(self.home).limit(new_id, self._sv(new_id), record["size"])

    def fast_commit(self) -> tuple[bool, str]:
        return True, "a snapshot of the subvolume"

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> None:
        """A snapshot of the container's subvolume is the new layer (no data copied)."""
        self.snapshot(rw_id, new_id)

    def native_candidates(self, id: str, parent: str) -> Candidates:
        tmp = os.path.join(self.home, "tmp")
        os.makedirs(tmp, exist_ok=True)
        tag = os.urandom(6).hex()
        ro_parent, ro_child = os.path.join(tmp, f"{tag}-p"), os.path.join(tmp, f"{tag}-c")
        made: list[str] = []
        try:
            for src, dst in ((self._sv(parent), ro_parent), (self._sv(id), ro_child)):
                run(["btrfs", "subvolume", "snapshot", "-r", src, dst], what="btrfs snapshot")
                made.append(dst)
            stream = os.path.join(tmp, f"{tag}.send")
            made.append(stream)
            run(["btrfs", "send", "-q", "--no-data", "-p", ro_parent, "-f", stream, ro_child], what="btrfs send")
            with open(stream, "rb") as f:
                data = f.read()
            return parse_send_stream(data)
        finally:
            for p in made:
                if p.endswith(".send"):
                    if os.path.exists(p):
                        os.unlink(p)
                else:
                    run(["btrfs", "subvolume", "delete", p], check=False)

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", "btrfs"), ("Native Diff", "btrfs send --no-data")]

    def ids(self) -> list[str]:
        d = os.path.join(self.home, "subvolumes")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []
