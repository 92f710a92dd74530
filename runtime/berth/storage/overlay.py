"""overlay: overlay2-style layout.

    <home>/<id>/diff      this layer's files (the upper dir of a rw layer)
    <home>/<id>/link      the layer's short name; <home>/l/<short> -> ../<id>/diff
    <home>/<id>/lower     l/A:l/B:... the parent chain, nearest first
    <home>/<id>/work      overlay's work dir (layers with parents)
    <home>/<id>/rw        present for read-write layers
    <home>/<id>/volatile  present for disposable rw layers: mounted with overlay's volatile option
                          where the kernel has it (no sync of the upper dir at unmount)

Mount data must fit in one page: lower dirs are given as short relative links and the mount
runs with the driver home as its working directory (the layer store's mount table mounts what
`mounts` describes). Native diff reads the upper dir; berth mounts with redirect_dir=off and
metacopy=off so that the upper dir stays a faithful record.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from berth.errors import BerthError
from berth.storage.driver import (
    ContentRoot,
    Disposable,
    Driver,
    FastCommit,
    Mount,
    NativeDiffer,
    Snapshotter,
    directory,
    require,
)
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


class OverlayDriver(Driver, NativeDiffer, FastCommit, Snapshotter, ContentRoot, Disposable):
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
            require(self, parent)
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
        if rw:
            open(self._d(id, "rw"), "w").close()
        if size is not None:
            # the whole layer directory: overlay renames from work/ into diff/, which XFS refuses
            # across project boundaries
            quota.XfsProjectQuota(self.home).limit(id, self._d(id), size)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._d(id, "diff"))

    def mounts(self, id: str, parents: list[str]) -> list[Mount]:
        """A layer without parents is its diff dir; a child is an overlay of its parents' diff
        dirs (by short link, relative to the driver home), with its own diff dir as the upper
        dir if it is read-write, else as the top lower dir."""
        if not parents:
            return directory(self._d(id, "diff"))
        lower = ":".join(f"{LINK_DIR}/{self._read(p, 'link')}" for p in parents)
        opts = tuple(o for o in self.facts.overlay_options.split(",") if o)
        if os.path.exists(self._d(id, "rw")):
            layers = (f"lowerdir={lower}", f"upperdir={id}/diff", f"workdir={id}/work")
            if self._volatile(id):
                layers += ("volatile",)
        else:
            layers = (f"lowerdir={LINK_DIR}/{self._read(id, 'link')}:{lower}",)
        m = Mount("overlay", "overlay", opts + layers, cwd=self.home)
        if len(m.data) > PAGE - 1:
            raise BerthError(f"cannot mount layer {id}: mount data is {len(m.data)} bytes, over one page")
        return [m]

    def make_disposable(self, id: str) -> None:
        open(self._d(id, "volatile"), "w").close()

    def _volatile(self, id: str) -> bool:
        return bool(self.facts.overlay.get("volatile")) and os.path.exists(self._d(id, "volatile"))

    def activate(self, id: str) -> None:
        """A volatile mount leaves work/work/incompat/volatile behind, and overlay refuses to mount
        that work dir again until it is gone (the upper dir may be inconsistent after a crash): a
        disposable layer's content is thrown away with it, so the marker is simply removed."""
        if self._volatile(id):
            shutil.rmtree(self._d(id, "work", "work", "incompat"), ignore_errors=True)

    def deactivate(self, id: str) -> None:
        return None

    def remove(self, id: str) -> None:
        if not os.path.lexists(self._d(id)):
            return
        from berth.storage import quota

        quota.XfsProjectQuota(self.home).release(id)
        link = self._read(id, "link")
        if link:
            lp = os.path.join(self.home, LINK_DIR, link)
            if os.path.lexists(lp):
                os.unlink(lp)
        shutil.rmtree(self._d(id))

    def content_root(self, id: str) -> str:
        return self._d(id, "diff")

    def native_candidates(self, id: str, parent: str) -> Candidates:
        """The upper dir holds exactly the layer's changes (whiteouts and opaque dirs included)."""
        if self._read(id, "lower").split(":")[0] != f"{LINK_DIR}/{self._read(parent, 'link')}":
            raise BerthError(f"layer {parent} is not the parent of overlay layer {id}")
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
        require(self, id)
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

    def fast_commit(self) -> tuple[bool, str]:
        """The upper dir is a faithful layer exactly when native diff is."""
        return self.native_diff()

    def commit_copy(self, rw_id: str, new_id: str, parent: str | None) -> None:
        """The rw layer's upper dir already is an overlay layer: copy it (reflink where possible)."""
        self.create(new_id, parent, rw=False)
        copy_tree(self._d(rw_id, "diff"), self._d(new_id, "diff"))

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
        return md

    def ids(self) -> list[str]:
        return sorted(n for n in os.listdir(self.home) if n != LINK_DIR and os.path.isdir(self._d(n)))

