#!/usr/bin/env python3
"""Diff benchmark: naive walk against native diff on each driver.

A base layer of --base-files files, then a rw layer holding --small small files (1 KiB) and one
--big-mib MiB file. For each driver: `changes` (the change list only) and `diff` (the full layer
tar, hashed as the layer store would), naive and native, medians of --reps runs, reported as
ratios. vfs and overlay run on a fresh loop-mounted ext4 (journal on), btrfs on a fresh
loop-mounted btrfs: never on the host's root file system.

    python bench/diff.py [--reps 3 | --quick] [--small 10000] [--big-mib 200] [--base-files 20000] [--json OUT]
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
from berth.storage import differ  # noqa: E402
from berth.storage.tarapply import HashingSink  # noqa: E402


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout.strip()


def loop_fs(work: str, fstype: str, size: str = "8G") -> tuple[str, str]:
    img = os.path.join(work, f"{fstype}.img")
    mnt = os.path.join(work, fstype)
    os.makedirs(mnt)
    sh("truncate", "-s", size, img)
    dev = sh("losetup", "-f", "--show", img)
    if fstype == "ext4":
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", dev)
    else:
        sh("mkfs.btrfs", "-q", "-f", dev)
    sh("mount", dev, mnt)
    return dev, mnt


def base_tar(n: int) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            sub = os.path.join(d, f"usr/share/d{i % 200:03d}")
            os.makedirs(sub, exist_ok=True)
            with open(os.path.join(sub, f"f{i:06d}"), "wb") as f:
                f.write(b"x" * (i % 4096))
        items = differ.Differ(d, None).plan()
        buf = io.BytesIO()
        differ.write_tar(items, d, buf)
        return buf.getvalue()


def write_changes(root: str, small: int, big_mib: int) -> None:
    os.makedirs(os.path.join(root, "bench/small"))
    for i in range(small):
        with open(os.path.join(root, "bench/small", f"f{i:05d}"), "wb") as f:
            f.write(os.urandom(1024))
    if big_mib:
        with open(os.path.join(root, "bench/big.bin"), "wb") as f:
            for _ in range(big_mib):
                f.write(os.urandom(1 << 20))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(e: Engine, layer_id: str, reps: int) -> dict[str, object]:
    native_ok, why = e.layers.native_diff()
    res: dict[str, object] = {"native_available": native_ok, "native_reason": why}
    digests = set()
    for mode in ("naive", "native") if native_ok else ("naive",):
        naive = mode == "naive"
        res[f"changes_{mode}_s"] = statistics.median(
            timed(lambda naive=naive: e.layers.changes(layer_id, naive=naive)) for _ in range(reps))
        times = []
        for _ in range(reps):
            sink = HashingSink()
            times.append(timed(lambda sink=sink, naive=naive: e.layers.diff(layer_id, sink, naive=naive)))
            digests.add(sink.digest())
            res["tar_bytes"] = sink.count
        res[f"diff_{mode}_s"] = statistics.median(times)
    res["identical_bytes"] = len(digests) == 1
    if native_ok:
        res["changes_ratio_naive_over_native"] = res["changes_naive_s"] / res["changes_native_s"]  # type: ignore[operator]
        res["diff_ratio_naive_over_native"] = res["diff_naive_s"] / res["diff_native_s"]  # type: ignore[operator]
    return res


def bench_driver(driver: str, root: str, tar: bytes, args: argparse.Namespace) -> dict[str, object]:
    """Two scenarios on one base: 'bulk' (the issue's layer) and 'small' (100 files touched)."""
    s = config_mod.Settings(root=os.path.join(root, "root"), runroot=os.path.join(root, "run"), driver=driver)
    e = Engine(s)
    out: dict[str, object] = {}
    try:
        base, _, _ = e.layers.create_from_tar(None, io.BytesIO(tar))
        for scenario, small, big in (("bulk", args.small, args.big_mib), ("small", 100, 0)):
            rw = e.layers.create_rw(base.id)
            path = e.layers.mount(rw.id)
            try:
                write_changes(path, small, big)
                out[scenario] = measure(e, rw.id, args.reps)
            finally:
                e.layers.unmount(rw.id)
        return out
    finally:
        e.close()


def _fmt(v: object) -> str:
    return f"{v:8.3f}" if isinstance(v, float) else f"{'-':>8}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--big-mib", type=int, default=200)
    ap.add_argument("--base-files", type=int, default=20_000)
    ap.add_argument("--drivers", default="vfs,overlay,btrfs")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--quick", action="store_true", help="one repetition (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.reps = 1
    work = tempfile.mkdtemp(prefix="berth-bench-")
    devs: list[tuple[str, str]] = []
    fs: dict[str, tuple[str, str]] = {}
    results: dict[str, object] = {"params": vars(args)}
    try:
        tar = base_tar(args.base_files)
        for driver in args.drivers.split(","):
            fstype = "btrfs" if driver == "btrfs" else "ext4"
            if fstype not in fs:
                fs[fstype] = loop_fs(work, fstype)
                devs.append(fs[fstype])
            _dev, mnt = fs[fstype]
            results[driver] = bench_driver(driver, os.path.join(mnt, driver), tar, args)
            print(f"{driver}: {json.dumps(results[driver])}", file=sys.stderr)
    finally:
        for dev, mnt in reversed(devs):
            subprocess.run(["umount", "-R", mnt], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)
    print(f"{'driver':<8} {'scenario':<8} {'changes naive':>14} {'native':>8} {'ratio':>6}   "
          f"{'diff naive':>10} {'native':>8} {'ratio':>6}  identical")
    for driver in args.drivers.split(","):
        for scenario in ("bulk", "small"):
            r = results[driver][scenario]  # type: ignore[index]
            print(f"{driver:<8} {scenario:<8} {r['changes_naive_s']:14.3f} {_fmt(r.get('changes_native_s'))} "
                  f"{r.get('changes_ratio_naive_over_native', 0):6.2f}   {r['diff_naive_s']:10.3f} "
                  f"{_fmt(r.get('diff_native_s'))} {r.get('diff_ratio_naive_over_native', 0):6.2f}  "
                  f"{r['identical_bytes']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
