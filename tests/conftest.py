"""Shared fixtures: temporary berth roots per driver, a loop-mounted btrfs, a busybox rootfs tar.

Everything a fixture mounts or attaches it also removes, by path and device, even when the test
fails. Every helper call has a timeout; waiting is for a condition, never a fixed sleep.

Skips: as root, `make setup` installs everything the suite needs, so a skip is a failure unless
its reason is one of KERNEL_SKIPS (features this kernel lacks; the kernel lane runs those tests
inside a VM, so keep those reasons stable). Without root only tests/unit runs; the rest skips
with the reason, and a run where everything skipped does not pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from berth import config as config_mod
from berth.engine import Engine
from berth.storage import mounts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVERS = ("vfs", "overlay", "btrfs", "devicemapper")
DM_OPTS = {"dm.basesize": "1g"}
# Skips that are legitimate on this kernel (reason prefixes); any other skip fails a root run.
KERNEL_SKIPS = (
    "no device-mapper:",
    "this kernel's XFS has no quota support",
    "this kernel has no aufs",
    "not a pure cgroup v2 host",
    "runs only in the kernel lane",
    "CRIU cannot work on this kernel",
)
NEEDS_ROOT = "needs root (mounts, loop devices, cgroups, containers): run the suite as root"
BERTH_TIMEOUT = 300  # one berth command; pytest-timeout bounds the whole test
SH_TIMEOUT = 120


def sh(*argv: str, check: bool = True, timeout: float = SH_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def wait_for(cond: Callable[[], object], timeout: float = 20, what: str = "condition") -> None:
    """Poll cond until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without root only the unit tests run; everything else skips with the reason."""
    if os.geteuid() == 0:
        return
    unit = os.path.join(REPO, "tests", "unit") + os.sep
    for item in items:
        if not str(item.path).startswith(unit):
            item.add_marker(pytest.mark.skip(reason=NEEDS_ROOT))


def _skip_reason(rep: pytest.TestReport) -> str:
    lr = rep.longrepr
    reason = lr[2] if isinstance(lr, tuple) else str(lr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """As root, a skip whose reason is not a known kernel gap is a failure: make setup installs the rest."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail") and os.geteuid() == 0:
        reason = _skip_reason(rep)
        if not reason.startswith(KERNEL_SKIPS):
            rep.outcome = "failed"
            rep.longrepr = (f"skipped as root, which make setup should prevent: {reason}\n"
                            f"(allowed skips: {', '.join(KERNEL_SKIPS)})")


_OUTCOMES: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _OUTCOMES[report.outcome] = _OUTCOMES.get(report.outcome, 0) + 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run in which nothing passed but something skipped has tested nothing: it does not pass."""
    if exitstatus == 0 and _OUTCOMES["passed"] == 0 and _OUTCOMES["skipped"] > 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def unmount_below(path: str) -> None:
    """Unmount everything mounted at or below path, deepest first."""
    real = os.path.realpath(path)
    for mp in sorted((m for m in mounts.mountpoints() if m == real or m.startswith(real + "/")),
                     key=len, reverse=True):
        sh("umount", mp, check=False)
        if mounts.is_mountpoint(mp):
            sh("umount", "-l", mp, check=False)


def remove_tree(path: str) -> None:
    """Remove a test root, deleting btrfs subvolumes that plain rmtree may refuse."""
    if not os.path.exists(path):
        return
    unmount_below(path)
    try:
        shutil.rmtree(path)
    except OSError:
        for root, dirs, _ in os.walk(path, topdown=False):
            for d in dirs:
                p = os.path.join(root, d)
                if os.lstat(p).st_ino == 256:
                    sh("btrfs", "property", "set", "-ts", p, "ro", "false", check=False)
                    sh("btrfs", "subvolume", "delete", p, check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def session_tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="berth-test-")
    try:
        yield d
    finally:
        remove_networks_below(d)
        remove_tree(d)


def kernel_config_unset(option: str) -> bool:
    """Whether /proc/config.gz says `# option is not set` (False when the kernel does not say)."""
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return any(line.strip() == f"# {option} is not set" for line in f)
    except OSError:
        return False


@contextlib.contextmanager
def loop_fs(session_tmp: str, name: str, mkfs: list[str], size: int, options: str = "",
            mount_skip: tuple[str, str] | None = None) -> Iterator[str]:
    """A fresh file system of `size` bytes on a loop device, mounted at session_tmp/name; unmounted
    and detached afterwards, with any loop devices berth attached below it. mount_skip=(kernel
    option, reason): if the mount fails and the kernel config lacks that option, skip with reason;
    any other failure (mkfs, losetup, mount) is an error."""
    fstype = mkfs[0].split(".")[-1]
    if fstype not in open("/proc/filesystems").read() or not shutil.which(mkfs[0]):
        pytest.skip(f"{fstype} is not available in this kernel or {mkfs[0]} is missing")
    img = os.path.join(session_tmp, f"{name}.img")
    mnt = os.path.join(session_tmp, name)
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(size)
    sh(*mkfs, img)
    dev = sh("losetup", "-f", "--show", img).stdout.strip()
    try:
        mounted = sh("mount", *(["-o", options] if options else []), dev, mnt, check=False)
        if mounted.returncode != 0:
            if mount_skip and kernel_config_unset(mount_skip[0]):
                pytest.skip(mount_skip[1])
            raise AssertionError(f"mount -o {options} {dev} {mnt} failed: {mounted.stderr.strip()}")
        try:
            yield mnt
        finally:
            unmount_below(mnt)
            detach_loops_below(mnt)
            unmount_below(mnt)
    finally:
        sh("losetup", "-d", dev, check=False)


@pytest.fixture(scope="session")
def btrfs_dir(session_tmp: str) -> Iterator[str]:
    """A directory on a fresh loop-mounted btrfs file system."""
    with loop_fs(session_tmp, "btrfs", ["mkfs.btrfs", "-q", "-f"], 4 << 30) as mnt:
        yield mnt


@pytest.fixture(scope="session")
def xfs_dir(session_tmp: str) -> Iterator[str]:
    """A directory on a fresh loop-mounted XFS with reflink=1 (the devicemapper reflink pool)."""
    with loop_fs(session_tmp, "xfs", ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"], 8 << 30) as mnt:
        yield mnt


@pytest.fixture(scope="session")
def xfs_prjquota_dir(session_tmp: str) -> Iterator[str]:
    """A directory on a fresh loop-mounted XFS with project quotas enforced (overlay's size=)."""
    with loop_fs(session_tmp, "xfs-prjquota", ["mkfs.xfs", "-q", "-f"], 1 << 30, options="prjquota",
                 mount_skip=("CONFIG_XFS_QUOTA", "this kernel's XFS has no quota support "
                                                 "(mount -o prjquota fails: CONFIG_XFS_QUOTA is off)")) as mnt:
        yield mnt


def detach_loops_below(path: str) -> None:
    """Detach loop devices whose backing file lies below path (devicemapper's reflink pool)."""
    out = sh("losetup", "-a", check=False).stdout
    for line in out.splitlines():
        dev, _, rest = line.partition(":")
        if f"({path}/" in rest:
            sh("losetup", "-d", dev, check=False)


@pytest.fixture(scope="session")
def busybox_tar(session_tmp: str) -> str:
    out = os.path.join(session_tmp, "busybox.tar")
    subprocess.run([os.path.join(REPO, "scripts", "busybox-rootfs.sh"), out], check=True, timeout=300)
    return out


EngineFactory = Callable[[str], Engine]


@pytest.fixture
def make_engine(request: pytest.FixtureRequest, tmp_path: str) -> Iterator[EngineFactory]:
    """make_engine(driver) -> an Engine on a fresh root for that driver (btrfs on the loop fs)."""
    made: list[tuple[Engine, str]] = []

    def factory(driver: str) -> Engine:
        if driver == "btrfs":
            base = tempfile.mkdtemp(dir=request.getfixturevalue("btrfs_dir"))
        elif driver == "devicemapper":
            base = tempfile.mkdtemp(dir=request.getfixturevalue("xfs_dir"))
        else:
            base = tempfile.mkdtemp(dir=str(tmp_path))
        settings = config_mod.Settings(root=os.path.join(base, "root"), runroot=os.path.join(base, "run"),
                                       driver=driver, driver_source="test", cgroup_parent=CGROUP_PARENT,
                                       storage_opts=dict(DM_OPTS) if driver == "devicemapper" else {})
        e = Engine(settings)
        made.append((e, base))
        return e

    try:
        yield factory
    finally:
        for e, base in made:
            try:
                for c in e.containers.store.list():
                    try:
                        e.containers.remove(c.id, force=True)
                    except Exception:
                        pass
                e.close()
            finally:
                stop_leftovers(e.runroot)
                remove_networks(e.root)
                unmount_below(base)
                detach_loops_below(base)
                remove_tree(base)


CGROUP_PARENT = f"berth-test-{os.getpid()}"


def stop_leftovers(runroot: str) -> None:
    """Kill conmon, container and health monitor processes a failed test left, by the PIDs berth
    recorded."""
    import signal

    cdir = os.path.join(runroot, "containers")
    if not os.path.isdir(cdir):
        return
    for cid in os.listdir(cdir):
        for name in ("pidfile", "conmon.pid", "health.pid"):
            try:
                with open(os.path.join(cdir, cid, name)) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass


def remove_cgroups(parent: str) -> None:
    for ctrl in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", ctrl, parent)
        if os.path.isdir(d):
            for root, dirs, _ in os.walk(d, topdown=False):
                for sub in dirs:
                    try:
                        os.rmdir(os.path.join(root, sub))
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture(scope="session", autouse=True)
def _cgroup_cleanup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    remove_cgroups(CGROUP_PARENT)
    # bridges of the berth roots this session's tests made below its own temporary directory
    # (extra roots are not torn down one by one); session_tmp sweeps its own before removal
    remove_networks_below(str(tmp_path_factory.getbasetemp()))


def remove_networks_below(base: str) -> None:
    """Delete the bridges of every berth root below base (a directory this session created)."""
    for dirpath, dirnames, _files in os.walk(base):
        if dirpath.count(os.sep) - base.count(os.sep) > 6:
            dirnames[:] = []
            continue
        if os.path.basename(dirpath) == "networks" and os.path.exists(os.path.join(dirpath, "..", "berth.db")):
            remove_networks(os.path.dirname(dirpath))
            dirnames[:] = []


@pytest.fixture
def berth_env(tmp_path: str) -> Iterator[dict[str, str]]:
    """Environment for running the berth CLI on a temporary root."""
    env = dict(os.environ)
    env["BERTH_ROOT"] = os.path.join(str(tmp_path), "root")
    env["BERTH_RUNROOT"] = os.path.join(str(tmp_path), "run")
    env["BERTH_CONFIG"] = os.path.join(str(tmp_path), "no-config.yml")
    env["BERTH_CGROUP_PARENT"] = CGROUP_PARENT
    env.pop("BERTH_DRIVER", None)
    try:
        yield env
    finally:
        _teardown_root(env)


def remove_networks(root: str) -> None:
    """Delete the bridges of a test root's networks (interface names are host-global)."""
    import json

    from berth.container import isolation

    ndir = os.path.join(root, "networks")
    if not os.path.isdir(ndir):
        return
    for n in os.listdir(ndir):
        if n.endswith(".conflist"):
            with open(os.path.join(ndir, n)) as f:
                bridge = json.load(f)["plugins"][0]["bridge"]
            isolation.remove(bridge)
            sh("ip", "link", "delete", bridge, check=False)


def _teardown_root(env: dict[str, str]) -> None:
    """Remove every container of a test root through berth, then whatever is left by PID/path."""
    db = os.path.join(env["BERTH_ROOT"], "berth.db")
    if os.path.exists(db):
        ids = berth(env, "ps", "-aq", check=False).stdout.split()
        if ids:
            berth(env, "rm", "-f", *ids, check=False)
        remove_networks(env["BERTH_ROOT"])
    stop_leftovers(env["BERTH_RUNROOT"])
    unmount_below(os.path.dirname(env["BERTH_ROOT"]))
    detach_loops_below(os.path.dirname(env["BERTH_ROOT"]))
    unmount_below(env["BERTH_RUNROOT"])


BERTH = os.path.join(REPO, ".venv", "bin", "berth")


def berth(env: dict[str, str], *args: str, input: bytes | None = None,
          check: bool = True, timeout: float = BERTH_TIMEOUT) -> subprocess.CompletedProcess[str]:
    # bytes in (an archive on stdin must reach berth unchanged, whatever the locale), text out
    raw = subprocess.run([BERTH if os.path.exists(BERTH) else "berth", *args], env=env, input=input,
                         stdin=None if input is not None else subprocess.DEVNULL, capture_output=True,
                         timeout=timeout)
    cp = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="surrogateescape"),
                                     raw.stderr.decode(errors="surrogateescape"))
    if check and cp.returncode != 0:
        raise AssertionError(f"berth {' '.join(args)} failed ({cp.returncode}): {cp.stderr}")
    return cp
