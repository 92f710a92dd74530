#!/usr/bin/env python3
"""Image throughput: berth against docker and podman (driven by bench/peers.sh) on the same Debian
image in one run, each on a fresh loop-mounted ext4, with the floors measured by peers.sh too.

Phases:
  import  a rootfs tar of the Debian tree (167 MB) as a one-layer image (floor: tar -x of it)
  save    the Debian image to a docker-archive (floor: tar -c | sha256sum of the same tree)
  load    that archive into an empty store (floor: tar -x of the tree's tar)
  pull    the Debian image from a local registry (docker-registry on 127.0.0.1, plain http, started
          here and stopped by PID; the image is pushed there once, gzip layers) into an empty store;
          also `skopeo copy docker://... dir:` of it (download and verify, no unpacking)

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
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from containers import BERTH, PEER_CONFIGS, PEERS, REPO, BerthBench, loadavg, machine, settle  # noqa: E402

from tests.peers import registry  # noqa: E402

PULL_REF = "bench/debian:bench"
# phase metric -> the bytes its MB/s is computed on
ROWS = (("import_s", "deb_tar_bytes"), ("save_s", "save_tar_bytes"), ("load_s", "save_tar_bytes"),
        ("pull_s", "deb_tar_bytes"))


def peers(cmd: list[str], debroot: str, out: str) -> dict[str, object]:
    subprocess.run(["bash", PEERS, *cmd, "--json", out], env=dict(os.environ, DEBROOT=debroot), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def seed(work: str, deb_tar: str, reg: str) -> None:
    """Push the Debian image to the registry once, from a throwaway vfs root (no mounts)."""
    env = dict(os.environ, BERTH_ROOT=os.path.join(work, "seed"), BERTH_RUNROOT=os.path.join(work, "seed-run"),
               BERTH_CONFIG=os.path.join(work, "none.yml"), BERTH_DRIVER="vfs")
    for argv in (["import", deb_tar, "debian:bench"],
                 ["push", "-q", "--tls-verify=false", "debian:bench", f"{reg}/{PULL_REF}"]):
        subprocess.run([BERTH, *argv], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(["rm", "-rf", "--one-file-system", env["BERTH_ROOT"], env["BERTH_RUNROOT"]], check=False)


def berth_side(work: str, deb_tar: str, reg: str, reps: int) -> tuple[dict[str, list[float]], int]:
    with BerthBench(os.path.join(work, "berth"), argparse.Namespace()) as bb:
        for r in range(reps):
            settle()
            bb.timed("import_s", "import", deb_tar, "debian:bench")
            if r < reps - 1:
                bb.berth("rmi", "debian:bench")
        out = os.path.join(bb.mnt, "save.tar")
        for _ in range(reps):
            if os.path.exists(out):
                os.unlink(out)
            settle()
            bb.timed("save_s", "save", "-o", out, "debian:bench")
        size = os.path.getsize(out)
        for metric, root, argv, ref in (("load_s", "berth-load", ["load", "-q", "-i", out], "debian:bench"),
                                        ("pull_s", "berth-pull", ["pull", "-q", "--tls-verify=false",
                                                                  f"{reg}/{PULL_REF}"], f"{reg}/{PULL_REF}")):
            env = dict(bb.env, BERTH_ROOT=os.path.join(bb.mnt, root))
            for _ in range(reps):
                settle()
                t0 = time.perf_counter()
                subprocess.run([BERTH, *argv], env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
                bb.samples.setdefault(metric, []).append(time.perf_counter() - t0)
                subprocess.run([BERTH, "rmi", ref], env=env, check=True, capture_output=True, timeout=600)
        return bb.samples, size


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
    engines = [p for p in args.peers.split(",") if p] if not args.no_peers else []
    for engine in engines:
        if engine not in PEER_CONFIGS:
            print(f"unknown peer {engine!r}: docker or podman", file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="bib-", dir="/tmp")
    res: dict[str, object] = {"machine": machine()}
    try:
        deb_tar = os.path.join(work, "debian.tar")
        subprocess.run(["tar", "--numeric-owner", "-C", args.debroot, "-cf", deb_tar, "."], check=True)
        with registry(os.path.join(work, "registry")) as reg:
            print(f"[{time.strftime('%T')}] registry {reg}: pushing {PULL_REF} ...", file=sys.stderr)
            seed(work, deb_tar, reg)
            for engine in engines:
                print(f"[{time.strftime('%T')}] {engine} import/save/load/pull ...", file=sys.stderr)
                cmd = ["bench", "--engine", engine, "--driver", PEER_CONFIGS[engine], "--fs", "ext4", "--phases",
                       "import,save,load,pull", "--reps-io", str(args.reps), "--registry", reg,
                       "--pull-ref", PULL_REF]
                d = peers(cmd, args.debroot, os.path.join(work, f"{engine}.json"))
                res[engine] = {"metrics": d.get("metrics"), "info": d.get("info"), "errors": d.get("errors")}
            if engines:
                print(f"[{time.strftime('%T')}] floor ...", file=sys.stderr)
                f = peers(["floor", "--fs", "ext4", "--reps-floor", str(args.reps), "--reps-run", "1",
                           "--registry", reg, "--pull-ref", PULL_REF], args.debroot, os.path.join(work, "floor.json"))
                res["floor"] = {"metrics": f.get("metrics"), "errors": f.get("errors")}
            print(f"[{time.strftime('%T')}] berth ...", file=sys.stderr)
            samples, size = berth_side(work, deb_tar, reg, args.reps)
        res["berth"] = {k: {"median": statistics.median(v), "samples": v} for k, v in samples.items()}
        res["save_tar_bytes"] = size
        res["deb_tar_bytes"] = os.path.getsize(deb_tar)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", work], check=False)
    res["machine"]["loadavg_end"] = loadavg()  # type: ignore[index]
    _print(res)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


def _print(res: dict[str, object]) -> None:
    b = res["berth"]
    engines = [e for e in PEER_CONFIGS if e in res]
    fl = (res.get("floor") or {}).get("metrics") or {}  # type: ignore[union-attr]
    print(f"debian image tar: {int(res['save_tar_bytes']) / 1e6:.1f} MB,"  # type: ignore[call-overload]
          f" rootfs tar: {int(res['deb_tar_bytes']) / 1e6:.1f} MB")  # type: ignore[call-overload]
    print(f"{'phase':<8} {'berth':>10} {'MB/s':>7}" + "".join(f" {e:>10} {'MB/s':>7} {'ratio':>6}" for e in engines))
    for key, size_key in ROWS:
        size = int(res[size_key])  # type: ignore[call-overload]
        bt = (b.get(key) or {}).get("median")  # type: ignore[union-attr]
        if not bt:
            continue
        row = f"{key[:-2]:<8} {bt:9.2f}s {size / bt / 1e6:7.1f}"
        for e in engines:
            dt = (((res[e] or {}).get("metrics") or {}).get(key) or {}).get("median")  # type: ignore[union-attr]
            row += f" {dt:9.2f}s {size / dt / 1e6:7.1f} {bt / dt:6.2f}" if dt else f" {'-':>10} {'-':>7} {'-':>6}"
        print(row)
    for key, m in fl.items():
        if ("tar" in key or "skopeo" in key) and key.endswith("_s") and "changes" not in key:
            print(f"floor {key}: {m['median']:.2f}s")


if __name__ == "__main__":
    sys.exit(main())
