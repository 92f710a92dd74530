"""Every berth error is one line (issue 18 item 16): a tool's several lines are joined, control
characters from the input are escaped, a refused flag value exits 125 from create as from run (docker's
code for its flag parsing), a root that is a file or a config that is not text is named, and anything unexpected is
one 'internal error' line rather than a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.errors import one_line

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.path.join(REPO, ".venv", "bin", "berth")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(os.environ, BERTH_ROOT=str(tmp_path / "root"), BERTH_DRIVER="vfs", BERTH_RUNROOT=str(tmp_path / "run"),
                BERTH_CONFIG=str(tmp_path / "none"))


def berth(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BERTH, *argv], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_one_line() -> None:
    assert one_line("gpg: no valid OpenPGP data found.\ngpg: Total number processed: 0\n") == \
        "gpg: no valid OpenPGP data found.; gpg: Total number processed: 0"
    assert one_line("no such image: \r0\x1b[2J") == "no such image: \\r0\\x1b[2J"
    assert one_line("café ✓") == "café ✓"


@pytest.mark.parametrize("argv,code,words", [
    (["rmi", "a\rb"], 1, "no such image: a\\rb"),
    (["create", "--runtime", "bogus", "busybox", "true"], 125, "invalid --runtime 'bogus': use one of crun, runc"),
    (["create", "--cpus", "lots", "busybox", "true"], 125, "invalid --cpus"),
    (["create", "--group-add", "a:b", "busybox", "true"], 125, "invalid --group-add"),
    (["create", "--user", "1:\u00b2", "busybox", "true"], 1, "no such image"),  # '²' is no gid (found by fuzzing)
    (["create", "--tmpfs", "/x:uid=\u00b2", "busybox", "true"], 125, "is not an id"),
])
def test_errors_are_one_line_with_the_right_code(env: dict[str, str], argv: list[str], code: int, words: str) -> None:
    cp = berth(env, *argv)
    assert cp.returncode == code, cp
    assert cp.stderr == f"berth: error: {cp.stderr[14:]}" and len(cp.stderr.splitlines()) == 1, cp.stderr
    assert words in cp.stderr, cp.stderr


def test_root_that_is_a_file_and_config_that_is_not_text(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    afile = tmp_path / "file"
    afile.write_text("x")
    cp = berth(env, "--root", str(afile), "images")
    assert cp.returncode == 1 and cp.stderr == f"berth: error: the root {afile} is not a directory: give --root a " \
                                               "directory (new or berth's)\n", cp
    cfg = tmp_path / "config.yml"
    cfg.write_bytes(b"\xff\xfe\x00binary")
    cp = berth(env, "--config", str(cfg), "images")
    assert cp.returncode == 1 and cp.stderr == f"berth: error: {cfg}: not UTF-8 text; fix the file or pass --config\n"
    cfg.write_text("?\n")  # a YAML key of null (found by test_fuzz_config_files)
    cp = berth(env, "--config", str(cfg), "images")
    assert cp.returncode == 1 and cp.stderr.startswith(f"berth: error: {cfg}: unknown setting(s) None;"), cp
