"""bench/summary.py: which results it reads, and the verdict it gives each of issue 15's targets
(from made-up results files: no benchmark runs and nothing is timed here)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from types import ModuleType

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "bench", "summary.py")


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_summary", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_summary"] = mod
    spec.loader.exec_module(mod)
    return mod


def m(median: float) -> dict[str, float]:
    return {"median": median}


CONTAINERS = {
    "machine": {"cpus": 2, "mem_gib": 23.5, "kernel": "6.1.0-test", "loadavg_start": "1.00 1.00 1.00",
                "loadavg_end": "2.00 1.50 1.20"},
    "berth": {"run_s": m(0.070), "lc_per_container_s": m(0.100), "diff_s": m(0.100), "commit_s": m(1.0)},
    "docker": {"metrics": {"run_s": m(0.300), "lc_per_container_s": m(0.300), "diff_s": m(0.400),
                           "commit_s": m(2.0)}},
    "podman": {"metrics": {"run_s": m(0.250), "lc_per_container_s": m(0.150), "diff_s": m(0.100),
                           "commit_s": m(4.0)}},
    "floor": {"metrics": {"floor_runc_run_s": m(0.020), "floor_changes_find_s": m(0.005),
                          "floor_changes_tar_sha256_s": m(1.2)}},
}
IMAGES = {
    "save_tar_bytes": 100_000_000, "deb_tar_bytes": 100_000_000,
    "berth": {"load_s": m(1.0), "save_s": m(0.5), "pull_s": m(1.0), "import_s": m(1.0)},
    "docker": {"metrics": {"load_s": m(2.0), "save_s": m(1.0), "pull_s": m(2.0), "import_s": m(2.5)}},
    "podman": {"metrics": {"load_s": m(2.0), "save_s": m(1.0), "pull_s": m(1.2), "import_s": m(3.0)}},
    "floor": {"metrics": {"floor_tar_x_s": m(0.5), "floor_tar_sha256_pipe_s": m(0.5),
                          "floor_skopeo_copy_dir_s": m(0.6)}},
}
FLEET = {"rows": [
    {"hosts": 10, "containers_per_host": 5, "connection": "berth", "forks": 5, "rerun_s": 10.0},
    {"hosts": 10, "containers_per_host": 5, "connection": "ssh", "forks": 5, "rerun_s": 15.0},
    {"hosts": 10, "containers_per_host": 5, "connection": "berth", "forks": 10, "rerun_s": 13.0},
    {"hosts": 10, "containers_per_host": 5, "connection": "ssh", "forks": 10, "rerun_s": 15.0},
    {"hosts": 3, "containers_per_host": 5, "connection": "berth", "forks": 3, "rerun_s": 1.0},
]}


def write(d: str, name: str, data: object) -> str:
    path = os.path.join(d, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def verdicts(summary: ModuleType, names: dict[str, str]) -> dict[str, str]:
    res = {k: summary.load(p) for k, p in names.items()}
    text = summary.render(names, res)
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    return {r[0].lstrip("| "): r[-1].rstrip(" |") for r in rows}


def test_each_target_is_graded_from_the_figures(summary: ModuleType, tmp_path: str) -> None:
    d = str(tmp_path)
    names = {"containers": write(d, "results-containers-20261202.json", CONTAINERS),
             "images": write(d, "results-images-20261202.json", IMAGES),
             "fleet": write(d, "results-fleet-20261202.json", FLEET)}
    v = verdicts(summary, names)
    got = {phase.split(" (")[0].split(",")[0]: text.split(" (")[0] for phase, text in v.items()}
    assert got == {
        "`run --rm --network none busybox true`": "**met**",  # 50 ms over the floor, 0.23x docker
        "create + start + wait + rm": "not met",             # 0.67x podman
        "diff": "not met",                                   # 1.0x podman
        "commit of that container": "not met",            # 0.5x docker
        "load of the Debian docker-archive": "not met",      # 100 MB/s against the floor's 200
        "save of the Debian image": "**met**",               # 200 MB/s against 200
        "pull of the Debian image from a local registry": "not met",  # 1.2x podman's throughput
        "import of the Debian rootfs tar": "**met**",        # 2.5x docker's throughput
        "Ansible idempotent re-run": "not met",              # the forks 10 row: 0.87x ssh
    }
    fleet = {p: t for p, t in v.items() if p.startswith("Ansible")}
    assert [t.split(" (")[0] for t in fleet.values()] == ["**met**", "not met"]
    assert "0.67× ssh" in next(iter(fleet.values()))
    assert "50 ms over the floor, 0.23× docker" in v["`run --rm --network none busybox true`"]


def test_missing_figures_read_not_measured(summary: ModuleType, tmp_path: str) -> None:
    old = {k: v for k, v in IMAGES.items() if k != "deb_tar_bytes"}
    old["berth"] = {"load_s": m(1.0), "save_s": m(0.5)}
    old["floor"] = {"metrics": {"floor_tar_x_s": m(0.5), "floor_tar_sha256_pipe_s": m(0.5),
                                "floor_tar_x_MBps": m(200.0), "floor_tar_sha256_pipe_MBps": m(200.0)}}
    names = {"images": write(str(tmp_path), "results-images-20261201.json", old)}
    v = verdicts(summary, names)
    assert v["pull of the Debian image from a local registry"] == "not measured"
    assert v["import of the Debian rootfs tar"] == "not measured"
    assert v["save of the Debian image"].startswith("**met**")


def test_newest_date_wins_and_a_full_run_beats_a_quick_one(summary: ModuleType, tmp_path: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(tmp_path)
    monkeypatch.setattr(summary, "BENCH", d)
    for name in ("results-images-20261130.json", "results-images-20261201-quick.json",
                 "results-containers-20261201.json", "results-containers-20261201-quick.json"):
        write(d, name, {})
    assert os.path.basename(summary.latest("images")) == "results-images-20261201-quick.json"
    assert os.path.basename(summary.latest("containers")) == "results-containers-20261201.json"
    assert summary.latest("fleet") is None


def test_cli_prints_the_table_and_writes_it(tmp_path: str) -> None:
    d = str(tmp_path)
    src = write(d, "results-containers-20261202-quick.json", CONTAINERS)
    out = os.path.join(d, "summary.md")
    cp = subprocess.run([sys.executable, SCRIPT, "--out", out, src], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    with open(out, encoding="utf-8") as f:
        written = f.read()
    assert written == cp.stdout
    assert "| `run --rm --network none busybox true` (quick) | 70 ms |" in written
    assert "2 vCPU, 23.5 GiB, kernel 6.1.0-test" in written
    assert "1.00 1.00 1.00 → 2.00 1.50 1.20" in written


def test_cli_refuses_a_file_that_is_not_a_results_file(tmp_path: str) -> None:
    bad = write(str(tmp_path), "whatever.json", {})
    cp = subprocess.run([sys.executable, SCRIPT, "--no-write", bad], capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0
    assert "Traceback" not in cp.stderr and "not a results-<kind>" in cp.stderr
