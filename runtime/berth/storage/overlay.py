"""overlay: overlay2-style layout.

    <home>/<id>/diff      this layer's files (the upper dir of a rw layer)
    <home>/<id>/link      the layer's short name; <home>/l/<short> -> ../<id>/diff
    <home>/<id>/lower     l/A:l/B:... the parent chain, nearest first
    <home>/<id>/work, merged
    <home>/<id>/rw        present for read-write layers

Mount data must fit in one page: lower dirs are given as short relative links and the mount
runs with the driver home as its working directory. Native diff reads the upper dir; berth mounts
with redirect_dir=off and metacopy=off so that the upper dir stays a faithful record.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from berth.errors import BerthError
from berth.locks import FileLock, adjust_counter
from berth.storage import mounts
from berth.storage.driver import Driver
from berth.storage.fsutil import is_opaque
from berth.storage.vfs import copy_tree

if TYPE_CHECKING:
    from berth.host.probe import HostFacts
    from berth.storage.differ import Candidates

LINK_DIR = "l"
LINK_LEN = 12
LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MAX_DEPTH = 250
PAGE = os.sysconf("SC_PAGE_SIZE")
INCOMPATIBLE_BACKING = ("overlay", "aufs", "ecryptfs", "nfs", "fuse")


class OverlayDriver(Driver):
    subdirs = (LINK_DIR,)
    name = "overlay"
    whiteouts = "overlay"

    @classmethod
    def supported(cls, facts: HostFacts) -> tuple[bool, str]:
        ov = facts.overlay
        if not ov.get("present"):
            return False, "the kernel has no overlay file system (modprobe overlay)"
        if facts.backing_fs in INCOMPATIBLE_BACKING:
            return False, f"the berth root is on {facts.backing_fs}, which cannot back overlay"
        if not facts.d_type:
            return False, (f"the backing {facts.backing_fs} file system has no d_type support "
                           "(reformat xfs with ftype=1, or ext4 with -O filetype)")
        if not ov.get("multiple_lowers"):
            return False, f"a trial overlay mount with two lower dirs failed: {ov.get('mount_error')}"
        return True, f"overlay works on {facts.backing_fs} (d_type, multiple lower dirs)"

    def native_diff(self) -> tuple[bool, str]:
        reason = str(self.facts.overlay.get("native_diff") or "")
        if reason:
            return False, f"not using native diff: {reason}"
        return True, "upper dir read directly (redirect_dir=off, metacopy=off)"

    def _d(self, id: str, *parts: str) -> str:
        return os.path.join(self.home, id, *parts)

    def _read(self, id: str, name: str) -> str:
        try:
            with open(self._d(id, name), encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def _new_link(self) -> str:
        while True:
            link = "".join(LINK_ALPHABET[b % len(LINK_ALPHABET)] for b in os.urandom(LINK_LEN))
            if not os.path.lexists(os.path.join(self.home, LINK_DIR, link)):
                return link

    def create(self, id: str, parent: str | None, rw: bool = False, opts: dict[str, str] | None = None) -> None:
        from berth.storage import quota

        size = quota.requested_size(opts, "overlay")
        if size is not None:
            quota.XfsProjectQuota(self.home).check()  # refuse before anything is made
        lower = ""
        if parent:
            self._require(parent)
            plower = self._read(parent, "lower")
            lower = f"{LINK_DIR}/{self._read(parent, 'link')}" + (f":{plower}" if plower else "")
            if lower.count(":") + 2 > MAX_DEPTH:
                raise BerthError(f"max depth exceeded: overlay supports chains of at most {MAX_DEPTH} layers "
                                 "(container layer included); squash the image")
        os.makedirs(os.path.join(self.home, LINK_DIR), exist_ok=True)
        os.mkdir(self._d(id), 0o700)
        os.mkdir(self._d(id, "diff"), 0o755)
        link = self._new_link()
        with open(self._d(id, "link"), "w", encoding="ascii") as f:
            f.write(link)
        os.symlink(f"../{id}/diff", os.path.join(self.home, LINK_DIR, link))
        if lower:
            with open(self._d(id, "lower"), "w", encoding="ascii") as f:
                f.write(lower)
            os.mkdir(self._d(id, "work"), 0o700)
            os.mkdir(self._d(id, "merged"), 0o700)
        if rw:
            open(self._d(id, "rw"), "w").close()
        if size is not None:
            # the whole layer directory: overlay renames from work/ into diff/, which XFS refuses
            # across project boundaries
            quota.XfsProjectQuota(self.home).limit(id, self._d(id), size)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._d(id, "diff"))

    def _lock(self, id: str) -> FileLock:
        return FileLock(os.path.join(self.runroot, "overlay-mounts", id))

    def _mount_data(self, id: str) -> str | None:
        lower = self._read(id, "lower")
        if not lower:
            return None
        opts = self.facts.overlay_options
        if os.path.exists(self._d(id, "rw")):
            data = f"{opts}lowerdir={lower},upperdir={id}/diff,workdir={id}/work"
        else:
            data = f"{opts}lowerdir={LINK_DIR}/{self._read(id, 'link')}:{lower}"
        if len(data) > PAGE - 1:
            raise BerthError(f"cannot mount layer {id}: mount data is {len(data)} bytes, over one page")
        return data

    def mount(self, id: str) -> str:
        self._require(id)
        data = self._mount_data(id)
        if data is None:
            return self._d(id, "diff")
        merged = self._d(id, "merged")
        with self._lock(id) as lock:
            count = adjust_counter(lock, +1)
            if count == 1 or not mounts.is_mountpoint(merged):
                try:
                    mounts.mount("overlay", "overlay", merged, data, cwd=self.home)
                except BaseException:
                    adjust_counter(lock, -1)
                    raise
        return merged

    def unmount(self, id: str) -> None:
        if not self._read(id, "lower"):
            return
        merged = self._d(id, "merged")
        with self._lock(id) as lock:
            if adjust_counter(lock, -1) == 0 and mounts.is_mountpoint(merged):
                mounts.umount(merged)

    def _force_unmount(self, id: str) -> None:
        merged = self._d(id, "merged")
        with self._lock(id) as lock:
            adjust_counter(lock, -(1 << 30))
            if os.path.isdir(merged) and mounts.is_mountpoint(merged):
                mounts.umount(merged)
        lockfile = os.path.join(self.runroot, "overlay-mounts", id)
        if os.path.exists(lockfile):
            os.unlink(lockfile)

    def remove(self, id: str) -> None:
        if not os.path.lexists(self._d(id)):
            return
        self._force_unmount(id)
        from berth.storage import quota

        quota.XfsProjectQuota(self.home).release(id)
        link = self._read(id, "link")
        if link:
            lp = os.path.join(self.home, LINK_DIR, link)
            if os.path.lexists(lp):
                os.unlink(lp)
        shutil.rmtree(self._d(id))

    def apply_target(self, id: str) -> tuple[str, bool]:
        return self._d(id, "diff"), False

    def native_candidates(self, id: str, parent: str | None) -> Candidates | None:
        if not parent or self._read(id, "lower").split(":")[0] != f"{LINK_DIR}/{self._read(parent, 'link')}":
            return None
        from berth.storage.differ import Candidates

        cands = Candidates()
        upper = self._d(id, "diff")
        for root, dirs, files in os.walk(upper):
            rel = os.path.relpath(root, upper)
            rel = "" if rel == "." else rel
            for n in dirs:
                p = f"{rel}/{n}" if rel else n
                cands.paths.add(p)
                if is_opaque(os.path.join(root, n)):
                    cands.subtrees.add(p)
            for n in files:
                p = f"{rel}/{n}" if rel else n
                cands.paths.add(p)
        return cands

    def snapshot(self, id: str, new_id: str) -> None:
        self._require(id)
        lower = self._read(id, "lower")
        parent_link = lower.split(":")[0][len(LINK_DIR) + 1 :] if lower else ""
        parent = None
        if parent_link:
            parent = os.path.basename(os.path.dirname(os.readlink(os.path.join(self.home, LINK_DIR, parent_link))))
        from berth.storage import quota

        record = quota.Quotas(self.home).get(id)
        self.create(new_id, parent, rw=os.path.exists(self._d(id, "rw")),
                    opts={"size": f"{record['size']}b"} if record else None)
        copy_tree(self._d(id, "diff"), self._d(new_id, "diff"))

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> bool:
        """The rw layer's upper dir already is an overlay layer: copy it (reflink where possible)."""
        if not self.native_diff()[0]:
            return False
        self.create(new_id, parent, rw=False)
        copy_tree(self._d(rw_id, "diff"), self._d(new_id, "diff"))
        return True

    def status(self) -> list[tuple[str, str]]:
        ok, why = self.native_diff()
        return [("Backing Filesystem", self.facts.backing_fs),
                ("Supports d_type", str(self.facts.d_type).lower()),
                ("Native Overlay Diff", str(ok).lower() + ("" if ok else f" ({why})")),
                ("Mount options", self.facts.overlay_options.rstrip(",") or "(kernel defaults)")]

    def metadata(self, id: str) -> dict[str, str]:
        md = {"UpperDir": self._d(id, "diff"), "WorkDir": self._d(id, "work")}
        lower = self._read(id, "lower")
        if lower:
            md["LowerDir"] = ":".join(os.path.realpath(os.path.join(self.home, p)) for p in lower.split(":"))
            md["MergedDir"] = self._d(id, "merged")
        return md

    def ids(self) -> list[str]:
        return sorted(n for n in os.listdir(self.home) if n != LINK_DIR and os.path.isdir(self._d(n)))

    def cleanup(self) -> None:
        return None

