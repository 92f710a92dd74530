"""BERTH_TRACE prints where one command's time goes (issue 15: measure first)."""

from __future__ import annotations

import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.path.join(REPO, ".venv", "bin", "berth")


def _env(tmp_path: str, trace: str | None) -> dict[str, str]:
    env = dict(os.environ, BERTH_ROOT=os.path.join(tmp_path, "root"), BERTH_RUNROOT=os.path.join(tmp_path, "run"),
               BERTH_CONFIG=os.path.join(tmp_path, "none"), BERTH_DRIVER="vfs")
    env.pop("BERTH_TRACE", None)
    if trace is not None:
        env["BERTH_TRACE"] = trace
    return env


def test_trace_off_prints_nothing(tmp_path: str) -> None:
    cp = subprocess.run([BERTH, "info"], env=_env(str(tmp_path), None), capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "berth trace" not in cp.stderr


def test_trace_breakdown_on_stderr(tmp_path: str) -> None:
    cp = subprocess.run([BERTH, "info"], env=_env(str(tmp_path), "1"), capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stderr.splitlines()
    assert lines[0] == "berth trace: info"
    for heading in ("interpreter start", "imports + parsing", "command", "python (rest)"):
        assert any(line.strip().startswith(heading) for line in lines), (heading, cp.stderr)


def test_trace_json_names_each_external_process(tmp_path: str) -> None:
    """`host check` probes the runtimes: every process it ran is a span with its duration."""
    out = os.path.join(str(tmp_path), "trace.json")
    cp = subprocess.run([BERTH, "host", "check", "--format", "json"], env=_env(str(tmp_path), out),
                        capture_output=True, text=True, timeout=120)
    assert "berth trace" not in cp.stderr
    with open(out, encoding="utf-8") as f:
        record = json.loads(f.readline())
    assert record["argv"] == ["host", "check", "--format", "json"]
    execs = [s for s in record["spans"] if s["kind"] == "exec"]
    assert execs and all(s["ms"] >= 0 and s["name"] for s in execs)
    assert record["totals_ms"]["exec"] <= record["command_ms"]
    assert abs(sum(record["totals_ms"].values()) + record["python_rest_ms"] - record["command_ms"]) < 1.0
