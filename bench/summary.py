#!/usr/bin/env python3
"""One table of every benchmark phase from the recorded results (runs no benchmark): per phase
berth's median, each peer's with the ratio berth / peer (below 1: berth is faster), the floor, and
issue 15's target with met / not met.

    python bench/summary.py [--out FILE | --no-write] [RESULTS.json ...]

Without files, the latest bench/results-<kind>-<YYYYMMDD>[-quick].json of each kind (containers,
images, fleet, diff) is read: the newest date wins, and on the same date a full run wins over a
--quick one (quick sources are marked in the table). The table is printed and written to
bench/summary-<date of the newest source>.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
KINDS = ("containers", "images", "fleet", "diff")
NAME = re.compile(r"results-(?P<kind>[a-z]+)-(?P<stamp>[0-9]{8})(?P<quick>-quick)?\.json$")
PEER_COLUMNS = ("docker", "podman", "other")
FLEET_HOSTS = 10
Results = dict[str, Any]


def latest(kind: str) -> str | None:
    found = []
    for path in glob.glob(os.path.join(BENCH, f"results-{kind}-*.json")):
        m = NAME.search(os.path.basename(path))
        if m and m["kind"] == kind:
            found.append((m["stamp"], not m["quick"], path))
    return max(found)[2] if found else None


def pick(files: list[str], prog: str = "summary.py") -> dict[str, str]:
    """The results file of each kind: the ones named, else the latest (charts.py shares this)."""
    chosen: dict[str, str] = {}
    for path in files:
        m = NAME.search(os.path.basename(path))
        if not m or m["kind"] not in KINDS:
            raise SystemExit(f"{prog}: {path}: not a results-<kind>-<YYYYMMDD>.json of a kind in {KINDS}")
        chosen[m["kind"]] = path
    for kind in KINDS:
        if kind not in chosen and (path := latest(kind)):
            chosen[kind] = path
    return chosen


def load(path: str, prog: str = "summary.py") -> Results:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{prog}: {path}: {e}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"{prog}: {path}: not a results object")
    return data


def median(section: object, metric: str) -> float | None:
    """A metric's median from a berth section ({m: {median}}) or a peer/floor one ({metrics: {m: {median}}})."""
    if not isinstance(section, dict):
        return None
    table = section.get("metrics") if "metrics" in section else section
    entry = (table or {}).get(metric)
    value = entry.get("median") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass
class Row:
    """One phase. Times in seconds; `check` gets the row and says (met, the measured figure)."""

    phase: str
    source: str
    berth: float | None
    peers: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # column -> (name, seconds)
    floor: tuple[str, float | None] = ("", None)
    target: str = ""
    check: Callable[[Row], tuple[bool, str]] | None = None
    mbytes: float | None = None  # MB the phase moves, for MB/s

    def peer(self, name: str) -> float | None:
        return next((v for n, v in self.peers.values() if n == name), None)

    def verdict(self) -> str:
        if self.check is None:
            return ""
        try:
            ok, figure = self.check(self)
        except (TypeError, ZeroDivisionError):
            return "not measured"
        return f"**met** ({figure})" if ok else f"not met ({figure})"


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        raise TypeError("not measured")
    return a / b


def at_most(peer: str, limit: float) -> Callable[[Row], tuple[bool, str]]:
    def check(r: Row) -> tuple[bool, str]:
        x = ratio(r.berth, r.peer(peer))
        return x <= limit, f"{x:.2f}× {peer}"
    return check


def all_of(*checks: Callable[[Row], tuple[bool, str]]) -> Callable[[Row], tuple[bool, str]]:
    def check(r: Row) -> tuple[bool, str]:
        parts = [c(r) for c in checks]
        return all(ok for ok, _ in parts), ", ".join(f for _, f in parts)
    return check


def run_overhead(limit: float) -> Callable[[Row], tuple[bool, str]]:
    def check(r: Row) -> tuple[bool, str]:
        if r.berth is None or r.floor[1] is None:
            raise TypeError("not measured")
        over = r.berth - r.floor[1]
        return over <= limit, f"{over * 1000:.0f} ms over the floor"
    return check


def throughput_vs_floor(limit: float, floor_mbps: float | None) -> Callable[[Row], tuple[bool, str]]:
    """berth's MB/s over the floor's MB/s (each on its own byte count) at least `limit`."""
    def check(r: Row) -> tuple[bool, str]:
        if r.berth is None or r.mbytes is None or floor_mbps is None:
            raise TypeError("not measured")
        x = (r.mbytes / r.berth) / floor_mbps
        return x >= limit, f"{x:.2f}× the floor's MB/s"
    return check


def faster_than(peer: str, limit: float) -> Callable[[Row], tuple[bool, str]]:
    """berth's throughput at least `limit` times the peer's (same bytes: peer time / berth time)."""
    def check(r: Row) -> tuple[bool, str]:
        x = ratio(r.peer(peer), r.berth)
        return x >= limit, f"{x:.2f}× {peer}'s throughput"
    return check


def engine_rows(kind: str, res: Results, src: str) -> list[Row]:
    floor = res.get("floor")
    b = res.get("berth")

    def peers(metric: str) -> dict[str, tuple[str, float | None]]:
        return {e: (e, median(res.get(e), metric)) for e in ("docker", "podman") if e in res}

    if kind == "containers":
        runc = median(floor, "floor_runc_run_s")
        return [
            Row("`run --rm --network none busybox true`", src, median(b, "run_s"), peers("run_s"),
                ("runc run", runc), "≤ 60 ms over the runc floor and ≤ 0.3× docker",
                all_of(run_overhead(0.060), at_most("docker", 0.3))),
            Row("create + start + wait + rm, per container", src, median(b, "lc_per_container_s"),
                peers("lc_per_container_s"), ("runc run", runc), "≤ 0.5× docker and ≤ 0.5× podman",
                all_of(at_most("docker", 0.5), at_most("podman", 0.5))),
            Row("diff (5,000 × 1 KiB + 200 MiB written, overlay)", src, median(b, "diff_s"), peers("diff_s"),
                ("find", median(floor, "floor_changes_find_s")), "≤ 0.5× podman", at_most("podman", 0.5)),
            Row("commit of that container", src, median(b, "commit_s"), peers("commit_s"),
                ("tar -c | sha256sum", median(floor, "floor_changes_tar_sha256_s")), "≤ 0.3× docker",
                at_most("docker", 0.3)),
        ]
    save_mb = (res.get("save_tar_bytes") or 0) / 1e6 or None
    tar_mb = (res.get("deb_tar_bytes") or _info_bytes(res, "debroot_tar_bytes") or 0) / 1e6 or None
    tar_x = median(floor, "floor_tar_x_s")
    tar_sha = median(floor, "floor_tar_sha256_pipe_s")

    def floor_mbps(metric: str, seconds: float | None) -> float | None:  # peers.sh computes it on the tar's bytes
        return median(floor, metric) or (tar_mb / seconds if tar_mb and seconds else None)

    pull_peers = peers("pull_s")
    pull_peers["other"] = ("skopeo", median(floor, "floor_skopeo_copy_dir_s"))
    return [
        Row("load of the Debian docker-archive", src, median(b, "load_s"), peers("load_s"), ("tar -x", tar_x),
            "≥ 0.6× the `tar -x` floor's MB/s", throughput_vs_floor(0.6, floor_mbps("floor_tar_x_MBps", tar_x)),
            save_mb),
        Row("save of the Debian image", src, median(b, "save_s"), peers("save_s"),
            ("tar -c | sha256sum", tar_sha), "≥ 0.9× the `tar | sha256sum` floor's MB/s",
            throughput_vs_floor(0.9, floor_mbps("floor_tar_sha256_pipe_MBps", tar_sha)), save_mb),
        Row("pull of the Debian image from a local registry", src, median(b, "pull_s"), pull_peers,
            ("tar -x", tar_x), "≥ 1.5× podman's throughput", faster_than("podman", 1.5), tar_mb),
        Row("import of the Debian rootfs tar", src, median(b, "import_s"), peers("import_s"), ("tar -x", tar_x),
            "≥ 2× docker's throughput", faster_than("docker", 2.0), tar_mb),
    ]


def _info_bytes(res: Results, key: str) -> int:
    for e in ("docker", "podman"):
        v = ((res.get(e) or {}).get("info") or {}).get(key)
        if v:
            return int(v)
    return 0


def fleet_rows(res: Results, src: str) -> list[Row]:
    rows = [r for r in res.get("rows", []) if isinstance(r, dict) and r.get("hosts") == FLEET_HOSTS]
    out = []
    for forks in sorted({r.get("forks") for r in rows if isinstance(r.get("forks"), int)}):
        def rerun(conn: str, forks: int = forks) -> float | None:
            return next((r.get("rerun_s") for r in rows if r.get("connection") == conn and r.get("forks") == forks),
                        None)
        hosts = res.get("rows", [{}])[0].get("containers_per_host", 5)
        out.append(Row(f"Ansible idempotent re-run, {FLEET_HOSTS} hosts × {hosts} containers, forks {forks}", src,
                       rerun("berth"), {"other": ("ssh", rerun("ssh"))}, ("", None),
                       "berth connection ≤ 0.8× SSH (ControlPersist, pipelining)", at_most("ssh", 0.8)))
    return out


def diff_rows(res: Results, src: str) -> list[Row]:
    btrfs = res.get("btrfs")
    if not isinstance(btrfs, dict):
        return []
    cases = [(case, key) for case in ("small", "bulk") for key in ("changes", "diff")
             if isinstance((btrfs.get(case) or {}).get(f"{key}_native_s"), (int, float))]

    def check(_r: Row) -> tuple[bool, str]:
        if not cases:
            raise TypeError("not measured")
        worst = min((btrfs[c][f"{k}_naive_s"] / btrfs[c][f"{k}_native_s"], f"{c} {k}") for c, k in cases)
        return worst[0] >= 1.0, f"worst: {worst[1]}, native at {worst[0]:.2f}× naive's speed"

    bulk = btrfs.get("bulk") or {}
    return [Row("btrfs native diff against the naive walk (bulk case, layer tar)", src, bulk.get("diff_native_s"),
                {"other": ("naive walk", bulk.get("diff_naive_s"))}, ("", None),
                "native ≥ naive on every case", check)]


def cell(r: Row, column: str) -> str:
    name, v = r.peers.get(column, ("", None))
    if not name:
        return ""
    if v is None:
        return f"{name}: -" if column == "other" else "-"
    text = f"{fmt(v)} ({ratio(r.berth, v):.2f}×)" if r.berth else fmt(v)
    return f"{name}: {text}" if column == "other" else text


def berth_cell(r: Row) -> str:
    if r.berth is None:
        return "not measured"
    return fmt(r.berth) + (f" ({r.mbytes / r.berth:.0f} MB/s)" if r.mbytes else "")


def floor_cell(r: Row) -> str:
    label, v = r.floor
    if not label:
        return ""
    if v is None:
        return f"{label}: -"
    return f"{label}: {fmt(v)}" + (f" ({r.berth / v:.1f}×)" if r.berth else "")


def table(rows: list[Row], quick: set[str]) -> list[str]:
    head = ["phase", "berth", "docker", "podman", "other peer", "floor", "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mark = " (quick)" if r.source in quick else ""
        cells = [r.phase + mark, berth_cell(r), cell(r, "docker"), cell(r, "podman"), cell(r, "other"),
                 floor_cell(r), r.target, r.verdict()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def machine(res: dict[str, Results]) -> str:
    m = next((res[k]["machine"] for k in ("containers", "images", "fleet") if isinstance(res.get(k, {}).get(
        "machine"), dict)), None)
    if m is None:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        m = {"cpus": os.cpu_count(), "mem_gib": round(kib / (1 << 20), 1), "kernel": os.uname().release}
    text = f"{m.get('cpus')} vCPU, {m.get('mem_gib')} GiB, kernel {m.get('kernel')}"
    loads = [f"{k} {res[k]['machine'].get('loadavg_start', '?')} → {res[k]['machine'].get('loadavg_end', '?')}"
             for k in ("containers", "images", "fleet") if isinstance(res.get(k, {}).get("machine"), dict)]
    return text + (f"; load average (1/5/15 min) at start → end: {'; '.join(loads)}" if loads else "")


def render(names: dict[str, str], res: dict[str, Results]) -> str:
    rows: list[Row] = []
    for kind in ("containers", "images"):
        if kind in res:
            rows += engine_rows(kind, res[kind], kind)
    if "fleet" in res:
        rows += fleet_rows(res["fleet"], "fleet")
    if "diff" in res:
        rows += diff_rows(res["diff"], "diff")
    quick = {k for k, p in names.items() if "-quick" in os.path.basename(p)}
    met = sum(r.verdict().startswith("**met") for r in rows)
    graded = sum(bool(r.check) for r in rows)
    out = ["# berth benchmark summary", "",
           "Sources: " + ", ".join(f"`bench/{os.path.basename(names[k])}`" for k in KINDS if k in names) + ".",
           f"Machine: {machine(res)}.", "",
           "Medians. Ratios in brackets are berth / that column (below 1: berth is faster; for the floor, how many "
           "times the floor's time berth takes). Targets are issue 15's. Each engine on its own fresh loop-mounted "
           "ext4 (overlay storage); `other peer` is skopeo (`copy docker://… dir:`, no unpacking) for pull, "
           "SSH for the fleet, the naive walk for btrfs.", ""]
    out += table(rows, quick)
    out += ["", f"{met} of {graded} targets met."]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="results-<kind>-*.json (default: the latest of each kind)")
    ap.add_argument("--out", help="where to write the table (default bench/summary-<date>.md)")
    ap.add_argument("--no-write", action="store_true", help="only print it")
    args = ap.parse_args()
    names = pick(args.files)
    if not names:
        print("summary.py: no results found (make bench runs the benchmarks)", file=sys.stderr)
        return 1
    res = {kind: load(path) for kind, path in names.items()}
    text = render(names, res)
    print(text, end="")
    if not args.no_write:
        stamp = max(NAME.search(os.path.basename(p))["stamp"] for p in names.values())  # type: ignore[index]
        out = args.out or os.path.join(BENCH, f"summary-{stamp}.md")
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
