#!/usr/bin/env python3
"""Charts (PNG) from recorded benchmark results; runs no benchmark, so they can be re-made at will.

    python bench/charts.py [--out DIR] [RESULTS.json ...]

Without files, the latest bench/results-<kind>-<YYYYMMDD>[-quick].json of each kind is used, as
bench/summary.py picks them (the newest date; on the same date a full run over a --quick one, whose
chart says so). Files name their kind: results-<kind>-*.json. Writes:
  chart-peers.png   berth vs docker vs podman per phase (containers + images results), floor marked
  chart-fleet.png   fleet converge time by hosts and connection (fleet results)
  chart-diff.png    native vs naive diff by driver (diff results)
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib
from summary import Results, load, median, pick

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
ENGINES = (("berth", "#2a7ab0"), ("docker", "#8c8c8c"), ("podman", "#c27c2c"))
# phase -> (title, metric, floor metric, floor label, source kind)
PHASES = (
    ("run --rm busybox /bin/true", "run_s", "floor_runc_run_s", "runc run", "containers"),
    ("create+start+wait+rm, per container", "lc_per_container_s", "floor_runc_run_s", "runc run", "containers"),
    ("commit (5000 x 1 KiB + 200 MiB written)", "commit_s", "floor_changes_tar_sha256_s", "tar | sha256sum",
     "containers"),
    ("diff of that container", "diff_s", "floor_changes_find_s", "find", "containers"),
    ("save the Debian image (167 MB tar)", "save_s", "floor_tar_sha256_pipe_s", "tar | sha256sum", "images"),
    ("load it into an empty store", "load_s", "floor_tar_x_s", "tar -x", "images"),
    ("pull it from a local registry", "pull_s", "floor_tar_x_s", "tar -x", "images"),
    ("import the Debian rootfs tar", "import_s", "floor_tar_x_s", "tar -x", "images"),
)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def peers_chart(res: dict[str, Results], names: dict[str, str], out: str) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for ax, (title, metric, floor_metric, floor_label, kind) in zip(axes.flat, PHASES, strict=True):
        data = res.get(kind, {})
        floor = median(data.get("floor"), floor_metric)
        if floor is None and floor_metric == "floor_runc_run_s":
            floor = median(res.get("images", {}).get("floor"), floor_metric)  # runs before issue 20 kept it there
        values = [(engine, colour, median(data.get(engine), metric)) for engine, colour in ENGINES]
        xs = range(len(values))
        bars = ax.bar(xs, [v or 0 for _, _, v in values], color=[c for _, c, _ in values], width=0.6)
        top = max([v or 0 for _, _, v in values] + [floor or 0]) or 1.0
        for bar, (_, _, v) in zip(bars, values, strict=True):
            text = fmt(v) if v else "not measured"
            ax.text(bar.get_x() + bar.get_width() / 2, (v or 0) + top * 0.02, text, ha="center", va="bottom",
                    fontsize=9)
        if floor:
            ax.axhline(floor, color="#b22222", linestyle="--", linewidth=1.2)
        note = f"- - floor ({floor_label}): {fmt(floor)}" if floor else "no floor recorded"
        ax.text(0.02, 0.98, note, transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#b22222")
        ax.set_xticks(list(xs), [e for e, _, _ in values])
        ax.set_ylim(0, top * 1.22)
        ax.set_ylabel("seconds (median)")
        ax.set_title(title, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    sources = ", ".join(os.path.basename(names[k]) for k in ("containers", "images") if k in names)
    quick = " (quick runs: few repetitions)" if "-quick" in sources else ""
    fig.suptitle(f"berth vs docker 20.10 vs podman 4.3: median wall time per phase, lower is better{quick}\n"
                 f"same machine, fresh loop ext4 each, overlay storage; {sources}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def fleet_chart(data: Results, name: str, out: str) -> None:
    rows = [r for r in data.get("rows", []) if isinstance(r, dict)]
    if not rows:
        raise SystemExit(f"charts.py: {name}: no rows")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    series = (("berth", False, "berth connection, default forks", "#2a7ab0", "-"),
              ("berth", True, "berth connection, forks = hosts", "#2a7ab0", ":"),  # default forks: 5
              ("ssh", False, "ssh, default forks", "#8c8c8c", "-"),
              ("ssh", True, "ssh, forks = hosts", "#8c8c8c", ":"))
    for ax, key, title in zip(axes, ("first_s", "rerun_s"), ("first converge", "re-run (nothing to change)"),
                              strict=True):
        for conn, per_host, label, colour, style in series:
            pts = sorted((r["hosts"], r[key]) for r in rows
                         if r.get("connection") == conn and (r.get("forks") == r.get("hosts")) == per_host)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=colour, label=label)
        ax.set_xlabel("hosts (system containers), 5 containers each")
        ax.set_xticks(sorted({r["hosts"] for r in rows}))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("seconds for the whole fleet (median)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Fleet converge time by hosts and connection ({data.get('cpus', '?')} CPUs); "
                 f"{os.path.basename(name)}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def diff_chart(data: Results, name: str, out: str) -> None:
    drivers = [d for d in data if d != "params" and isinstance(data[d], dict)]
    params = data.get("params") or {}
    base = params.get("base_files", "?")
    workloads = (("small", f"100 files changed on a base of {base} files"),
                 ("bulk", f"{params.get('small', '?')} x 1 KiB + one {params.get('big_mib', '?')} MiB file written"))
    bars = (("changes_naive_s", "change list, naive walk", "#8c8c8c"),
            ("changes_native_s", "change list, native", "#2a7ab0"),
            ("diff_naive_s", "layer tar, naive walk", "#c9c9c9"),
            ("diff_native_s", "layer tar, native", "#7fb3d5"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.2
    for ax, (wl, title) in zip(axes, workloads, strict=True):
        for i, (key, label, colour) in enumerate(bars):
            xs, ys = [], []
            for j, d in enumerate(drivers):
                v = (data[d].get(wl) or {}).get(key)
                if isinstance(v, (int, float)) and v > 0:
                    xs.append(j + (i - 1.5) * width)
                    ys.append(v)
            ax.bar(xs, ys, width, color=colour, label=label)
            for x, y in zip(xs, ys, strict=True):
                ax.text(x, y * 1.08, fmt(y), ha="center", va="bottom", fontsize=7, rotation=90)
        for j, d in enumerate(drivers):
            if not (data[d].get(wl) or {}).get("native_available"):
                for x in (j - 0.5 * width, j + 1.5 * width):
                    ax.text(x, 0.02, "none", ha="center", va="bottom", fontsize=7, rotation=90,
                            transform=ax.get_xaxis_transform(), color="#555555")
        ax.set_yscale("log")
        ax.set_xticks(range(len(drivers)), drivers)
        ax.set_ylabel("seconds (median, log scale)")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(top=ax.get_ylim()[1] * 4)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Native vs naive diff by storage driver (vfs has no native diff: \"none\")\n"
                 f"{os.path.basename(name)}", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="results-<kind>-*.json (default: the latest of each kind)")
    ap.add_argument("--out", default=BENCH, help="directory for the PNGs (default: bench/)")
    args = ap.parse_args()
    names = pick(args.files, "charts.py")
    res = {kind: load(path, "charts.py") for kind, path in names.items()}
    os.makedirs(args.out, exist_ok=True)
    written = []
    if "containers" in res or "images" in res:
        written.append(os.path.join(args.out, "chart-peers.png"))
        peers_chart(res, names, written[-1])
    if "fleet" in res:
        written.append(os.path.join(args.out, "chart-fleet.png"))
        fleet_chart(res["fleet"], names["fleet"], written[-1])
    if "diff" in res:
        written.append(os.path.join(args.out, "chart-diff.png"))
        diff_chart(res["diff"], names["diff"], written[-1])
    if not written:
        print("charts.py: no results found", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
