"""`berth host check`: one line per check, pass or fail, and the fix."""

from __future__ import annotations

from dataclasses import dataclass

from berth.host.probe import HostFacts
from berth.host.runtimes import probe_runtimes
from berth.storage import drivers

REQUIRED_NAMESPACES = ("pid", "mnt", "uts", "ipc", "net")


@dataclass
class Check:
    name: str
    ok: bool
    required: bool
    detail: str
    fix: str = ""


def run_checks(facts: HostFacts, driver: str | None, cache_dir: str | None) -> list[Check]:
    out: list[Check] = []
    out.append(Check("kernel", True, False, f"Linux {facts.kernel}"))
    ns = facts.namespaces
    missing = [n for n in REQUIRED_NAMESPACES if n not in ns]
    out.append(Check("namespaces", not missing, True,
                     f"available: {', '.join(ns)}" if not missing else f"missing: {', '.join(missing)}",
                     "use a kernel built with CONFIG_NAMESPACES and the pid/mnt/uts/ipc/net namespaces"))
    cg = facts.cgroups
    needed = [c for c in ("memory", "pids", "cpu") if c not in cg.controllers]
    out.append(Check("cgroups", not needed, True,
                     f"cgroup v{cg.version}, controllers: {', '.join(cg.controllers) or 'none'}",
                     f"enable the {', '.join(needed)} controller(s) (cgroup_enable= on the kernel command line)"))
    out.append(Check("backing fs", True, False, f"{facts.root} is on {facts.backing_fs}"))
    out.append(Check("d_type", facts.d_type, driver == "overlay",
                     "the backing file system reports file types" if facts.d_type else "no d_type support",
                     "reformat xfs with ftype=1 (or ext4 with -O filetype); overlay needs it"))
    ov = facts.overlay
    ov_ok = bool(ov.get("present")) and bool(ov.get("multiple_lowers"))
    nd = str(ov.get("native_diff") or "")
    out.append(Check("overlay", ov_ok, driver == "overlay",
                     (f"multiple lower dirs mount; native diff {'usable' if not nd else 'off: ' + nd}; "
                      f"userxattr {'yes' if ov.get('userxattr') else 'no'}; "
                      f"module defaults {ov.get('module_defaults')}") if ov_ok else
                     f"overlay unusable: {ov.get('mount_error') or 'not in /proc/filesystems'}",
                     "modprobe overlay; keep the berth root off overlay/aufs/nfs"))
    bt = "btrfs" in facts.filesystems
    out.append(Check("btrfs", bt and facts.backing_fs == "btrfs", driver == "btrfs",
                     "root on btrfs" if facts.backing_fs == "btrfs" else
                     ("kernel has btrfs; the root is not on btrfs" if bt else "kernel has no btrfs"),
                     "mkfs.btrfs a device (or a loop file) and mount it at the berth root"))
    dm = facts.devicemapper
    out.append(Check("devicemapper", bool(dm["thin_pool_target"]), driver == "devicemapper",
                     "thin-pool target available" if dm["thin_pool_target"] else str(dm["reason"]),
                     "use a kernel with device-mapper (dm_thin_pool) or another driver"))
    out.append(Check("aufs", "aufs" in facts.filesystems, driver == "aufs",
                     "aufs present" if "aufs" in facts.filesystems else "aufs is not in /proc/filesystems",
                     "this kernel lacks aufs: use --driver overlay"))
    if driver:
        cls_ok, why = drivers.driver_support(facts).get(driver, (False, f"unknown driver {driver!r}"))
        out.append(Check(f"driver {driver}", cls_ok, True, why, "choose another driver: berth info lists them"))
    runtimes = probe_runtimes(cache_dir)
    for rt in runtimes:
        out.append(Check(f"runtime {rt.name}", rt.works, False,
                         f"{rt.path} ({rt.version}): {rt.reason}" if rt.path else rt.reason,
                         f"apt-get install {rt.name}" if not rt.path else
                         "see the reason; berth uses the other runtime"))
    out.append(Check("runtime (any)", any(r.works for r in runtimes), True,
                     ", ".join(r.name for r in runtimes if r.works) or "no OCI runtime starts a container here",
                     "apt-get install runc"))
    cm = facts.conmon
    out.append(Check("conmon", bool(cm["path"]), True, f"{cm['path']} ({cm['version']})" if cm["path"] else
                     "conmon is not installed", "apt-get install conmon"))
    return out
