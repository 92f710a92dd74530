#!/usr/bin/env python3
"""Storage benchmark: container-layer create+remove rate and snapshot time of a rw layer holding
--data-mib MiB, for devicemapper (reflink pool on XFS) against overlay (ext4) and btrfs, each on a
fresh loop-mounted file system, in one run. Where the kernel has device-mapper (the kernel lane's
VM: `make bench-kernel`) devicemapper also runs on a real dm-thin pool made of two loop files.

    python bench/storage.py [--n 50] [--reps 3 | --quick] [--data-mib 100] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime"))

from berth import config as config_mod  # noqa: E402
from berth.engine import Engine  # noqa: E402
from berth.host.probe import device_mapper  # noqa: E402
from berth.storage import differ  # noqa: E402

FS = {"overlay": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard"],
      "btrfs": ["mkfs.btrfs", "-q", "-f"], "devicemapper": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"]}


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout.strip()


def base_tar() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        for i in range(2000):
            os.makedirs(os.path.join(d, f"d{i % 20}"), exist_ok=True)
            with open(os.path.join(d, f"d{i % 20}", f"f{i}"), "wb") as f:
                f.write(b"x" * 512)
        buf = io.BytesIO()
        differ.write_tar(differ.Differ(d, None).plan(), d, buf)
        return buf.getvalue()


def thin_pool(work: str, name: str, devs: list[tuple[str, str]]) -> str:
    """A dm-thin pool on a sparse data file and a metadata file (loop devices): its /dev/mapper path."""
    loops = []
    for part, size in (("data", "8G"), ("meta", "128M")):
        img = os.path.join(work, f"{name}-{part}.img")
        sh("truncate", "-s", size, img)
        loops.append(sh("losetup", "-f", "--show", img))
        devs.append((loops[-1], ""))
    sh("dd", "if=/dev/zero", f"of={loops[1]}", "bs=4096", "count=1")
    sh("dmsetup", "create", name, "--table", f"0 {(8 << 30) // 512} thin-pool {loops[1]} {loops[0]} 1024 32768 1 "
       "skip_block_zeroing")
    return f"/dev/mapper/{name}"


def remove_thin_pool(pool: str) -> None:
    """Remove berth's thin devices left active, then the pool."""
    for line in subprocess.run(["dmsetup", "ls"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("berth-"):
            subprocess.run(["dmsetup", "remove", "-f", line.split()[0]], check=False)
    subprocess.run(["dmsetup", "remove", pool], check=False)


def bench(driver: str, mnt: str, tar: bytes, args: argparse.Namespace, pool: str = "") -> dict[str, float]:
    opts = {"dm.basesize": "2g"} if driver == "devicemapper" else {}
    if pool:
        opts["dm.thinpooldev"] = pool
    e = Engine(config_mod.Settings(root=os.path.join(mnt, "root"), runroot=os.path.join(mnt, "run"), driver=driver,
                                   storage_opts=opts))
    try:
        base, _, _ = e.layers.create_from_tar(None, io.BytesIO(tar))
        t0 = time.perf_counter()
        for _ in range(args.n):
            rw = e.layers.create_rw(base.id)
            e.layers.remove(rw.id)
        rate = args.n / (time.perf_counter() - t0)
        rw = e.layers.create_rw(base.id)
        path = e.layers.mount(rw.id)
        with open(os.path.join(path, "data.bin"), "wb") as f:
            for _ in range(args.data_mib):
                f.write(os.urandom(1 << 20))
        e.layers.unmount(rw.id)
        subprocess.run(["sync"], check=True)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            snap = e.layers.snapshot(rw.id)
            times.append(time.perf_counter() - t0)
            e.layers.remove(snap.id)
        e.layers.remove(rw.id)
        return {"create_remove_per_s": rate, "snapshot_s": statistics.median(times)}
    finally:
        e.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data-mib", type=int, default=100)
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="one repetition (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.reps = 1
    work = tempfile.mkdtemp(prefix="bst-", dir="/tmp")
    res: dict[str, dict[str, float]] = {}
    devs: list[tuple[str, str]] = []
    pool = ""
    runs = list(FS.items())
    if device_mapper()[0]:
        runs.append(("dm-thin", FS["overlay"]))  # devicemapper on a real thin pool; its root on ext4
    try:
        tar = base_tar()
        for name, mkfs in runs:
            img, mnt = os.path.join(work, f"{name}.img"), os.path.join(work, name)
            os.makedirs(mnt)
            sh("truncate", "-s", "8G", img)
            dev = sh("losetup", "-f", "--show", img)
            devs.append((dev, mnt))
            sh(*mkfs, dev)
            sh("mount", dev, mnt)
            if name == "dm-thin":
                pool = thin_pool(work, f"bst-pool-{os.getpid()}", devs)
            res[name] = bench("devicemapper" if name == "dm-thin" else name, mnt, tar, args, pool if
                              name == "dm-thin" else "")
            print(f"{name}: {res[name]}", file=sys.stderr)
    finally:
        for dev, mnt in reversed(devs):
            if not mnt:
                continue
            subprocess.run(["umount", "-R", mnt], check=False)
            out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if f"({mnt}/" in line:
                    subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
            subprocess.run(["umount", "-R", mnt], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)
        if pool:
            remove_thin_pool(pool)
        for dev, mnt in devs:
            if not mnt:
                subprocess.run(["losetup", "-d", dev], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)
    dm = res["devicemapper"]
    print(f"{'driver':<13} {'create+remove/s':>16} {'snapshot':>10}  dm/this (rate, time)")
    for driver, r in res.items():
        print(f"{driver:<13} {r['create_remove_per_s']:16.1f} {r['snapshot_s'] * 1000:8.1f}ms  "
              f"{dm['create_remove_per_s'] / r['create_remove_per_s']:.2f}, {dm['snapshot_s'] / r['snapshot_s']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
