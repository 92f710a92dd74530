"""Creating a dm-thin pool with LVM for the devicemapper driver (`berth host prepare --pool thin`).

direct-lvm: the given block devices become physical volumes of one volume group, which holds a
thin pool made the way docker's direct-lvm setup makes it (a data LV of dm.thinp_percent of the
group and a metadata LV of dm.thinp_metapercent, joined by lvconvert with the chunk size
dm.blocksize, zeroing off) plus an autoextend profile. loop-lvm: the same on a sparse file
attached to a loop device, for trials only (slow, and it says so).

The dm.* options arrive checked by the devicemapper driver (DmOptions, beside the driver). Every
step looks first and only does what is missing; safety checks (foreign signatures, a
physical volume of another group, no device-mapper in the kernel) come before any change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.errors import BerthError, InvalidInput
from berth.host.probe import device_mapper, device_signature
from berth.proc import run

if TYPE_CHECKING:
    from berth.storage.devicemapper import DmOptions

POOL_LV = "thinpool"
PROFILE_DIR = "/etc/lvm/profile"
LOOP_LVM_WARNING = ("loop-lvm: a thin pool on a loop file is slow and not for production; give --device "
                    "block devices (direct-lvm)")
LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
AddStep = Callable[[str, bool], None]  # (what, already done)


def pool_path(opts: DmOptions) -> str:
    # device-mapper doubles hyphens inside LVM names
    return f"/dev/mapper/{opts.vg.replace('-', '--')}-{POOL_LV}"


def profile(opts: DmOptions) -> str:
    return f"{opts.vg}-{POOL_LV}"


def _lvm(*argv: str, check: bool = False) -> str:
    env = dict(os.environ, **LVM_ENV)
    cp = run(list(argv), check=check, env=env, what=f"running {argv[0]}")
    return cp.stdout.decode().strip() if cp.returncode == 0 else ""


def preflight(devices: list[str], opts: DmOptions, *, check: bool, force: bool, add_step: AddStep) -> None:
    """Every refusal, before anything is changed: missing tools or kernel support, foreign signatures,
    physical volumes of another group."""
    if not shutil.which("lvcreate"):
        if not check:
            raise BerthError("lvm2 is not installed: apt-get install lvm2 (the thin pool is made with LVM)")
        add_step("install lvm2 (the thin pool is made with LVM)", False)
    for dev in devices:
        if not os.path.exists(dev):
            raise InvalidInput(f"device {dev} does not exist")
        sig = device_signature(dev)
        if sig == "LVM2_member":
            vg = _lvm("pvs", "--noheadings", "-o", "vg_name", dev)
            if vg and vg != opts.vg:
                raise BerthError(f"{dev} is a physical volume of volume group {vg}: refusing to take it "
                                 f"(free it with vgreduce/pvremove, or set dm.vg={vg} to use that group)")
        elif sig and not force:
            raise BerthError(f"{dev} holds a {sig} signature: refusing to wipe it (check the device; use --force "
                             "to use it anyway)")
    has_dm, why = device_mapper()
    if not has_dm:
        if not check:
            raise BerthError(f"the thin pool needs device-mapper: {why}; use --pool reflink on this kernel")
        add_step(f"device-mapper is missing ({why}): this plan cannot be applied on this kernel", False)


def plan(devices: list[str], opts: DmOptions, *, check: bool, force: bool, add_step: AddStep,
         pending: str | None = None) -> dict[str, str]:
    """Make (or, with check, describe) the pool on devices; returns the storage options to write.
    pending names a device that does not exist yet (the loop device of a loop-lvm file, in check
    mode). add_step(what, done) records each step."""

    def do(what: str, argv: list[str]) -> None:
        add_step(what, False)
        if not check:
            _lvm(*argv, check=True)

    for dev in devices:
        if device_signature(dev) == "LVM2_member":
            add_step(f"{dev} is a physical volume", True)
        else:
            do(f"pvcreate {dev}", ["pvcreate", "-y", *(["-ff"] if force else []), dev])
    if pending:
        add_step(f"pvcreate {pending}", False)
    vg_devs = _lvm("pvs", "--noheadings", "-o", "pv_name", "-S", f"vg_name={opts.vg}").split()
    new = devices + ([pending] if pending else [])
    if vg_devs:
        add_step(f"volume group {opts.vg} exists ({', '.join(vg_devs)})", True)
        missing = [d for d in new if os.path.realpath(d) not in {os.path.realpath(x) for x in vg_devs}]
        if missing:
            do(f"vgextend {opts.vg} {' '.join(missing)}", ["vgextend", opts.vg, *missing])
    else:
        do(f"vgcreate {opts.vg} {' '.join(new)}", ["vgcreate", opts.vg, *new])
    lv = f"{opts.vg}/{POOL_LV}"
    attrs = _lvm("lvs", "--noheadings", "-o", "lv_attr", lv)
    if attrs.startswith("t"):
        add_step(f"thin pool {lv} exists", True)
        # lv_attr's fifth letter is "a" once active; after a reboot only udev/systemd's autoactivation
        # (or this) brings it back, and never for a loop-lvm file
        if attrs[4:5] == "a":
            add_step(f"thin pool {lv} is active", True)
        else:
            do(f"lvchange -ay {lv} (the pool is not active)", ["lvchange", "-ay", lv])
    elif attrs:
        raise BerthError(f"{lv} exists and is not a thin pool: rename or remove it (lvremove {lv})")
    else:
        meta = f"{opts.vg}/{POOL_LV}meta"
        do(f"lvcreate {lv} on {opts.data_percent}% of the group",
           ["lvcreate", "-y", "--wipesignatures", "y", "-n", POOL_LV, "-l", f"{opts.data_percent}%VG", opts.vg])
        do(f"lvcreate {meta} on {opts.meta_percent}% of the group",
           ["lvcreate", "-y", "--wipesignatures", "y", "-n", f"{POOL_LV}meta", "-l", f"{opts.meta_percent}%VG",
            opts.vg])
        do(f"lvconvert {lv} into a thin pool (chunk {opts.chunk}, no zeroing) with {meta}",
           ["lvconvert", "-y", "--zero", "n", "-c", f"{opts.chunk_kib}k", "--thinpool", lv, "--poolmetadata", meta])
    profile_path = os.path.join(PROFILE_DIR, f"{profile(opts)}.profile")
    text = (f"activation {{\n\tthin_pool_autoextend_threshold={opts.threshold}\n"
            f"\tthin_pool_autoextend_percent={opts.extend}\n}}\n")
    current = None
    if os.path.exists(profile_path):
        with open(profile_path, encoding="utf-8") as f:
            current = f.read()
    if current == text:
        add_step(f"{profile_path} extends the pool by {opts.extend}% at {opts.threshold}% full", True)
    else:
        add_step(f"write {profile_path}: extend the pool by {opts.extend}% at {opts.threshold}% full", False)
        if not check:
            from berth.storage.fsutil import atomic_write

            os.makedirs(PROFILE_DIR, exist_ok=True)
            atomic_write(profile_path, text.encode())
    if _lvm("lvs", "--noheadings", "-o", "lv_profile", lv) == profile(opts):
        add_step(f"{lv} uses the profile {profile(opts)}", True)
    else:
        do(f"lvchange --metadataprofile {profile(opts)} {lv}", ["lvchange", "--metadataprofile", profile(opts), lv])
    return {"dm.thinpooldev": pool_path(opts)}
