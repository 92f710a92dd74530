#!/usr/bin/env python3
"""Containers benchmark: berth side by side with docker and podman, in one run, same images, same
kind of file system (a fresh loop-mounted ext4 each), network none.

Phases (as bench/peers.sh measures the peers; its `floor` run gives each phase's floor):
  run        `run --rm --network none busybox /bin/true` (2 warm-ups, then --reps-run)
  lifecycle  create + start + wait + rm of --n-lifecycle containers in sequence (per container)
  commit     commit of a debian container that wrote 5,000 x 1 KiB + 200 MiB and deleted 100 files
  diff       diff of such a container

Floors (no engine, same machine, same kind of file system): run and lifecycle: `runc run` of a
busybox bundle; commit: `tar -c | sha256sum` of the writer's files; diff: `find` over them.

    python bench/containers.py [--quick] [--json OUT] [--peers docker,podman] [--no-floor] [--debroot DIR]

Prints medians and the ratio berth / peer for each phase (below 1: berth is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(REPO, "bench", "peers.sh")
BERTH = os.path.join(REPO, ".venv", "bin", "berth")
PEER_CONFIGS = {"docker": "overlay2", "podman": "overlay"}
METRICS = (("run_s", "run --rm busybox true"), ("lc_per_container_s", "create+start+wait+rm (per container)"),
           ("commit_s", "commit 5000 files + 200 MiB"), ("diff_s", "diff of that container"))
FLOORS = {"run_s": "floor_runc_run_s", "lc_per_container_s": "floor_runc_run_s",
          "commit_s": "floor_changes_tar_sha256_s", "diff_s": "floor_changes_find_s"}


def sh(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def settle() -> None:
    subprocess.run(["sync"], check=True)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    with open("/proc/loadavg", encoding="utf-8") as f:
        return " ".join(f.read().split()[:3])


def machine() -> dict[str, object]:
    """What the summary prints about the machine; loadavg_end is added when the run is over."""
    with open("/proc/meminfo", encoding="utf-8") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return {"cpus": os.cpu_count(), "mem_gib": round(kib / (1 << 20), 1), "kernel": os.uname().release,
            "loadavg_start": loadavg()}


class BerthBench:
    def __init__(self, work: str, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.samples: dict[str, list[float]] = {}
        self.img = os.path.join(work, "fs.img")
        self.mnt = os.path.join(work, "fs")
        self.dev = ""
        self.env = dict(os.environ, BERTH_ROOT=os.path.join(self.mnt, "berth"),
                        BERTH_RUNROOT=os.path.join(work, "run"), BERTH_CGROUP_PARENT=f"berth-bench-{os.getpid()}",
                        BERTH_CONFIG=os.path.join(work, "none.yml"), BERTH_DRIVER="overlay")

    def __enter__(self) -> BerthBench:
        os.makedirs(self.mnt)
        sh("truncate", "-s", "16G", self.img)
        self.dev = sh("losetup", "-f", "--show", self.img).stdout.strip()
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", self.dev)
        sh("mount", self.dev, self.mnt)
        return self

    def __exit__(self, *exc: object) -> None:
        ids = subprocess.run([BERTH, "ps", "-aq"], env=self.env, capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([BERTH, "rm", "-f", *ids], env=self.env, capture_output=True)
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mountinfo = f.read().splitlines()
        for line in reversed(mountinfo):
            target = line.split()[4]
            if target.startswith(self.mnt + "/") or target.startswith(self.work + "/run"):
                subprocess.run(["umount", "-l", target], capture_output=True)
        subprocess.run(["umount", self.mnt], capture_output=True)
        if self.dev:
            subprocess.run(["losetup", "-d", self.dev], capture_output=True)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", ctrl, self.env["BERTH_CGROUP_PARENT"])
            if os.path.isdir(d):
                subprocess.run(["rmdir", d], capture_output=True)

    def berth(self, *a: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([BERTH, *a], env=self.env, capture_output=True, text=True)
        if check and cp.returncode != 0:
            raise RuntimeError(f"berth {' '.join(a[:4])} failed: {cp.stderr.strip()}")
        return cp

    def timed(self, metric: str, *a: str) -> subprocess.CompletedProcess[str]:
        t0 = time.perf_counter()
        cp = self.berth(*a)
        self.samples.setdefault(metric, []).append(time.perf_counter() - t0)
        return cp

    def run(self, busybox_tar: str, debian_tar: str, writer: str) -> dict[str, list[float]]:
        self.berth("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bench")
        self.berth("import", debian_tar, "debian:bench")
        a = self.args
        settle()
        for _ in range(2):
            self.timed("run_warmup_s", "run", "--rm", "--network", "none", "busybox:bench", "/bin/true")
        for _ in range(a.reps_run):
            self.timed("run_s", "run", "--rm", "--network", "none", "busybox:bench", "/bin/true")
        for b in range(a.reps_lifecycle):
            settle()
            for i in range(a.n_lifecycle):
                n = f"lc-{b}-{i}"
                t0 = time.perf_counter()
                self.berth("create", "--name", n, "--network", "none", "busybox:bench", "/bin/true")
                self.berth("start", n)
                code = self.berth("wait", n).stdout.strip()
                self.berth("rm", n)
                if code != "0":
                    raise RuntimeError(f"lifecycle container exited {code}")
                self.samples.setdefault("lc_per_container_s", []).append(time.perf_counter() - t0)
        for r in range(a.reps_commit):
            n = f"cm-{r}"
            out = self.timed("writer_run_s", "run", "--name", n, "--network", "none", "debian:bench",
                             "/usr/bin/python3", "-c", writer).stdout
            if "writer ok" not in out:
                raise RuntimeError(f"writer failed: {out}")
            settle()
            self.timed("commit_s", "commit", n, f"benchcommit:{r}")
            self.berth("rm", n)
            self.berth("rmi", f"benchcommit:{r}")
            settle()
        self.berth("run", "--name", "df-1", "--network", "none", "debian:bench", "/usr/bin/python3", "-c", writer)
        settle()
        for _ in range(a.reps_diff):
            out = self.timed("diff_s", "diff", "df-1").stdout
        self.samples["diff_lines"] = [float(len(out.splitlines()))]
        self.berth("rm", "df-1")
        return self.samples


def peer_bench(engine: str, args: argparse.Namespace, out: str) -> dict[str, object]:
    cmd = ["bash", args.peers_script, "bench", "--engine", engine, "--driver", PEER_CONFIGS[engine], "--fs", "ext4",
           "--phases", "run,lifecycle,commit,diff", "--json", out, "--reps-run", str(args.reps_run),
           "--n-lifecycle", str(args.n_lifecycle), "--reps-lifecycle", str(args.reps_lifecycle),
           "--reps-commit", str(args.reps_commit), "--reps-diff", str(args.reps_diff)]
    env = dict(os.environ, DEBROOT=args.debroot)
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=sys.stderr if args.verbose else
                   subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def floor_bench(args: argparse.Namespace, out: str, reps_floor: int) -> dict[str, object]:
    cmd = ["bash", args.peers_script, "floor", "--fs", "ext4", "--json", out, "--reps-run", str(args.reps_run),
           "--reps-floor", str(reps_floor)]
    subprocess.run(cmd, env=dict(os.environ, DEBROOT=args.debroot), check=False, stdout=subprocess.DEVNULL,
                   stderr=sys.stderr if args.verbose else subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps-run", type=int, default=20)
    ap.add_argument("--n-lifecycle", type=int, default=50)
    ap.add_argument("--reps-lifecycle", type=int, default=1)
    ap.add_argument("--reps-commit", type=int, default=3)
    ap.add_argument("--reps-diff", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small rep counts (smoke test)")
    ap.add_argument("--peers", default="docker,podman", help="comma list, or '' for berth alone")
    ap.add_argument("--peers-script", default=PEERS)
    ap.add_argument("--no-floor", action="store_true", help="skip the floors (runc run, tar | sha256sum, find)")
    ap.add_argument("--debroot", default=os.path.join(REPO, ".cache", "debroot"))
    ap.add_argument("--json")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.reps_run, args.n_lifecycle, args.reps_commit, args.reps_diff = 5, 5, 1, 2
    if not os.path.isdir(args.debroot):
        print(f"no debian rootfs at {args.debroot}: run 'make bench-containers' (it builds one)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="bcb-", dir="/tmp")
    results: dict[str, object] = {"params": vars(args), "machine": machine()}
    try:
        busybox_tar = os.path.join(work, "busybox.tar")
        sh(os.path.join(REPO, "scripts", "busybox-rootfs.sh"), busybox_tar)
        debian_tar = os.path.join(work, "debian.tar")
        sh("tar", "--numeric-owner", "-C", args.debroot, "-cf", debian_tar, ".")
        from_peers: dict[str, dict[str, object]] = {}
        for engine in [p for p in args.peers.split(",") if p]:
            print(f"[{time.strftime('%T')}] {engine} ...", file=sys.stderr)
            from_peers[engine] = peer_bench(engine, args, os.path.join(work, f"{engine}.json"))
        if not args.no_floor:
            print(f"[{time.strftime('%T')}] floor ...", file=sys.stderr)
            floor = floor_bench(args, os.path.join(work, "floor.json"), args.reps_commit)
            results["floor"] = {"metrics": floor.get("metrics"), "errors": floor.get("errors")}
        writer = str(next(iter(from_peers.values()))["writer_script"]) if from_peers else _writer()
        print(f"[{time.strftime('%T')}] berth ...", file=sys.stderr)
        with BerthBench(os.path.join(work, "berth"), args) as bb:
            samples = bb.run(busybox_tar, debian_tar, writer)
        results["berth"] = {k: {"median": statistics.median(v), "n": len(v), "samples": v} for k, v in samples.items()}
        for engine, data in from_peers.items():
            results[engine] = {"metrics": data.get("metrics"), "errors": data.get("errors"), "info": data.get("info")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = loadavg()  # type: ignore[index]
    _print(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


def _writer() -> str:
    with open(PEERS, encoding="utf-8") as f:
        text = f.read()
    return text.split("read -r -d '' WRITER <<'PYEOF'\n", 1)[1].split("PYEOF", 1)[0]


def _print(results: dict[str, object]) -> None:
    berth = results["berth"]
    assert isinstance(berth, dict)
    peers = [k for k in results if k in PEER_CONFIGS]
    floor = (results.get("floor") or {}).get("metrics") or {}  # type: ignore[union-attr]
    head = f"{'phase':<40} {'berth':>9}" + "".join(f" {p:>9} {'ratio':>6}" for p in peers) + f" {'floor':>9}"
    print(head)
    for key, label in METRICS:
        b = berth.get(key, {}).get("median")
        row = f"{label:<40} {b * 1000 if b else float('nan'):8.1f}ms"
        for p in peers:
            m = (results[p].get("metrics") or {}).get(key, {})  # type: ignore[union-attr]
            v = m.get("median")
            ratio = (b / v) if (b and v) else float("nan")
            row += f" {v * 1000 if v else float('nan'):7.1f}ms {ratio:6.2f}"
        fv = (floor.get(FLOORS[key]) or {}).get("median")
        row += f" {fv * 1000 if fv else float('nan'):7.1f}ms"
        print(row)


if __name__ == "__main__":
    sys.exit(main())
