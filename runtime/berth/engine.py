"""berth.Engine: the one facade the CLI, the Ansible modules and the reconciler call."""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, BinaryIO

from berth import config as config_mod
from berth import spool
from berth.db import Database
from berth.errors import BerthError, ImageInUse, InvalidInput, LayerInUse, NotFound, StoreConflict
from berth.host.probe import HostFacts, check_root
from berth.image.store import BlobStore, Image, ImageStore, ManifestStore, Stores
from berth.locks import FileLock
from berth.storage import drivers
from berth.storage.layers import LayerStore
from berth.timefmt import iso_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from berth.container.checkpoint import Checkpoints
    from berth.container.events import Journal
    from berth.container.network import Networks
    from berth.container.store import Container
    from berth.declare.reconcile import Action
    from berth.declare.schema import Desired
    from berth.image.registry import Registries
    from berth.image.signing import Trust
    from berth.storage.driver import Driver


class Engine:
    """One root's stores and driver. report=True opens it only to look: no database is created,
    no driver pinned, no crash recovery run, and a root that does not exist is not created (it reads
    as empty, and the driver is not set up). On an existing root the driver is opened as usual,
    so that its status can be reported."""

    def __init__(self, settings: config_mod.Settings | None = None, report: bool = False, **kw: object) -> None:
        check_root()
        self.settings = settings or config_mod.load(**kw)  # type: ignore[arg-type]
        s = self.settings
        self.root, self.runroot = s.root, s.runroot
        self.report = report
        db_path = os.path.join(self.root, "berth.db")
        exists = os.path.exists(db_path)
        if not report:
            for d in (self.root, self.runroot):
                os.makedirs(d, mode=0o700, exist_ok=True)
        self.facts = HostFacts(self.root, self.runroot if os.path.isdir(self.runroot) else None)
        # a root that is not there yet reads as an empty one, from a database that lives in memory
        self.db = Database(db_path if exists or not report else ":memory:")
        self.driver_name, self.driver_reason = self._pick_driver()
        cls = drivers.driver_class(self.driver_name)
        ok, why = cls.supported(self.facts)
        if not ok:
            raise BerthError(f"the {self.driver_name} driver cannot work here: {why}")
        self._driver: Driver | None = None
        if not report or os.path.isdir(self.root):
            self._driver = cls(os.path.join(self.root, self.driver_name), s.storage_opts, self.facts)
        if not report:
            self.db.init_meta("driver", self.driver_name)
        self.lock_dir = os.path.join(self.root, "locks")
        self.sigstore = s.sigstore or os.path.join(self.root, "sigstore")
        if not report:
            os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        # without a driver (a root not there yet, reported on) the stores are empty and never reach it
        self.layers = LayerStore(self.db, self._driver, self.lock_dir,  # type: ignore[arg-type]
                                 os.path.join(self.root, "tarsplit"), os.path.join(self.runroot, "mounts"))
        blobs = BlobStore(os.path.join(self.root, "blobs"))
        self.images = ImageStore(self.db, blobs)
        self.manifests = ManifestStore(self.db, blobs)
        self.stores = Stores(self.images, self.manifests, self.layers, self.root)
        from berth.container.manager import ContainerManager
        from berth.container.store import ContainerStore

        self.containers = ContainerManager(ContainerStore(self.db), self.images, self.layers,
                                           driver_name=self.driver_name, root=self.root, runroot=self.runroot,
                                           lock_dir=self.lock_dir, cgroup_parent=s.cgroup_parent,
                                           check_trust=self.check_trust)
        self.volumes = self.containers.volumes
        self.recovered = [] if report else self._recover_at_start()

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise StoreConflict(f"{self.root} is not initialised yet (opened to report only)")
        return self._driver

    def _pick_driver(self) -> tuple[str, str]:
        recorded = self.db.get_meta("driver")
        wanted = self.settings.driver
        if recorded and wanted and wanted != recorded:
            raise StoreConflict(f"{self.root} was initialised with the {recorded} driver; use --driver {recorded} "
                                f"or another --root (found {wanted} {self.settings.driver_source})")
        if recorded:
            return recorded, f"recorded in {self.root} when it was initialised"
        if wanted:
            return wanted, self.settings.driver_source
        return drivers.choose(self.facts)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consistency -------------------------------------------------------------------------
    def recover(self, full: bool = False) -> list[str]:
        """Remove what interrupted operations left behind: incomplete layers and containers caught
        half-way through removal at every start; orphan directories and temp files when full."""
        if not full and not self._interrupted():
            return []
        with FileLock(os.path.join(self.lock_dir, "recover"), shared=False) as _:
            removed = self.containers.recover()
            removed += self.layers.table.recover()
            for cid in self.containers.store.removing():
                try:
                    removed.append(self.containers.remove(cid, force=True))
                except BerthError:
                    continue
            removed += [f"removed incomplete layer {lid}" for lid in self.layers.recover(full)]
            removed += [f"removed spool file {p}" for p in spool.sweep(self._spool_dirs())]
            removed += [f"removed unused layer {lid}" for lid in self._collect_if_idle()]
            if full:
                removed += self.volumes.leftovers()
                removed += self._stale_partials()
        return removed

    def _collect_if_idle(self) -> list[str]:
        """Collect unreferenced layers if no command is taking a reference right now: then one
        that is unreferenced was left by a command that died between making it and recording
        its user (an image, a container)."""
        lock = self.layers.collecting()
        if not lock.acquire(blocking=False):
            return []
        try:
            return self._collect()
        finally:
            lock.release()

    def _recover_at_start(self) -> list[str]:
        """recover(), where a full file system may stop it: then the command goes on (one that
        only looks still works) and a later start or `storage check` finishes the recovery."""
        import sqlite3

        try:
            return self.recover()
        except (sqlite3.OperationalError, OSError) as err:
            if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if isinstance(err, sqlite3.OperationalError) and "full" not in str(err):
                raise
            return []

    def _interrupted(self) -> bool:
        """Whether a command that died left something for recovery (cheap: run at every start)."""
        store = self.containers.store
        return bool(self.layers.has_incomplete() or store.removing() or store.in_state("starting")
                    or self.layers.table.stale() or any(spool.leftovers(d) for d in self._spool_dirs())
                    or self._unreferenced())

    def _spool_dirs(self) -> list[str]:
        """Where commands keep spool and temporary files (see berth.spool)."""
        return [self.root, os.path.join(self.root, "tmp"), os.path.join(self.root, "blobs", "sha256")]

    def _stale_partials(self, max_age: float = 7 * 86400) -> list[str]:
        """Downloads left unfinished for a week (or whose blob has arrived since) are not coming back."""
        import fcntl

        incoming = os.path.join(self.root, "blobs", "incoming")
        removed = []
        for n in os.listdir(incoming) if os.path.isdir(incoming) else []:
            if not n.endswith(".partial"):
                continue
            p = os.path.join(incoming, n)
            digest = "sha256:" + n[: -len(".partial")]
            with open(p[: -len(".partial")] + ".lock", "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a pull is resuming it right now
                if self.images.blobs.has(digest) or time.time() - os.path.getmtime(p) > max_age:
                    os.unlink(p)
                    removed.append(f"incoming/{n}")
        return removed

    def storage_check(self) -> dict[str, object]:
        self.recovered += self.recover(full=True)
        problems = []
        for layer in self.layers.all():
            if not self.driver.exists(layer.id):
                problems.append(f"layer {layer.id} is recorded but missing from the {self.driver_name} driver")
        for img in self.images.list():
            try:
                self.images.config(img.id)
            except BerthError as e:
                problems.append(str(e))
            if img.top_layer:
                try:
                    self.layers.chain(img.top_layer)
                except NotFound:
                    problems.append(f"image {img.id} refers to a missing layer {img.top_layer}")
        problems += self.volumes.problems()
        return {"recovered": self.recovered, "problems": problems}

    # -- host --------------------------------------------------------------------------------
    def info(self) -> dict[str, object]:
        from berth.host.runtimes import probe_runtimes

        support = drivers.driver_support(self.facts)
        runtimes = probe_runtimes(self.runroot if os.path.isdir(self.runroot) else None)
        if self._driver is not None:
            ok, why = self.layers.native_diff()
            status = dict(self._driver.status())
        else:
            ok, why = False, f"{self.root} is not initialised yet"
            status = {}
        return {
            "root": self.root,
            "runroot": self.runroot,
            "driver": self.driver_name,
            "driver_reason": self.driver_reason,
            "driver_status": status,
            "native_diff": {"usable": ok, "reason": why},
            "drivers": {n: {"supported": s, "reason": r} for n, (s, r) in support.items()},
            **self.facts.as_dict(),
            "runtimes": [r.to_dict() for r in runtimes],
            "images": len(self.images.list()),
            "layers": len(self.layers.all()),
        }

    # -- images ------------------------------------------------------------------------------
    def import_image(self, stream: BinaryIO, ref: str | None, message: str = "",
                     changes: list[str] | None = None) -> Image:
        """A rootfs tar (optionally compressed) becomes a one-layer image. The image ID depends
        only on the tar's content: `created` is the newest mtime in the archive."""
        from berth.image import changes as changes_mod
        from berth.image import reference

        if ref:
            reference.parse(ref)
        image_config = changes_mod.apply({}, changes or [])
        with self.layers.referencing():
            layer, _new, result = self.layers.create_from_tar(None, stream)
            assert layer.diff_id is not None
            cfg = _import_config(layer.diff_id, result.newest_mtime, image_config, message)
            return self.images.add(cfg, layer.id, layer.size, [ref] if ref else [])

    def import_id(self, path: str, message: str = "", changes: list[str] | None = None) -> str:
        """The image ID import_image would give this rootfs tarball, found by reading it (nothing stored)."""
        from berth.image import changes as changes_mod
        from berth.image import formats
        from berth.image.store import canonical_json
        from berth.storage.tarapply import tar_identity

        image_config = changes_mod.apply({}, changes or [])
        with open(path, "rb") as f:
            diff_id, newest_mtime = tar_identity(f)
        return formats.digest(canonical_json(_import_config(diff_id, newest_mtime, image_config, message)))

    def archive_contents(self, path: str) -> list[tuple[str, list[str]]]:
        """(image ID, names) of each image load_images would make of an archive; no layer is read."""
        from berth.image import archive

        if not os.path.exists(path):
            raise InvalidInput(f"cannot read {path}: no such file or directory")
        return archive.contents(path)

    def save_images(self, refs: list[str], out: BinaryIO | str, fmt: str = "docker-archive",
                    quiet: bool = True) -> None:
        from berth.image import archive
        from berth.image.signing import Lookaside
        from berth.progress import default_progress

        archive.save(self.stores, Lookaside(self.sigstore), refs, out, fmt, default_progress(quiet))

    def load_images(self, source: str | BinaryIO) -> list[tuple[Image, list[str]]]:
        """Load an archive (a path, or a stream that is spooled to the root first)."""
        import shutil

        from berth.image import archive
        from berth.image.signing import Lookaside

        if isinstance(source, str):
            if not os.path.exists(source):
                raise InvalidInput(f"cannot read {source}: no such file or directory")
            before = {img.id: img.tags for img in self.images.list()}
            with self.layers.referencing():
                loaded = archive.load(self.stores, Lookaside(self.sigstore), source)
            return self._trusted(loaded, before)
        fd, tmp = spool.make_file(self.root, ".load-")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(source, f, 1 << 20)
            before = {img.id: img.tags for img in self.images.list()}
            with self.layers.referencing():
                loaded = archive.load(self.stores, Lookaside(self.sigstore), tmp, default_name="localhost/loaded")
            return self._trusted(loaded, before)
        finally:
            os.unlink(tmp)

    def _trusted(self, loaded: list[tuple[Image, list[str]]], before: dict[str, list[str]]
                 ) -> list[tuple[Image, list[str]]]:
        """Loaded images must satisfy the trust policy; when one is refused, the images this load
        added are taken out again (images that were already there are left alone) and the names
        it moved go back to the images that had them (before: image ID -> its names)."""
        for _img, names in loaded:
            for n in names:
                try:
                    self.check_trust(n)
                except BerthError:
                    with self.layers.collecting():
                        for added, _names in loaded:
                            if added.id not in before:
                                self.images.delete(added.id)
                        given = {g for _img, gs in loaded for g in gs}
                        self.images.move_tags([(iid, [t for t in tags if t in given]) for iid, tags in before.items()])
                        self._collect()
                    raise
        return loaded

    # -- registries, signatures, builds -------------------------------------------------------
    def registries(self) -> Registries:
        """The registry settings of the config file (default registry, plain-http ones, login's file)."""
        from berth.image.registry import Registries

        s = self.settings
        return Registries(default=s.default_registry, insecure=list(s.insecure_registries), auth_file=s.auth_file)

    def pull(self, ref: str, tls_verify: bool = True, ca_file: str | None = None, authfile: str | None = None,
             quiet: bool = True) -> tuple[Image, str]:
        """Pull an image; returns it with its manifest digest."""
        from berth.image import distribution
        from berth.progress import default_progress

        with self.layers.referencing():
            return distribution.pull(self.stores, self.trust(), ref, tls_verify, ca_file, authfile,
                                     default_progress(quiet), self.registries())

    def remote_image(self, ref: str, tls_verify: bool = True, ca_file: str | None = None,
                     authfile: str | None = None) -> tuple[str, str]:
        """(manifest digest, image ID) a reference names in its registry now; no blob is fetched."""
        from berth.image import distribution

        return distribution.remote_image(ref, tls_verify, ca_file, authfile, self.registries())

    def remote_digest(self, ref: str, tls_verify: bool = True, ca_file: str | None = None,
                      authfile: str | None = None) -> str | None:
        """The manifest digest a tag has in its registry now (None: no such tag there)."""
        from berth.image import distribution

        return distribution.remote_digest(ref, tls_verify, ca_file, authfile, self.registries())

    def pull_needed(self, ref: str, tls_verify: bool = True, ca_file: str | None = None,
                    authfile: str | None = None) -> tuple[str | None, str]:
        """pull: always without downloading layers: (the image ID the registry has under ref when
        it is not the local one, else None; the reason)."""
        _digest, remote_id = self.remote_image(ref, tls_verify, ca_file, authfile)
        try:
            local = self.image(ref).id
        except NotFound:
            return remote_id, f"image {ref} is missing: pull it"
        if local == remote_id:
            return None, f"image {ref} is the registry's"
        return remote_id, f"image {ref}: the registry has {remote_id[:19]}…, here {local[:19]}…: pull it"

    def push(self, src: str, dest: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
             authfile: str | None = None, quiet: bool = True, sign_by: str | None = None,
             gpg_home: str | None = None, sigstore: str | None = None) -> str:
        """Push an image (to dest, or its own name), signing it first with sign_by; returns the
        manifest digest."""
        from berth.image import distribution
        from berth.progress import default_progress

        if sign_by:
            if dest:
                self.tag(src, dest)
            self.sign(dest or src, sign_by, gpg_home, sigstore)
        with self.layers.referencing():  # the blobs it makes are recorded before any collection
            return distribution.push(self.stores, src, dest, tls_verify, ca_file, authfile,
                                     default_progress(quiet), self.registries())

    def login(self, registry: str, username: str, password: str, tls_verify: bool = True,
              ca_file: str | None = None) -> str:
        """Check credentials against a registry and keep them in berth's auth file; returns its path."""
        from berth.image import credentials

        return credentials.login(self.registries(), registry, username, password, tls_verify, ca_file)

    def logout(self, registry: str) -> bool:
        """Forget a registry's credentials; False when there were none."""
        from berth.image import credentials

        return credentials.logout(self.registries(), registry)

    def trust(self, policy: str | None = None, sigstore: str | None = None) -> Trust:
        """The trust policy (the configured one unless policy is given) and the signature store."""
        from berth.image.signing import Trust

        return Trust(policy or self.settings.policy, sigstore or self.sigstore)

    def manifest_digest(self, image_id: str) -> str:
        """The digest of the manifest the image is pushed (and signed) with."""
        from berth.image import formats
        from berth.image.distribution import manifest_for

        data, _mt = manifest_for(self.stores, self.images.get(image_id))
        return formats.digest(data)

    def sign(self, ref: str, fingerprint: str, gpg_home: str | None = None, sigstore: str | None = None) -> str:
        """Sign an image's manifest digest and name with gpg; returns the signature's path."""
        from berth.image import signing

        img = self.images.resolve(ref)
        return signing.sign(self.trust(sigstore=sigstore), ref, self.manifest_digest(img.id), fingerprint, gpg_home)

    def verify(self, ref: str, policy: str | None = None, sigstore: str | None = None) -> dict[str, object]:
        """Check an image against the trust policy; raises SignatureRefused when it is refused."""
        from berth.image import signing

        trust = self.trust(policy, sigstore)
        trust.policy  # noqa: B018 - a broken policy is reported before anything else
        img = self.images.resolve(ref)
        return signing.verify(trust, ref, self.manifest_digest(img.id))

    def check_trust(self, ref: str) -> None:
        """Enforce the trust policy for an image about to be used."""
        from berth.image import signing

        trust = self.trust()
        trust.policy  # noqa: B018 - a broken policy is reported before anything else
        img = self.images.resolve(ref)
        by_id = ref.startswith("sha256:") or img.id.startswith("sha256:" + ref)
        signing.check_image(trust, ref, img.tags, by_id, lambda: self.manifest_digest(img.id))

    def build(self, context: str, dockerfile: str, build_args: dict[str, str], tags: list[str],
              quiet: bool = True, use_cache: bool = True, target: str | None = None,
              dockerfile_data: bytes | None = None, network: str = "none") -> Image:
        """Build an image from a Dockerfile (the steps on stderr unless quiet); dockerfile_data is
        its text when it does not come from the file named (stdin)."""
        from berth.image.build import Builder, default_say

        with self.layers.referencing():
            return Builder(self.images, self.layers, self.containers, context, dockerfile, build_args,
                           default_say(quiet), use_cache, target, dockerfile_data, network).build(tags)

    # -- declarative state --------------------------------------------------------------------
    def plan(self, desired: Desired, prune: bool = False) -> list[Action]:
        """What making the host match a desired state would do, and why."""
        from berth.declare import reconcile

        return reconcile.plan(self, desired, prune=prune)

    def apply(self, actions: list[Action], say: Callable[[str], None] | None = None) -> list[Action]:
        """Carry out a plan in order; returns what was done."""
        from berth.declare import reconcile

        return reconcile.apply(self, actions, say=say)

    def copy(self, src: str, dst: str, archive: bool = False, follow: bool = False,
             stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """berth cp: SRC and DST are host paths (or - for a tar stream) and CONTAINER:PATH, one of each."""
        from berth.container.copy import Copier

        Copier(self.containers).copy(src, dst, archive, follow, stdin, stdout)

    def checkpoints(self) -> Checkpoints:
        """Checkpoint and restore with CRIU (berth checkpoint / restore)."""
        from berth.container.checkpoint import Checkpoints

        return Checkpoints(self.containers)

    def networks(self) -> Networks:
        return self.containers.networks()

    # -- day-two verbs on containers (berth.container.daytwo, health and events) ----------------
    def wait_container(self, ref: str, condition: str = "not-running", timeout: float | None = None,
                       fail_unhealthy: bool = False) -> int:
        from berth.container import daytwo

        return daytwo.wait(self.containers, ref, condition, timeout, fail_unhealthy)

    def pause(self, ref: str) -> None:
        from berth.container import daytwo

        daytwo.pause(self.containers, ref)

    def unpause(self, ref: str) -> None:
        from berth.container import daytwo

        daytwo.unpause(self.containers, ref)

    def rename(self, ref: str, new: str) -> None:
        from berth.container import daytwo

        daytwo.rename(self.containers, ref, new)

    def ports(self, ref: str, private: str | None = None) -> list[tuple[str, str]]:
        from berth.container import daytwo

        return daytwo.ports(self.containers, ref, private)

    def update_container(self, ref: str, memory: int | None = None, cpus: float | None = None,
                         pids_limit: int | None = None, restart: str | None = None) -> None:
        from berth.container import daytwo

        daytwo.update(self.containers, ref, memory, cpus, pids_limit, restart)

    def top(self, ref: str, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        from berth.container import daytwo

        return daytwo.top(self.containers, ref, ps_args)

    def stats(self, refs: list[str], previous: dict[str, dict[str, object]] | None = None) -> list[dict[str, object]]:
        from berth.container import daytwo

        return daytwo.stats(self.containers, refs, previous=previous)

    def events(self) -> Journal:
        return self.containers.events

    def health_monitor(self, ref: str) -> None:
        """The loop of a container's health monitor process (`berth container-health`)."""
        from berth.container import health

        health.monitor(self.containers, ref)

    def image(self, ref: str) -> Image:
        return self.images.resolve(ref)

    def image_and_descendants(self, ref: str) -> set[str]:
        """IDs of the image and of every image built on it (its top layer is in their layer chain):
        docker's `ps --filter ancestor=`."""
        img = self.images.resolve(ref)
        out = {img.id}
        if img.top_layer is None:
            return out
        for other in self.images.list():
            if other.top_layer and img.top_layer in {layer.id for layer in self.layers.chain(other.top_layer)}:
                out.add(other.id)
        return out

    def tag(self, src: str, dst: str) -> str:
        with self.layers.referencing():
            return self.images.tag(self.images.resolve(src).id, dst)

    def remove_image(self, ref: str, force: bool = False, dry_run: bool = False) -> list[str]:
        """Untag, and delete the image when no tag is left; returns docker-style Untagged/Deleted lines.
        dry_run checks and reports exactly that (refusals included) and changes nothing. Decided
        and done under the references lock (see LayerStore.referencing)."""
        with self.layers.collecting():
            return self._remove_image(ref, force, dry_run)

    def _remove_image(self, ref: str, force: bool, dry_run: bool) -> list[str]:
        img = self.images.resolve(ref)
        users = self.containers.store.using_image(img.id)
        if users and (img.id.startswith("sha256:" + ref.removeprefix("sha256:")) or len(img.tags) <= 1):
            raise ImageInUse(f"image {ref} is used by container(s) {', '.join(c.name for c in users)}: "
                               "remove them first")
        out = []
        by_id = ref.startswith("sha256:") or img.id.startswith("sha256:" + ref)
        if not by_id:
            if dry_run:
                from berth.image import reference

                out.append(f"Untagged: {reference.parse(ref)}")
                if len(img.tags) > 1:
                    return out
            else:
                out.append(f"Untagged: {self.images.untag(ref)}")
                if self.images.get(img.id).tags:
                    return out
        elif len(img.tags) > 1 and not force:
            raise InvalidInput(f"image {ref} has {len(img.tags)} tags ({', '.join(img.tags)}); "
                               "remove them by name or use --force")
        else:
            out.extend(f"Untagged: {t}" for t in img.tags)
        if dry_run:
            return out + [f"Deleted: {img.id}"]
        self.images.delete(img.id)
        out.append(f"Deleted: {img.id}")
        out.extend(f"Deleted layer: {lid}" for lid in self._collect())
        return out

    def prune_images(self, all_unused: bool = False) -> tuple[list[str], list[str], int]:
        """Delete images no container uses: untagged ones that are no other image's ancestor
        (docker's "dangling"; build steps under a kept image stay, they are its build cache), or
        with all_unused every unused image. Returns (images, layers deleted, bytes freed)."""
        with self.layers.collecting():
            return self._prune_images(all_unused)

    def _prune_images(self, all_unused: bool) -> tuple[list[str], list[str], int]:
        images = self.images.list()
        used = {c.image_id for c in self.containers.store.list()}
        doomed = {i.id for i in images if i.id not in used and (all_unused or not i.tags)}
        if not all_unused:
            ancestors = self._chain_layers([i for i in images if i.id not in doomed])
            doomed = {i.id for i in images if i.id in doomed and i.top_layer not in ancestors}
        sizes = {ly.id: ly.size for ly in self.layers.all()}
        for image_id in doomed:
            self.images.delete(image_id)
        self.images.forget_steps(doomed)
        layers = self._collect()
        return sorted(doomed), layers, sum(sizes.get(lid, 0) for lid in layers)

    def disk_usage(self) -> list[dict[str, object]]:
        """docker system df: images (layers counted once) and containers' writable layers, with
        what prune -a / container prune would give back."""
        images = self.images.list()
        containers = self.containers.store.list()
        used_images = {c.image_id for c in containers}
        sizes = {ly.id: ly.size for ly in self.layers.all()}
        all_layers = self._chain_layers(images)
        kept_layers = self._chain_layers([i for i in images if i.id in used_images])
        rw_sizes = {}
        for c in containers:
            rw_sizes[c.id] = self.layers.diff_size(c.rw_layer) if self.driver.exists(c.rw_layer) else 0
        running = [c for c in containers if self.containers.get(c.id).state == "running"]
        return [
            {"Type": "Images", "Total": len(images), "Active": len(used_images & {i.id for i in images}),
             "Size": sum(sizes.get(lid, 0) for lid in all_layers),
             "Reclaimable": sum(sizes.get(lid, 0) for lid in all_layers - kept_layers)},
            {"Type": "Containers", "Total": len(containers), "Active": len(running),
             "Size": sum(rw_sizes.values()),
             "Reclaimable": sum(v for cid, v in rw_sizes.items() if cid not in {c.id for c in running})},
            self._volume_usage(containers),
        ]

    def _volume_usage(self, containers: list[Container]) -> dict[str, object]:
        """The Volumes row of system df: active = referred to by a container; reclaimable = the rest."""
        used = {m.source for c in containers for m in c.config.volumes if m.type == "volume"}
        vols = self.volumes.list()
        sizes = {v.name: self.volumes.size(v.name) for v in vols}
        return {"Type": "Volumes", "Total": len(vols), "Active": len(used & set(sizes)),
                "Size": sum(sizes.values()), "Reclaimable": sum(n for v, n in sizes.items() if v not in used)}

    def _chain_layers(self, images: list[Image]) -> set[str]:
        """Every layer in the chains of these images."""
        out: set[str] = set()
        for i in images:
            if i.top_layer and i.top_layer not in out:
                out.update(ly.id for ly in self.layers.chain(i.top_layer))
        return out

    def listed_images(self, all_images: bool = False) -> list[Image]:
        """What `berth images` shows: tagged images and dangling ones, not the untagged build steps
        that other images are built on (those with all_images, as `docker images -a`)."""
        from collections import Counter

        images = self.images.list()
        if all_images:
            return images
        # how many images' chains run through each layer; an untagged image is a build step when
        # another image's chain runs through its top layer too (past it, or at it: a metadata-only
        # step shares its parent's layer)
        through: Counter[str] = Counter()
        chains: dict[str, list[str]] = {}
        for i in images:
            if i.top_layer:
                if i.top_layer not in chains:
                    chains[i.top_layer] = [ly.id for ly in self.layers.chain(i.top_layer)]
                through.update(chains[i.top_layer])
        return [i for i in images if i.tags or not i.top_layer or through[i.top_layer] < 2]

    def gc_layers(self) -> list[str]:
        """Remove the layers nothing references (under the references lock)."""
        with self.layers.collecting():
            return self._collect()

    def _unreferenced(self) -> list[str]:
        return self.layers.unreferenced(self.images.top_layers() | self.containers.store.layers())

    def _collect(self) -> list[str]:
        """gc_layers, for a caller that holds the references lock exclusively. The blobs that
        only removed images and layers used (configs, manifests, compressed layers) go as well."""
        removed = []
        for lid in self._unreferenced():
            try:
                self.layers.remove(lid)
                removed.append(lid)
            except (NotFound, LayerInUse):
                continue
        self._collect_blobs()
        return removed

    def _collect_blobs(self) -> list[tuple[str, int]]:
        """Remove the blobs no image or layer refers to (the caller holds the references lock
        exclusively); returns (digest, bytes) of each."""
        image_ids = {i.id for i in self.images.list()}
        diff_ids = {ly.diff_id for ly in self.layers.all() if ly.diff_id}
        keep = image_ids | self.manifests.still_referenced(image_ids, diff_ids)
        return self.images.blobs.collect(keep)

    def inspect_image(self, ref: str) -> dict[str, object]:
        """The image in docker's ImageInspect shape (berth's additions under "Berth")."""
        from berth.image.inspect import image_json

        img = self.images.resolve(ref)
        cfg = self.images.config(img.id)
        layers = self.layers.chain(img.top_layer) if img.top_layer else []
        repos = sorted({t.rpartition(":")[0] for t in img.tags})
        digests = [f"{r}@{d}" for d, _mt in self.manifests.manifests(img.id) for r in repos]
        return image_json(img.id, img.tags, img.size, cfg, self.driver_name,  # type: ignore[arg-type]
                          self.layers.metadata(img.top_layer) if img.top_layer else {}, digests, {
                              "Layers": [{"Id": ly.id, "DiffID": ly.diff_id, "ChainID": ly.chain_id, "Size": ly.size}
                                         for ly in layers],
                              "History": cfg.get("history", []),
                              "Signatures": self._signatures(img)})

    def image_config(self, image_id: str) -> dict[str, object]:
        """The image's runtime config (the OCI config's "config": Cmd, Entrypoint, Env …)."""
        return dict(self.images.config(image_id).get("config") or {})  # type: ignore[call-overload]

    def container_size(self, ref: str) -> tuple[int, int]:
        """(bytes in the container's rw layer, that plus its image's size), as docker ps -s shows."""
        c = self.containers.get(ref)
        rw = self.layers.diff_size(c.rw_layer) if self.driver.exists(c.rw_layer) else 0
        return rw, rw + self.images.get(c.image_id).size

    def _signatures(self, img: Image) -> list[dict[str, str]]:
        """Signatures stored for the image's names (listed, not verified: `berth verify` does that)."""
        from berth.image.signing import Lookaside, normalize

        look = Lookaside(self.sigstore)
        out = []
        digest = None
        for name in img.tags:
            n = normalize(name)
            if not look.has_signatures(n):
                continue
            digest = digest or self.manifest_digest(img.id)
            d = look.dir_for(n, digest)
            for i, _sig in enumerate(look.signatures(n, digest), 1):
                out.append({"Identity": n, "ManifestDigest": digest, "Path": os.path.join(d, f"signature-{i}")})
        return out

    def history(self, ref: str) -> list[dict[str, object]]:
        img = self.images.resolve(ref)
        cfg = self.images.config(img.id)
        layers = self.layers.chain(img.top_layer) if img.top_layer else []
        sizes = [ly.size for ly in layers]
        rows = []
        li = 0
        for h in cfg.get("history", []):  # type: ignore[union-attr]
            empty = bool(h.get("empty_layer"))
            size = 0 if empty or li >= len(sizes) else sizes[li]
            if not empty:
                li += 1
            rows.append({"created": h.get("created"), "created_by": h.get("created_by", ""),
                         "size": size, "comment": h.get("comment", "")})
        rows.reverse()
        if rows:
            rows[0]["id"] = img.id
        return rows


def _import_config(diff_id: str, newest_mtime: int, image_config: dict[str, object], message: str
                   ) -> dict[str, object]:
    """An imported image's config: `created` is the newest mtime in the archive, so the ID depends
    only on the tarball's content, the changes and the message."""
    from berth.image import formats

    created = iso_seconds(newest_mtime)
    history: dict[str, object] = {"created": created, "created_by": "berth import"}
    if message:
        history["comment"] = message
    return formats.image_config([diff_id], created, image_config, [history])
