#!/usr/bin/env python3
"""Fleet benchmark: converge time of N system containers (scripts/fleet-image.sh) declaring
--containers containers each with playbooks/site.yml — first run on fresh hosts and the idempotent
re-run — over the berth connection plugin and over SSH (pipelining), with Ansible's default forks
and with forks = N. The outer berth root lives on a fresh loop-mounted ext4 (overlay driver); the
hosts run berth inside with vfs.

    python bench/fleet.py [--sizes 1,3,10] [--containers 5] [--reps 3] [--quick] [--json OUT]

--quick: 10 hosts only, one repetition (the size issue 15's target is set at).

Each figure is the median over --reps repetitions, each on freshly started hosts.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from containers import loadavg, machine  # noqa: E402

from tests import fleethosts  # noqa: E402
from tests.conftest import remove_cgroups  # noqa: E402

DEFAULT_FORKS = 5  # ansible-core's default


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def berth(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([os.path.join(fleethosts.VENV_BIN, "berth"), *args], env=env, capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise SystemExit(f"berth {' '.join(args)} failed: {cp.stderr.strip()}")
    return cp


def timed_converge(inventory: str, vars_file: str, env: dict[str, str], forks: int | None) -> tuple[float, dict]:
    t0 = time.monotonic()
    cp = fleethosts.converge(inventory, vars_file, env, forks=forks)
    elapsed = time.monotonic() - t0
    if cp.returncode != 0:
        raise SystemExit(f"converge failed:\n{cp.stdout[-4000:]}\n{cp.stderr[-2000:]}")
    return elapsed, fleethosts.recap(cp.stdout)


def run(sizes: list[int], containers: int, reps: int, work: str) -> list[dict[str, object]]:
    env = dict(os.environ, BERTH_ROOT=f"{work}/root", BERTH_RUNROOT=f"{work}/run",
               BERTH_CONFIG=f"{work}/no-config.yml", BERTH_DRIVER="overlay",
               BERTH_CGROUP_PARENT=f"berth-bench-{os.getpid()}")
    b = functools.partial(berth, env)
    fleethosts.import_image(b, os.path.join(REPO, ".cache", "fleet.tar"))
    key = fleethosts.ssh_keypair(work)
    vars_file = os.path.join(work, "vars.json")
    with open(vars_file, "w") as f:
        json.dump(fleethosts.containers_vars(containers), f)
    rows: list[dict[str, object]] = []
    for n in sizes:
        for connection in ("berth", "ssh"):
            for forks in sorted({DEFAULT_FORKS, n}) if n != DEFAULT_FORKS else [DEFAULT_FORKS]:
                names = [f"bench-{i}" for i in range(1, n + 1)]
                label = f"bench-{n}-{connection}-{forks}"
                firsts, reruns = [], []
                for _rep in range(reps):
                    try:
                        ips = fleethosts.start_hosts(b, names, label=label, keydir=work,
                                                     busybox_tar=os.path.join(REPO, ".cache", "busybox.tar"))
                        if connection == "berth":
                            inv = fleethosts.berth_inventory(os.path.join(work, "fleet.berth.yml"),
                                                             root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"],
                                                             label=label)
                        else:
                            inv = fleethosts.ssh_inventory(os.path.join(work, "hosts.json"), ips, key=key)
                        first, first_recap = timed_converge(inv, vars_file, env, forks)
                        rerun, rerun_recap = timed_converge(inv, vars_file, env, forks)
                    finally:
                        fleethosts.remove_hosts(b, names)
                    assert len(first_recap) == n and all(r["changed"] > 0 for r in first_recap.values())
                    assert all(r["changed"] == 0 for r in rerun_recap.values()), rerun_recap
                    firsts.append(first)
                    reruns.append(rerun)
                first, rerun = statistics.median(firsts), statistics.median(reruns)
                row = {"hosts": n, "containers_per_host": containers, "connection": connection,
                       "forks": forks, "reps": reps, "first_s": round(first, 2), "rerun_s": round(rerun, 2),
                       "first_per_host_s": round(first / n, 2), "rerun_per_host_s": round(rerun / n, 2)}
                rows.append(row)
                print(f"N={n:<3} {connection:<6} forks={forks:<3} first {first:6.1f} s ({first / n:5.1f} s/host)"
                      f"  re-run {rerun:6.1f} s ({rerun / n:5.1f} s/host)", flush=True)
    berth(env, "network", "rm", "berth", check=False)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,3,10")
    ap.add_argument("--containers", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="--sizes 10 --reps 1")
    ap.add_argument("--json", default=os.path.join(REPO, "bench", f"results-fleet-{time.strftime('%Y%m%d')}.json"))
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.reps = "10", 1
    if os.geteuid() != 0:
        raise SystemExit("bench/fleet.py needs root (mounts, containers)")
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="berth-bench-fleet-")
    img, mnt = os.path.join(tmp, "fs.img"), os.path.join(tmp, "mnt")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(16 << 30)
    sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard", img)
    dev = sh("losetup", "-f", "--show", img).stdout.strip()
    parent = f"berth-bench-{os.getpid()}"
    info = machine()
    try:
        sh("mount", dev, mnt)
        rows = run(sizes, args.containers, args.reps, mnt)
    finally:
        out = sh("findmnt", "-rn", "-o", "TARGET", check=False).stdout.split()
        for target in sorted((t for t in out if t.startswith(mnt)), key=len, reverse=True):
            sh("umount", "-l", target, check=False)
        sh("losetup", "-d", dev, check=False)
        sh("rm", "-rf", "--one-file-system", tmp, check=False)
        remove_cgroups(parent)
    info["loadavg_end"] = loadavg()
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows, "machine": info}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
