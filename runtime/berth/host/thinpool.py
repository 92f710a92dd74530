"""Creating a dm-thin pool with LVM for the devicemapper driver (`berth host prepare --pool thin`).

direct-lvm: the given block devices become physical volumes of one volume group, which holds a
thin pool made the way docker's direct-lvm setup makes it (a data LV of dm.thinp_percent of the
group and a metadata LV of dm.thinp_metapercent, joined by lvconvert with the chunk size
dm.blocksize, zeroing off) plus an autoextend profile. loop-lvm: the same on a sparse file
attached to a loop device, for trials only (slow, and it says so).

Every step looks first and only does what is missing; safety checks (foreign signatures, a
physical volume of another group, no device-mapper in the kernel) come before any change.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable

from berth.errors import BerthError, InvalidInput
from berth.host.probe import device_mapper, device_signature
from berth.proc import run

DEFAULT_VG = "berth"
POOL_LV = "thinpool"
PROFILE_DIR = "/etc/lvm/profile"
LOOP_LVM_WARNING = ("loop-lvm: a thin pool on a loop file is slow and not for production; give --device "
                    "block devices (direct-lvm)")
_NAME_RE = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")
_CHUNK_RE = re.compile(r"^(\d+)([KMG])$", re.IGNORECASE)
LVM_ENV = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
AddStep = Callable[[str, bool], None]  # (what, already done)


class Options:
    """The dm.* options that shape the pool, validated up front."""

    def __init__(self, opts: dict[str, str]) -> None:
        self.vg = opts.get("dm.vg", DEFAULT_VG)
        if not _NAME_RE.match(self.vg):
            raise InvalidInput(f"dm.vg={self.vg!r} is not a valid volume group name")
        self.chunk = opts.get("dm.blocksize", "512K").upper()
        m = _CHUNK_RE.match(self.chunk)
        kib = int(m.group(1)) * {"K": 1, "M": 1 << 10, "G": 1 << 20}[m.group(2)] if m else 0
        if not m or kib < 64 or kib > (1 << 20) or kib % 64:
            raise InvalidInput(f"dm.blocksize={self.chunk!r}: use a multiple of 64K between 64K and 1G (e.g. 512K)")
        self.data_percent = self._percent(opts, "dm.thinp_percent", 95)
        self.meta_percent = self._percent(opts, "dm.thinp_metapercent", 1)
        if self.data_percent + self.meta_percent > 100:
            raise InvalidInput("dm.thinp_percent + dm.thinp_metapercent must not exceed 100")
        self.threshold = self._percent(opts, "dm.thinp_autoextend_threshold", 80)
        self.extend = self._percent(opts, "dm.thinp_autoextend_percent", 20)

    @staticmethod
    def _percent(opts: dict[str, str], key: str, default: int) -> int:
        raw = opts.get(key, str(default)).rstrip("%")
        if not raw.isdigit() or not 0 < int(raw) <= 100:
            raise InvalidInput(f"{key}={opts.get(key)!r}: use a percentage from 1 to 100")
        return int(raw)

    @property
    def pool_path(self) -> str:
        # device-mapper doubles hyphens inside LVM names
        return f"/dev/mapper/{self.vg.replace('-', '--')}-{POOL_LV}"

    @property
    def profile(self) -> str:
        return f"{self.vg}-{POOL_LV}"


def _lvm(*argv: str, check: bool = False) -> str:
    env = dict(os.environ, **LVM_ENV)
    cp = run(list(argv), check=check, env=env, what=f"running {argv[0]}")
    return cp.stdout.decode().strip() if cp.returncode == 0 else ""


def preflight(devices: list[str], opts: Options, *, check: bool, force: bool, add_step: AddStep) -> None:
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


def plan(devices: list[str], opts: Options, *, check: bool, force: bool, add_step: AddStep,
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
           ["lvconvert", "-y", "--zero", "n", "-c", opts.chunk, "--thinpool", lv, "--poolmetadata", meta])
    profile_path = os.path.join(PROFILE_DIR, f"{opts.profile}.profile")
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
    if _lvm("lvs", "--noheadings", "-o", "lv_profile", lv) == opts.profile:
        add_step(f"{lv} uses the profile {opts.profile}", True)
    else:
        do(f"lvchange --metadataprofile {opts.profile} {lv}", ["lvchange", "--metadataprofile", opts.profile, lv])
    return {"dm.thinpooldev": opts.pool_path}
