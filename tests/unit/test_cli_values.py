"""Container option values the runtime or the kernel would refuse are refused first, in one line,
on every face (issue 18 item 16): `run` exits 125 (never argparse's 2, never the runtime's raw
text), and a declaration names its key instead of raising a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.container import options
from berth.declare import schema
from berth.errors import InvalidInput

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.path.join(REPO, ".venv", "bin", "berth")


@pytest.fixture
def cli_env(tmp_path: str) -> dict[str, str]:
    """A root on the vfs driver: opening it mounts nothing; the values fail before any image is read."""
    env = dict(os.environ, BERTH_ROOT=os.path.join(str(tmp_path), "root"), BERTH_DRIVER="vfs",
               BERTH_RUNROOT=os.path.join(str(tmp_path), "run"), BERTH_CONFIG=os.path.join(str(tmp_path), "none"))
    return env


@pytest.mark.parametrize("flags,flag,why", [
    (["-m", "99999999999g"], "--memory", "largest limit"),
    (["-u", "99999999999"], "--user", "ids are 0 to"),
    (["-u", "app:99999999999"], "--user", "ids are 0 to"),
    (["--pids-limit", "-5"], "--pids-limit", "-1 (unlimited) or 1 to"),
    (["--pids-limit", "abc"], "--pids-limit", "an integer"),
    (["--cpus", "lots"], "--cpus", "a number"),
    (["--cpus", "nan"], "--cpus", "finite"),
    (["--hostname", "h" * 300], "--hostname", "at most 64"),
    (["--hostname", "a b"], "--hostname", "letters, digits"),
    (["--tmpfs", "/x:size=abc"], "--tmpfs", "size=abc"),
    (["--tmpfs", "/x:mode=999"], "--tmpfs", "not octal"),
    (["--tmpfs", "/x:bogus"], "--tmpfs", "unknown option"),
])
def test_run_refuses_values_the_runtime_would(cli_env: dict[str, str], flags: list[str], flag: str,
                                             why: str) -> None:
    cp = subprocess.run([BERTH if os.path.exists(BERTH) else "berth", "run", "--rm", *flags, "busybox:bb", "true"],
                        env=cli_env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 125, cp
    assert cp.stderr.startswith(f"berth: error: invalid {flag}") and why in cp.stderr, cp.stderr
    assert len(cp.stderr.splitlines()) == 1 and "Traceback" not in cp.stderr


@pytest.mark.parametrize("flags", [
    ["-m", "64m", "--pids-limit", "-1", "-u", "1000:1000", "--hostname", "h" * 64, "--cpus", "0.5"],
    ["--tmpfs", "/t:rw,noexec,nosuid,size=64m,mode=1777,uid=1,gid=2,nr_inodes=4k", "--tmpfs", "/u:size=50%"],
    ["-u", "nobody:nogroup", "--hostname", "web-1.example"],
])
def test_values_the_runtime_takes_still_pass(flags: list[str]) -> None:
    from berth.cli.main import build_parser

    cfg = options.config_from_cli(build_parser("run").parse_args(["run", *flags, "busybox", "true"]))
    cfg.validate()


@pytest.mark.parametrize("item,key,why", [
    ({"pids_limit": "abc"}, "pids_limit", "an integer"),
    ({"cpus": "lots"}, "cpus", "a number"),
    ({"pids_limit": True}, "pids_limit", "an integer"),
    ({"memory": "99999999999g"}, "memory", "largest limit"),
    ({"hostname": "h" * 300}, "hostname", "at most 64"),
    ({"user": "99999999999"}, "user", "ids are 0 to"),
    ({"tmpfs": ["/x:size=abc"]}, "tmpfs", "size=abc"),
])
def test_declarations_refuse_them_naming_the_key(item: dict[str, object], key: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as err:
        schema.from_dict({"containers": [dict(name="c", image="i", **item)]}, "src")
    assert key in str(err.value) and "\n" not in str(err.value)

