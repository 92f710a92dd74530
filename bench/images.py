#!/usr/bin/env python3
"""Image save / load throughput: berth against docker and podman (driven by bench/peers.sh) on the
same Debian image in one run, each on a fresh loop-mounted ext4, with the floors (save: tar -c | sha256sum of
the same tree; load: tar -x of its tar) measured by peers.sh too.

    python bench/images.py [--reps 3] [--quick] [--peers docker,podman] [--json OUT] [--debroot DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from containers import BERTH, PEER_CONFIGS, PEERS, REPO, BerthBench, settle  # noqa: E402


def peers(cmd: list[str], debroot: str, out: str) -> dict[str, object]:
    subprocess.run(["bash", PEERS, *cmd, "--json", out], env=dict(os.environ, DEBROOT=debroot), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one rep of each (smoke test)")
    ap.add_argument("--debroot", default=os.path.join(REPO, ".cache", "debroot"))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers", default="docker,podman", help="comma list of docker, podman")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.reps = 1
    if not os.path.isdir(args.debroot):
        print(f"no debian rootfs at {args.debroot}: run 'make bench-images' (it builds one)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="bib-", dir="/tmp")
    res: dict[str, object] = {}
    try:
        if not args.no_peers:
            for engine in [p for p in args.peers.split(",") if p]:
                if engine not in PEER_CONFIGS:
                    print(f"unknown peer {engine!r}: docker or podman", file=sys.stderr)
                    return 2
                print(f"[{time.strftime('%T')}] {engine} save/load ...", file=sys.stderr)
                cmd = ["bench", "--engine", engine, "--driver", PEER_CONFIGS[engine], "--fs", "ext4", "--phases",
                       "save,load", "--reps-io", str(args.reps)]
                d = peers(cmd, args.debroot, os.path.join(work, f"{engine}.json"))
                res[engine] = {"metrics": d.get("metrics"), "info": d.get("info"), "errors": d.get("errors")}
            print(f"[{time.strftime('%T')}] floor ...", file=sys.stderr)
            f = peers(["floor", "--fs", "ext4", "--reps-floor", str(args.reps), "--reps-run", "1"], args.debroot,
                      os.path.join(work, "floor.json"))
            res["floor"] = {"metrics": f.get("metrics"), "errors": f.get("errors")}
        print(f"[{time.strftime('%T')}] berth ...", file=sys.stderr)
        deb_tar = os.path.join(work, "debian.tar")
        subprocess.run(["tar", "--numeric-owner", "-C", args.debroot, "-cf", deb_tar, "."], check=True)
        bargs = argparse.Namespace()
        with BerthBench(os.path.join(work, "berth"), bargs) as bb:
            bb.berth("import", deb_tar, "debian:bench")
            out = os.path.join(bb.mnt, "save.tar")
            for _ in range(args.reps):
                if os.path.exists(out):
                    os.unlink(out)
                settle()
                bb.timed("save_s", "save", "-o", out, "debian:bench")
            size = os.path.getsize(out)
            loader = dict(bb.env, BERTH_ROOT=os.path.join(bb.mnt, "berth-load"))
            for _ in range(args.reps):
                settle()
                t0 = time.perf_counter()
                subprocess.run([BERTH, "load", "-q", "-i", out], env=loader, check=True)
                bb.samples.setdefault("load_s", []).append(time.perf_counter() - t0)
                subprocess.run([BERTH, "rmi", "debian:bench"], env=loader, check=True, capture_output=True)
        res["berth"] = {k: {"median": statistics.median(v), "samples": v} for k, v in bb.samples.items()}
        res["save_tar_bytes"] = size
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)
    _print(res)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


def _print(res: dict[str, object]) -> None:
    size = int(res["save_tar_bytes"])  # type: ignore[call-overload]
    b = res["berth"]
    engines = [e for e in PEER_CONFIGS if e in res]
    fl = (res.get("floor") or {}).get("metrics") or {}  # type: ignore[union-attr]
    print(f"debian image tar: {size / 1e6:.1f} MB")
    print(f"{'phase':<8} {'berth':>10} {'MB/s':>7}" + "".join(f" {e:>10} {'MB/s':>7} {'ratio':>6}" for e in engines))
    for key in ("save_s", "load_s"):
        bt = b[key]["median"]  # type: ignore[index]
        row = f"{key[:-2]:<8} {bt:9.2f}s {size / bt / 1e6:7.1f}"
        for e in engines:
            dt = (((res[e] or {}).get("metrics") or {}).get(key) or {}).get("median")  # type: ignore[union-attr]
            row += f" {dt:9.2f}s {size / dt / 1e6:7.1f} {bt / dt:6.2f}" if dt else f" {'-':>10} {'-':>7} {'-':>6}"
        print(row)
    for key, m in fl.items():
        if "tar" in key and key.endswith("_s") and "changes" not in key:
            print(f"floor {key}: {m['median']:.2f}s ({size / m['median'] / 1e6:.1f} MB/s)")

if __name__ == "__main__":
    sys.exit(main())
