"""Checkpoint and restore of a running container with CRIU, through the OCI runtime and conmon
(`berth checkpoint C [--export FILE] [--leave-running]`, `berth restore C [--import FILE]`).

The checkpoint (CRIU's image files) is kept with the container (ROOT/containers/<id>/checkpoint);
restore starts the container from it under conmon, on the same rw layer. An export is a tar of
those image files; importing one restores into a container made from the same image (its file
system is the container's own, not part of the export). CRIU must work on the kernel: `criu
check` is asked first, and when it fails berth refuses with its reason.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from typing import TYPE_CHECKING

from berth import proc
from berth.container import copy
from berth.container.runtime import select
from berth.errors import BerthError, CommandError, InvalidInput

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager
    from berth.container.store import Container

CRIU_TIMEOUT = 600


class CheckpointUnsupported(BerthError):
    """CRIU is missing or cannot work on this kernel."""


def criu_check() -> str | None:
    """None when CRIU works here; else why not (one line)."""
    try:
        proc.run(["criu", "check"], what="criu check", timeout=60)
    except CommandError as e:
        if e.returncode == 127:
            return "checkpoint/restore needs CRIU, which is not installed (apt-get install criu)"
        errors = [ln.split(": ", 1)[-1].strip() for ln in e.stderr.splitlines() if "Error" in ln]
        why = "; ".join(errors[:2]) or e.stderr.strip()[-200:] or f"criu check exited {e.returncode}"
        return f"CRIU cannot work on this kernel ({os.uname().release}): {why} (criu check)"
    return None


def require_criu() -> None:
    why = criu_check()
    if why:
        raise CheckpointUnsupported(why)


class Checkpoints:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers

    def image_dir(self, cid: str) -> str:
        return os.path.join(self.containers.userdata(cid), "checkpoint")

    def checkpoint(self, ref: str, export: str | None = None, leave_running: bool = False) -> Container:
        m = self.containers
        c = m.get(ref)
        if c.state != "running":
            raise InvalidInput(f"container {c.name} is not running: only a running container can be checkpointed")
        require_criu()
        d = self.image_dir(c.id)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        if not leave_running:
            m.store.update(c.id, stopped_by_user=1)  # its restart policy must not bring it back
        select(m.runroot, c.runtime).checkpoint(c.id, d, leave_running, CRIU_TIMEOUT)
        if export:
            tmp = export + ".berth-partial"
            try:
                with tarfile.open(tmp, "w:gz") as tf:
                    for n in sorted(os.listdir(d)):
                        tf.add(os.path.join(d, n), n)
                os.replace(tmp, export)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return m.stop(c.id, timeout=30) if not leave_running else m.get(c.id)

    def restore(self, ref: str, import_: str | None = None) -> Container:
        m = self.containers
        c = m.get(ref)
        if c.state == "running":
            raise InvalidInput(f"container {c.name} is running: stop it (or checkpoint it) before restoring")
        d = self.image_dir(c.id)
        if import_:
            if not os.path.isfile(import_):
                raise InvalidInput(f"cannot read {import_}: no such file")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d, mode=0o700)
            with open(import_, "rb") as f:
                copy.Extractor(d, "", None).extract(f)
        if not os.path.isfile(os.path.join(d, "inventory.img")):
            raise InvalidInput(f"container {c.name} has no checkpoint: run berth checkpoint {c.name} first "
                               "(or give --import FILE)")
        require_criu()
        return m.start(c.id, restore=d)
