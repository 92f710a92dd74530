"""`berth run` read as `docker run` reads it (issue 19 items 9-10): the command line (no
abbreviated flags, exit 125 for a bad one), docker's tmpfs option merging, docker's /etc/hosts."""

from __future__ import annotations

import os
import subprocess

import pytest

from berth.cli.main import build_parser
from berth.container import etchosts, spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.path.join(REPO, ".venv", "bin", "berth")


def berth_cli(tmp_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BERTH_ROOT=os.path.join(tmp_path, "root"), BERTH_DRIVER="vfs",
               BERTH_RUNROOT=os.path.join(tmp_path, "run"), BERTH_CONFIG=os.path.join(tmp_path, "none"))
    return subprocess.run([BERTH if os.path.exists(BERTH) else "berth", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("argv,prog,flag", [
    (["run", "--bogus", "bb", "true"], "berth run", "--bogus"),
    (["create", "--bogus", "bb"], "berth create", "--bogus"),
    (["ps", "--bogus"], "berth ps", "--bogus"),
    # a prefix of --pid and of --pids-limit is neither
    (["run", "--pi", "host", "bb", "true"], "berth run", "--pi"),
    (["run", "--pids", "5", "bb", "true"], "berth run", "--pids"),
])
def test_unknown_flag_is_one_line_and_exit_125(tmp_path: str, argv: list[str], prog: str, flag: str) -> None:
    cp = berth_cli(str(tmp_path), *argv)
    assert cp.returncode == 125, cp
    assert cp.stderr == f"{prog}: error: unknown flag: {flag} (see '{prog} --help')\n"


def test_no_parser_takes_abbreviations() -> None:
    """Every parser and sub-parser, not only run's: a prefix of a long flag is no flag."""
    stack = [build_parser()]
    seen = 0
    while stack:
        p = stack.pop()
        assert p.allow_abbrev is False, p.prog
        seen += 1
        for action in p._actions:
            if action.choices and isinstance(action.choices, dict):
                stack.extend(action.choices.values())
    assert seen > 40
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--pids", "5", "bb"])
    assert exc.value.code == 125


@pytest.mark.parametrize("given,want", [
    ([], ["noexec", "nosuid", "nodev"]),
    (["exec"], ["nosuid", "nodev", "exec"]),
    (["size=1m", "mode=700"], ["noexec", "nosuid", "nodev", "size=1m", "mode=700"]),
    (["suid", "dev", "exec", "size=1m", "size=2m"], ["suid", "dev", "exec", "size=2m"]),
    (["rw", "ro", "noexec"], ["nosuid", "nodev", "ro", "noexec"]),
])
def test_tmpfs_options_merge_as_docker(given: list[str], want: list[str]) -> None:
    assert spec.tmpfs_options(given) == want


def test_hosts_without_network_is_dockers() -> None:
    """docker 20.10 `run --network none bb cat /etc/hosts` (libnetwork etchosts' defaults, no own line)."""
    assert etchosts.content([]) == (b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                                    b"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                                    b"ff02::2\tip6-allrouters\n")


def test_copier_threads_never_take_the_proxied_signals() -> None:
    """A signal the kernel hands to a copier thread waits for the main thread, which sits in
    waitpid until the container ends on its own: the copiers must block every proxied signal, and
    the main thread must keep taking them."""
    import signal
    import threading

    from berth.container import foreground

    seen: list[set[int]] = []
    t = threading.Thread(target=lambda: seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, []))))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    foreground.start_without_signals([t])
    t.join()
    assert set(foreground.FORWARDED) <= seen[0] and signal.SIGWINCH in seen[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
