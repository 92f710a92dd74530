"""Container lifecycle: create, start (conmon + OCI runtime), stop, kill, remove, exec, logs, state.

There is no daemon. A container's exit is recorded by conmon in the exit dir; the next berth
command that looks at the container (ps, inspect, wait, start, rm…) notices it, records the exit
code and whether the kernel OOM-killed it, and releases the runtime state, the cgroup and the
rootfs mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signal_mod
import subprocess
import sys
import time
from typing import TYPE_CHECKING, BinaryIO

from berth.container import cgroups, etchosts, execproc, health, logs, pathres, spec, users
from berth.container.config import ContainerConfig, merge_env
from berth.container.events import Journal
from berth.container.runtime import OCIRuntime, launch_conmon, select
from berth.container.store import Container, ContainerStore
from berth.container.volumes import Volumes
from berth.container.volumestore import VolumeStore
from berth.errors import BerthError, InvalidInput, LayerInUse, NotFound
from berth.image.store import Image, ImageStore
from berth.locks import FileLock
from berth.storage.fsutil import atomic_write
from berth.timefmt import iso_seconds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from berth.container.network import Networks
    from berth.storage.layers import LayerStore

SIGNALS = {s.name[3:]: s.value for s in signal_mod.Signals if s.name.startswith("SIG") and "_" not in s.name}


def parse_signal(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise InvalidInput(f"invalid signal {sig!r} (e.g. TERM, KILL, HUP or a number)")
    return SIGNALS[name]


def _random_name() -> str:
    adjectives = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
                  "nimble", "proud", "quiet", "rapid", "sharp", "tidy", "vivid", "witty", "young", "zesty"]
    nouns = ["anchor", "buoy", "cargo", "dock", "ferry", "harbor", "jetty", "keel", "mast", "pier",
             "quay", "rudder", "sail", "tug", "wharf", "yacht", "hull", "deck", "helm", "berth"]
    rnd = int.from_bytes(os.urandom(4), "big")
    return f"{adjectives[rnd % 20]}_{nouns[(rnd >> 8) % 20]}_{(rnd >> 16) % 1000}"


class ContainerManager:
    """The containers of one root. check_trust(ref) enforces the trust policy on an image about
    to be used (it raises when the policy refuses it)."""

    def __init__(self, store: ContainerStore, images: ImageStore, layers: LayerStore, *, driver_name: str,
                 root: str, runroot: str, lock_dir: str, cgroup_parent: str,
                 check_trust: Callable[[str], None]) -> None:
        self.store = store
        self.images = images
        self.layers = layers
        self.driver_name = driver_name
        self.root, self.runroot, self.lock_dir = root, runroot, lock_dir
        self.check_trust = check_trust
        self.cgroup_parent = cgroup_parent.strip("/")
        self.exit_dir = os.path.join(runroot, "exits")
        self.volumes = Volumes(VolumeStore(store.db), store, root, lock_dir)
        self.socket_dir = os.path.join(runroot, "socks")
        self.events = Journal(root)

    def networks(self) -> Networks:
        from berth.container.network import Networks

        return Networks(self)

    # -- paths -------------------------------------------------------------------------------
    def userdata(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    def state_dir(self, cid: str) -> str:
        return os.path.join(self.runroot, "containers", cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.userdata(cid), "ctr.log")

    def cgroups_path(self, cid: str) -> str:
        return f"/{self.cgroup_parent}/{cid}"

    def _lock(self, cid: str) -> FileLock:
        return FileLock(os.path.join(self.lock_dir, f"ctr-{cid}"))

    # -- create ------------------------------------------------------------------------------
    def create(self, cfg: ContainerConfig, name: str | None = None, trusted: bool = False) -> Container:
        """trusted: skip the trust policy (build steps run on images already checked)."""
        cfg.validate()
        spec.capabilities(cfg)
        if cfg.blkio_weight and not cgroups.blkio_weight_supported():
            raise InvalidInput("--blkio-weight is not supported on this host (the blkio cgroup has no weight file: "
                               "the disks' I/O scheduler is not CFQ/BFQ); leave it out")
        with self.layers.referencing():  # the image may not go before the container is recorded
            return self._create(cfg, name, trusted)

    def _create(self, cfg: ContainerConfig, name: str | None, trusted: bool) -> Container:
        img = self.images.resolve(cfg.image)
        _process_args(cfg, self.images.config(img.id).get("config") or {})  # type: ignore[arg-type]
        if not trusted:
            self.check_trust(cfg.image)
        for m in cfg.volumes:
            if m.type == "bind" and not os.path.exists(m.source):
                raise InvalidInput(f"volume source {m.source} does not exist on the host; create it first")
        network = cfg.bridge_network()
        if network:
            from berth.container.network import DEFAULT_NETWORK

            nets = self.networks()
            if network == DEFAULT_NETWORK:
                nets.ensure_default()
            nets.conf(network)
        cid = os.urandom(32).hex()
        name = name or _random_name()
        with self.volumes.using(cfg) as empty:
            layer = self.layers.create_rw(img.top_layer, dict(cfg.storage_opts), disposable=cfg.auto_remove)
            c = Container(cid, name, img.id, layer.id, cfg, time.time(), "created", 0, None, False, None, None,
                          None, None)
            try:
                if empty:
                    with self.layers.mounted(layer.id) as rootfs:
                        self.volumes.copy_up(cfg, rootfs, empty)
                os.makedirs(self.userdata(cid), mode=0o700, exist_ok=True)
                self.store.insert(c)
            except BaseException:
                self.layers.remove(layer.id)
                shutil.rmtree(self.userdata(cid), ignore_errors=True)
                raise
        self._event("create", c)
        return c

    def _event(self, action: str, c: Container, **attributes: str) -> None:
        self.events.emit(action, c.id, c.name, c.config.image, **attributes)

    def health_check(self, c: Container) -> health.Check | None:
        """The health check the container runs (its own options over its image's HEALTHCHECK)."""
        icfg = self.images.config(c.image_id).get("config") or {}
        return health.effective(c.config, icfg if isinstance(icfg, dict) else {})

    # -- state -------------------------------------------------------------------------------
    def _conmon_alive(self, cid: str) -> bool:
        """Whether the container's monitor lives: its conmon, or the berth running it in the foreground."""
        from berth.container import foreground

        if foreground.owner_alive(self.state_dir(cid)):
            return True
        try:
            with open(os.path.join(self.state_dir(cid), "conmon.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"conmon" in f.read().split(b"\0")[0]
        except OSError:
            return False

    def sync(self, c: Container) -> Container:
        """Notice an exit that happened since the last look, and clean up after it."""
        if c.state != "running":
            return c
        exit_file = os.path.join(self.exit_dir, c.id)
        if not os.path.exists(exit_file) and self._conmon_alive(c.id):
            if c.health is not None and not health.monitor_alive(self, c.id):
                self._revive_monitor(c)
            return c
        with self._lock(c.id):
            c = self.store.get(c.id)
            if c.state != "running":
                return c
            code: int | None = None
            finished = time.time()
            if os.path.exists(exit_file):
                with contextlib.suppress(OSError, ValueError), open(exit_file, encoding="ascii") as f:
                    code = int(f.read().strip())
                finished = os.path.getmtime(exit_file)
            elif self._conmon_alive(c.id):
                return c
            oom = os.path.exists(os.path.join(self.state_dir(c.id), "persist", "oom")) or \
                cgroups.oom_killed(self.cgroups_path(c.id))
            self._release(c)
            self.store.update(c.id, state="exited", exit_code=code if code is not None else 255,
                              finished_at=finished, oom_killed=int(oom), pid=0, paused=0)
            self._event("die", c, exitCode=str(code if code is not None else 255))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(exit_file)
        c = self.store.get(c.id)
        if c.config.auto_remove:
            self.remove(c.id, force=True)
        return c

    def _revive_monitor(self, c: Container) -> None:
        """A health monitor that died (killed, out of memory) while its container runs is started
        again by the next look at the container, as a daemon would never lose it. Only when the
        container's lock is free: whoever holds it (a start, a stop, this very process) decides."""
        lock = self._lock(c.id)
        if not lock.acquire(blocking=False):
            return
        try:
            c = self.store.get(c.id)
            if c.state == "running" and c.health is not None and not c.stopped_by_user and \
                    not health.monitor_alive(self, c.id):
                health.spawn(self, c, revive=True)
        finally:
            lock.release()

    def _release(self, c: Container) -> None:
        """Runtime state, cgroup and rootfs mount of a container that is no longer running."""
        rt = self._runtime_by_name(c.runtime)
        if rt is not None:
            rt.delete(c.id)
        health.stop_monitor(self, c.id)
        cgroups.remove(self.cgroups_path(c.id))
        self._detach_network(c)
        with contextlib.suppress(BerthError):
            self.layers.unmount(c.rw_layer, pin=True)
        shutil.rmtree(self.state_dir(c.id), ignore_errors=True)

    def _runtime_by_name(self, name: str | None) -> OCIRuntime | None:
        if not name:
            return None
        try:
            return select(self.runroot, name)
        except BerthError:
            return None

    def get(self, ref: str) -> Container:
        return self.sync(self.store.resolve(ref))

    def list(self, all_: bool = False) -> list[Container]:
        out = []
        for c in self.store.list():
            with contextlib.suppress(NotFound):
                c = self.sync(c)
                if all_ or c.state == "running":
                    out.append(c)
        return out

    # -- start -------------------------------------------------------------------------------
    def _prepare(self, c: Container, terminal: bool = False) -> tuple[OCIRuntime, str]:
        """Mount the rootfs and write the bundle; returns the runtime and the bundle dir."""
        cfg = c.config
        icfg = self.images.config(c.image_id).get("config") or {}
        assert isinstance(icfg, dict)
        rt = select(self.runroot, cfg.runtime)
        rootfs = self.layers.mount(c.rw_layer, pin=True)
        try:
            args = _process_args(cfg, icfg)
            uid, gid, extra_gids, home = users.resolve(rootfs, cfg.user or icfg.get("User") or None, cfg.group_add)
            env = merge_env([spec.DEFAULT_PATH, f"HOME={home}"], list(icfg.get("Env") or []))
            # on the host's network the host's name, as docker does; otherwise the short ID
            hostname = cfg.hostname or (os.uname().nodename if cfg.network == "host" else c.id[:12])
            # docker sets TERM=xterm for a container with a terminal (the container's -e wins)
            env = merge_env(env, [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if terminal else []) + cfg.env)
            cwd = cfg.workdir or icfg.get("WorkingDir") or "/"
            self._ensure_dir(rootfs, cwd)
            pathres.check_executable(rootfs, args[0], env, cwd)
            netns = None
            network = cfg.bridge_network()
            if network:
                from berth.container.network import parse_port

                nets = self.networks()
                ip = nets.attach(c.id, network, [parse_port(p) for p in cfg.ports], cfg.ip)
                self.store.update(c.id, ip=ip)
                c = c.replace(ip=ip)
                netns = nets.netns_path(c.id)
            etc = self._etc_files(c, hostname)
            host_cfg = cfg.replace(volumes=self.volumes.host_mounts(cfg.volumes))
            config = spec.build(host_cfg, rootfs=rootfs, args=args, env=env, cwd=cwd, uid=uid, gid=gid,
                                additional_gids=extra_gids, hostname=hostname,
                                cgroups_path=self.cgroups_path(c.id), etc_files=etc, terminal=terminal,
                                netns=netns)
            bundle = self.state_dir(c.id)
            os.makedirs(bundle, mode=0o700, exist_ok=True)
            atomic_write(os.path.join(bundle, "config.json"), json.dumps(config, indent=1).encode(), durable=False)
        except BaseException:
            self._detach_network(c)
            self.layers.unmount(c.rw_layer, pin=True)
            raise
        return rt, bundle

    def _detach_network(self, c: Container) -> None:
        network = c.config.bridge_network()
        if not network:
            return
        from berth.container.network import parse_port

        nets = self.networks()
        with contextlib.suppress(BerthError):
            nets.detach(c.id, network, [parse_port(p) for p in c.config.ports], quiet=True)
        if self._exists(c.id):
            self.store.update(c.id, ip=None)
        with contextlib.suppress(BerthError, OSError):
            nets.refresh_hosts(network)

    @staticmethod
    def _ensure_dir(rootfs: str, path: str) -> None:
        """Create the working directory inside the rootfs unless a component is a symlink (then the
        runtime resolves it inside the container)."""
        pathres.mkdirs_in_root(rootfs, path)

    def _etc_files(self, c: Container, hostname: str) -> dict[str, str]:
        ud = self.userdata(c.id)
        hosts = os.path.join(ud, "hosts")
        network = c.config.bridge_network()
        if c.config.network == "host" and os.path.exists("/etc/hosts"):
            with open("/etc/hosts", "rb") as f:
                hosts_data = f.read()
        elif network:
            hosts_data = self.networks().hosts_for(network, c.name, c.ip, hostname)
        else:
            hosts_data = etchosts.content([])
        atomic_write(hosts, hosts_data, durable=False)
        atomic_write(os.path.join(ud, "hostname"), f"{hostname}\n".encode(), durable=False)
        resolv = b""
        with contextlib.suppress(OSError), open("/etc/resolv.conf", "rb") as f:
            resolv = b"\n".join(ln for ln in f.read().splitlines()
                                if not ln.strip().startswith(b"nameserver 127.")) + b"\n"
        atomic_write(os.path.join(ud, "resolv.conf"), resolv, durable=False)
        return {"/etc/hosts": hosts, "/etc/hostname": os.path.join(ud, "hostname"),
                "/etc/resolv.conf": os.path.join(ud, "resolv.conf")}

    def _exit_command(self, cid: str) -> list[str] | None:
        """What conmon runs when the container exits: berth itself, to record the exit and apply
        the restart policy (there is no daemon to do it)."""
        return [sys.executable, "-m", "berth.cli.main", "--root", self.root, "--runroot", self.runroot,
                "container-exited", cid]

    def start(self, ref: str, by_policy: bool = False, restore: str | None = None) -> Container:
        """restore: bring the container back from that CRIU checkpoint directory (berth restore)."""
        c = self.get(ref)
        if c.state == "running":
            return c
        with self._lock(c.id):
            c = self._intend_start(self.store.get(c.id))
            try:
                rt, bundle = self._prepare(c, terminal=c.config.tty)
            except BaseException:
                self.store.update(c.id, state=c.state)
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.exit_dir, c.id))
            if not by_policy:
                self.store.update(c.id, restart_count=0, stopped_by_user=0)
            # every container gets the exit command: its exit releases the mount and cgroup (and
            # removes an --rm one) at once, and a restart policy changed in place counts
            exit_cmd = self._exit_command(c.id)
            try:
                pid = launch_conmon(rt, c.id, c.name, bundle, self.state_dir(c.id), self.exit_dir,
                                    self.log_path(c.id), self.socket_dir, exit_command=exit_cmd,
                                    terminal=c.config.tty, restore=restore)
                if not restore:
                    rt.start(c.id)
            except BaseException as err:
                self._stop_leftovers(c.replace(runtime=rt.name))
                self.store.update(c.id, state="created", error=str(err), runtime=rt.name)
                raise
            self.store.update(c.id, state="running", pid=pid, started_at=time.time(), runtime=rt.name,
                              exit_code=None, finished_at=None, oom_killed=0, error=None, paused=0)
            health.spawn(self, self.store.get(c.id))
        self._event("start", c)
        self._announce(c)
        return self.store.get(c.id)

    # -- interrupted starts -------------------------------------------------------------------
    def _intend_start(self, c: Container) -> Container:
        """Record the intent before anything is acted on: state "starting" and the runtime that
        will be called (the caller holds the container's lock, which a crash drops). Returns the
        container as it was, so that a start that fails cleanly can put its state back."""
        rt = select(self.runroot, c.config.runtime)
        self.store.update(c.id, state="starting", runtime=rt.name)
        return c.replace(runtime=rt.name)

    def _stop_leftovers(self, c: Container) -> None:
        """Stop whatever a start got as far as making: conmon, the container's processes, the
        runtime's state, cgroups, network, rootfs mount and bundle."""
        pid = _read_pid(os.path.join(self.state_dir(c.id), "conmon.pid"))
        if pid and self._conmon_alive(c.id):  # first, so that it runs no exit command
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_mod.SIGKILL)
        rt = self._runtime_by_name(c.runtime)
        if rt is not None:
            rt.kill(c.id, str(signal_mod.SIGKILL.value), all_processes=True)
        cgroups.kill_all(self.cgroups_path(c.id))
        self._release(c)

    def recover(self) -> list[str]:
        """Undo the starts of commands that died in the middle (state "starting", its lock free):
        the container is left as it was before, with nothing of the start behind."""
        out = []
        for cid in self.store.in_state("starting"):
            lock = self._lock(cid)
            if not lock.acquire(blocking=False):
                continue  # still being started
            try:
                c = self.store.get(cid)
                if c.state != "starting":
                    continue
                self._stop_leftovers(c)
                self.store.update(cid, state="exited" if c.started_at else "created", pid=0,
                                  error="berth was killed while starting it")
                out.append(f"container {c.name}: interrupted start undone")
            except NotFound:
                continue
            finally:
                lock.release()
        return out

    # -- stop / kill -------------------------------------------------------------------------
    def _wait_exit(self, c: Container, timeout: float | None) -> Container:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        while True:
            c = self.sync(self.store.get(c.id)) if self._exists(c.id) else c
            if c.state != "running":
                return c
            if deadline is not None and time.monotonic() >= deadline:
                return c
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _exists(self, cid: str) -> bool:
        return self.store.exists(cid)

    def kill(self, ref: str, sig: str | int = "KILL") -> Container:
        c = self.get(ref)
        if c.state != "running":
            raise InvalidInput(f"container {c.name} is not running")
        rt = select(self.runroot, c.runtime)
        if parse_signal(sig) in (signal_mod.SIGKILL, signal_mod.SIGTERM, signal_mod.SIGINT):
            self.store.update(c.id, stopped_by_user=1)
        self._thaw(c)
        self._event("kill", c, signal=str(parse_signal(sig)))
        if not rt.kill(c.id, str(parse_signal(sig))):
            c = self.sync(c)
            if c.state == "running":
                raise BerthError(f"could not signal container {c.name}")
        return c

    def on_exit(self, cid: str) -> None:
        """conmon's exit command: record the exit, then restart if the policy says so."""
        try:
            c = self.sync(self.store.get(cid))
        except NotFound:
            return
        if c.state == "running" or c.stopped_by_user:
            return
        policy, limit = c.config.restart_policy()
        if policy == "no":
            return
        if policy == "on-failure" and (c.exit_code == 0 or (limit is not None and c.restart_count >= limit)):
            return
        time.sleep(min(0.1 * 2 ** min(c.restart_count, 6), 5.0))
        c = self.store.get(cid)
        if c.stopped_by_user or c.state == "running":
            return
        self.store.update(cid, restart_count=c.restart_count + 1)
        self.start(cid, by_policy=True)

    def start_restartable(self) -> list[str]:
        """After a boot: start the containers whose restart policy asks for it."""
        started = []
        for c in self.list(all_=True):
            policy, _limit = c.config.restart_policy()
            wanted = policy == "always" or (policy == "unless-stopped" and not c.stopped_by_user) or \
                (policy == "on-failure" and c.state == "exited" and c.exit_code not in (0, None)
                 and not c.stopped_by_user)
            if wanted and c.state != "running":
                self.start(c.id, by_policy=True)
                started.append(c.name)
        return started

    def update_config(self, ref: str, cfg: ContainerConfig) -> Container:
        """Apply the limits that change in place (memory, cpus, pids, restart policy); the rest of
        the recorded spec is replaced as well, so later comparisons see the new spec."""
        c = self.get(ref)
        if c.state == "running":
            resources: dict[str, object] = {}
            if cfg.memory:
                resources["memory"] = {"limit": cfg.memory, "swap": cfg.memory}
            if cfg.cpus:
                resources["cpu"] = {"quota": int(cfg.cpus * spec.CPU_PERIOD), "period": spec.CPU_PERIOD}
            if cfg.pids_limit:
                resources["pids"] = {"limit": cfg.pids_limit}
            select(self.runroot, c.runtime).update(c.id, resources)
        self.store.update_config(c.id, cfg)
        return self.store.get(c.id)

    def _announce(self, c: Container) -> None:
        """Tell the other members of the container's network about it (their /etc/hosts)."""
        network = c.config.bridge_network()
        if network:
            with contextlib.suppress(BerthError, OSError):
                self.networks().refresh_hosts(network)

    def stop(self, ref: str, timeout: float = 10) -> Container:
        c = self.get(ref)
        self.store.update(c.id, stopped_by_user=1)  # also stops a restart that is on its way
        if c.state != "running":
            return c
        rt = select(self.runroot, c.runtime)
        self._thaw(c)
        self._event("kill", c, signal=str(signal_mod.SIGTERM.value))
        rt.kill(c.id, str(signal_mod.SIGTERM.value))
        c = self._wait_exit(c, timeout)
        if c.state == "running":
            rt.kill(c.id, str(signal_mod.SIGKILL.value), all_processes=True)
            c = self._wait_exit(c, 30)
        if c.state == "running":
            raise BerthError(f"container {c.name} did not stop after SIGKILL")
        self._event("stop", c)
        return c

    def _thaw(self, c: Container) -> None:
        """A paused container is resumed before it is signalled (frozen processes would not act on it)."""
        if c.paused:
            select(self.runroot, c.runtime).resume(c.id)
            self.store.update(c.id, paused=0)

    def wait(self, ref: str) -> int:
        c = self._wait_exit(self.get(ref), None)
        return c.exit_code if c.exit_code is not None else 255

    def remove(self, ref: str, force: bool = False) -> str:
        c = self.get(ref) if self._exists_ref(ref) else self.store.resolve(ref)
        if c.state == "running" and not force:
            raise InvalidInput(f"container {c.name} is running: stop it first or use --force")
        if c.state != "removing":
            self.store.update(c.id, stopped_by_user=1)  # no restart policy may bring it back now
        for _ in range(10):
            if c.state == "running":
                rt = select(self.runroot, c.runtime)
                self._thaw(c)
                rt.kill(c.id, str(signal_mod.SIGKILL.value), all_processes=True)
                c = self._wait_exit(c, 30)
            with self._lock(c.id):
                c = self.store.get(c.id)
                if c.state == "running":
                    continue  # a restart slipped in before the flag was seen: stop it again
                self.store.update(c.id, state="removing")
                break
        with self._lock(c.id):
            self._release(c)
            for s in self.store.snapshots(c.id):
                with contextlib.suppress(NotFound, LayerInUse):
                    self.layers.remove(str(s["layer"]))
            with contextlib.suppress(NotFound, LayerInUse):
                self.layers.remove(c.rw_layer)
            shutil.rmtree(self.userdata(c.id), ignore_errors=True)
            self.volumes.drop_snapshot(c.id)
            self.store.delete(c.id)
        self._event("destroy", c)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.lock_dir, f"ctr-{c.id}"))
        return c.id

    def _exists_ref(self, ref: str) -> bool:
        try:
            self.store.resolve(ref)
            return True
        except NotFound:
            return False

    def prune(self) -> list[str]:
        """Remove every container that is not running (created or exited); returns their names."""
        removed = []
        for c in self.store.list():
            c = self.get(c.id)  # notices an exit that no command has recorded yet
            if c.state != "running":
                self.remove(c.id, force=False)
                removed.append(c.name)
        return removed

    # -- foreground runs ---------------------------------------------------------------------
    def run_attached(self, c: Container, sig_proxy: bool = True) -> int:
        """Start a container and copy its output until it exits; signals are passed on unless
        sig_proxy is off (then a signal ends berth and the container goes on under conmon)."""
        log = self.log_path(c.id)
        start_pos = logs.size(log)
        try:
            c = self.start(c.id)
        except BaseException:
            if c.config.auto_remove:
                self.remove(c.id, force=True)
            raise
        auto_remove = c.config.auto_remove
        code = self._follow_until_exit(c, start_pos, sig_proxy=sig_proxy)
        if auto_remove and self._exists(c.id):
            self.remove(c.id, force=True)
        return code

    def attach(self, ref: str, sig_proxy: bool = True) -> int:
        """Follow a running container's output from now until it exits (docker attach without
        stdin: a detached container's stdin is not kept open); returns its exit code."""
        c = self.get(ref)
        if c.state != "running" or not self._conmon_alive(c.id):
            raise InvalidInput(f"container {c.name} is not running: start it first (berth start -a {c.name})")
        return self._follow_until_exit(c, logs.size(self.log_path(c.id)), sig_proxy)

    def _follow_until_exit(self, c: Container, start_pos: int, sig_proxy: bool) -> int:
        """Copy the container's log from start_pos until it exits, passing signals on when asked."""
        rt = select(self.runroot, c.runtime)
        exit_file = os.path.join(self.exit_dir, c.id)

        from berth.container.foreground import FORWARDED, proxy_signals

        with proxy_signals(lambda signum: rt.kill(c.id, str(signum)), FORWARDED if sig_proxy else []):
            logs.follow(self.log_path(c.id), lambda: os.path.exists(exit_file) or not self._conmon_alive(c.id),
                        start_pos)
        c = self._wait_exit(c, None)
        return c.exit_code if c.exit_code is not None else 255

    def run_foreground(self, c: Container, tty: bool, interactive: bool) -> int:
        """`run -i/-t` and `run --rm`: the runtime runs in the foreground as berth's child, with
        berth's stdin when -i; signals to berth are passed on to the container (docker's
        sig-proxy) and berth waits for its exit. The output is copied into the container's log as
        well, so `berth logs` shows it afterwards (an --rm container's log goes with it); on
        berth's own terminal (-t) the runtime writes to it directly and nothing is kept."""
        from berth.container import foreground

        try:
            with self._lock(c.id):
                c = self._intend_start(self.store.get(c.id))
                try:
                    rt, bundle = self._prepare(c, terminal=tty)
                except BaseException:
                    self.store.update(c.id, state=c.state)
                    raise
                self.store.update(c.id, state="running", started_at=time.time(), runtime=rt.name, pid=0, paused=0)
                health.spawn(self, self.store.get(c.id))
            self._event("start", c)
            self._announce(c)
        except BaseException:
            if c.config.auto_remove:
                self.remove(c.id, force=True)
            raise
        runtime_log = os.path.join(self.state_dir(c.id), "runtime.log")
        code = 255
        try:
            foreground.claim(self.state_dir(c.id))  # another berth's look must not take it for exited
            code = foreground.run(rt.run_attached_argv(c.id, bundle, runtime_log), tty=tty, interactive=interactive,
                                  log_path=self.log_path(c.id), kill=lambda sig: rt.kill(c.id, str(sig)))
            if code != 0 and _runtime_failed(runtime_log):
                code = 125
        finally:
            with self._lock(c.id):
                oom = cgroups.oom_killed(self.cgroups_path(c.id))
                self._release(self.store.get(c.id))
                # the exit code with the state, so that no look ever sees an exit without a code
                self.store.update(c.id, state="exited", exit_code=code, finished_at=time.time(), oom_killed=int(oom))
            self._event("die", c, exitCode=str(code))
            if c.config.auto_remove:
                self.remove(c.id, force=True)
        return code

    def exec(self, ref: str, args: list[str], env: list[str], user: str | None, workdir: str | None,
             tty: bool) -> int:
        with self.exec_command(ref, args, env, user, workdir, tty) as argv:
            return subprocess.call(argv)

    @contextlib.contextmanager
    def exec_command(self, ref: str, args: list[str], env: list[str], user: str | None, workdir: str | None,
                     tty: bool) -> Iterator[list[str]]:
        """The runtime command that runs args in the running container ref, as `exec` does; it is
        valid while the context lasts (it names the process file, see execproc). -u resolves the
        user in the container, supplementary groups and --group-add included, as docker does; without
        it the process runs as the container's own process does."""
        c = self.get(ref)
        if c.state != "running":
            raise InvalidInput(f"container {c.name} is not running")
        rt = select(self.runroot, c.runtime)
        try:
            with open(os.path.join(self.state_dir(c.id), "config.json"), encoding="utf-8") as f:
                proc = json.load(f)["process"]
        except (OSError, ValueError, KeyError):
            proc = {}
        # the container's environment, then the caller's additions (runtimes differ in what exec inherits)
        env = merge_env(list(proc.get("env", [])), env)
        workdir = workdir or proc.get("cwd") or "/"
        own = proc.get("user") or {}
        uid, gid, extra = int(own.get("uid", 0)), int(own.get("gid", 0)), list(own.get("additionalGids") or [])
        rootfs = self.layers.mount(c.rw_layer)
        try:
            if user:
                uid, gid, extra, _home = users.resolve(rootfs, user, c.config.group_add)
            pathres.check_executable(rootfs, args[0], env, workdir)
        finally:
            self.layers.unmount(c.rw_layer)
        process = execproc.process(proc, args, env, workdir, tty, uid, gid, extra)
        with execproc.process_file(self.state_dir(c.id), process) as path:
            yield rt.exec_file_argv(c.id, path)

    # -- file-system views -------------------------------------------------------------------
    def changes(self, ref: str) -> list[tuple[str, str]]:
        c = self.get(ref)
        return self.layers.changes(c.rw_layer)

    def export(self, ref: str, sink: BinaryIO) -> None:
        """The container's whole file system as a tar (docker export)."""
        from berth.storage import differ

        c = self.get(ref)
        with self.layers.mounted(c.rw_layer) as root:
            differ.write_tar(differ.Differ(root, None).plan(), root, sink)

    # -- commit and snapshots ----------------------------------------------------------------
    def commit(self, ref: str, target: str | None, message: str = "", changes: list[str] | None = None,
               author: str = "", snapshot: str | None = None) -> Image:
        """The container's rw layer (or, given snapshot, that snapshot of it) becomes the top layer of
        a new image (natively copied where the driver can, else streamed as a tar through a pipe:
        never a temporary tar on disk)."""
        from berth.image import reference

        if target:
            reference.parse(target)
        with self.layers.referencing():
            return self._commit(ref, target, message, changes or [], author, snapshot)

    def _commit(self, ref: str, target: str | None, message: str, changes: list[str], author: str,
                snapshot: str | None) -> Image:
        from berth.image import changes as changes_mod

        c = self.get(ref)
        source = str(self.store.snapshot(c.id, snapshot)["layer"]) if snapshot else c.rw_layer
        base = self.images.get(c.image_id)
        base_cfg = self.images.config(c.image_id)
        layer = self.layers.commit(source, base.top_layer)
        icfg = dict(base_cfg.get("config") or {})  # type: ignore[call-overload]
        cc = c.config
        if cc.command is not None:
            icfg["Cmd"] = cc.command
        if cc.entrypoint is not None:
            icfg["Entrypoint"] = cc.entrypoint
        if cc.env:
            icfg["Env"] = merge_env(list(icfg.get("Env") or []), cc.env)
        if cc.workdir:
            icfg["WorkingDir"] = cc.workdir
        if cc.user:
            icfg["User"] = cc.user
        icfg = changes_mod.apply(icfg, changes)
        now = iso_seconds(time.time())
        history = list(base_cfg.get("history") or [])  # type: ignore[call-overload]
        entry: dict[str, object] = {"created": now, "created_by": f"berth commit {c.name}"}
        if message:
            entry["comment"] = message
        if author:
            entry["author"] = author
        history.append(entry)
        rootfs = dict(base_cfg["rootfs"])  # type: ignore[call-overload]
        rootfs["diff_ids"] = list(rootfs["diff_ids"]) + [layer.diff_id]
        cfg = dict(base_cfg, created=now, config=icfg, rootfs=rootfs, history=history)
        if author:
            cfg["author"] = author
        size = base.size + layer.size
        return self.images.add(cfg, layer.id, size, [target] if target else [])

    def snapshot_create(self, ref: str, name: str, with_volumes: bool = False) -> dict[str, object]:
        """A copy of the rw layer (with_volumes: and of the container's named volumes, taken while
        it is paused, so that both are of the same moment)."""
        c = self.get(ref)
        vols = sorted({m.source for m in c.config.volumes if m.type == "volume"}) if with_volumes else []
        if not name or "/" in name:
            raise InvalidInput(f"invalid snapshot name {name!r}")
        with contextlib.suppress(NotFound):
            self.store.snapshot(c.id, name)
            raise InvalidInput(f"snapshot {name!r} already exists for container {c.name}")
        rt = select(self.runroot, c.runtime) if c.state == "running" else None
        with self.layers.referencing():  # the new layer is recorded as the snapshot's before any collection
            paused = rt is not None and rt.pause(c.id)
            try:
                layer = self.layers.snapshot(c.rw_layer)
                try:
                    if vols:
                        self.volumes.snapshot(c.id, name, vols)
                except BaseException:
                    self.layers.remove(layer.id)
                    raise
            finally:
                if paused and rt is not None:
                    rt.resume(c.id)
            try:
                self.store.add_snapshot(c.id, name, layer.id, time.time(), vols)
            except BaseException:
                self.layers.remove(layer.id)
                self.volumes.drop_snapshot(c.id, name)
                raise
        return self.store.snapshot(c.id, name)

    def snapshot_list(self, ref: str) -> list[dict[str, object]]:
        c = self.store.resolve(ref)
        return self.store.snapshots(c.id)

    def snapshot_remove(self, ref: str, name: str) -> None:
        c = self.store.resolve(ref)
        snap = self.store.snapshot(c.id, name)
        self.store.remove_snapshot(c.id, name)
        self.layers.remove(str(snap["layer"]))
        self.volumes.drop_snapshot(c.id, name)

    def snapshot_matches(self, ref: str, name: str) -> bool:
        """Whether the container's rw layer holds exactly what the snapshot holds (the naive differ
        over both mounted trees finds nothing), and so do the named volumes the snapshot has, so
        that restoring it would change nothing."""
        from berth.storage import differ

        c = self.get(ref)
        snap = self.store.snapshot(c.id, name)
        with self.layers.mounted(c.rw_layer) as current, self.layers.mounted(str(snap["layer"])) as saved:
            if differ.Differ(current, saved).plan():
                return False
        for vol in list(snap.get("volumes") or []):  # type: ignore[call-overload]
            saved_vol = os.path.join(self.volumes.snapshot_dir(c.id, name), vol)
            if not os.path.isdir(saved_vol) or differ.Differ(self.volumes.path(vol), saved_vol).plan():
                return False
        return True

    def snapshot_restore(self, ref: str, name: str) -> Container:
        """Put the rw layer back exactly as it was (and the named volumes, when the snapshot has
        them); a running container is stopped and restarted."""
        c = self.get(ref)
        snap = self.store.snapshot(c.id, name)
        was_running = c.state == "running"
        if was_running:
            c = self.stop(c.id)
        with self._lock(c.id), self.layers.referencing():
            fresh = self.layers.snapshot(str(snap["layer"]))
            old = c.rw_layer
            self.store.update(c.id, rw_layer=fresh.id)
            self.layers.remove(old)
            self.volumes.restore(c.id, name, list(snap.get("volumes") or []))  # type: ignore[call-overload]
        if was_running:
            return self.start(c.id)
        return self.store.get(c.id)

    def inspect(self, ref: str) -> dict[str, object]:
        """The container in docker's ContainerJSON shape (berth's additions under "Berth")."""
        from berth.container.inspect import container_json

        return container_json(self, self.get(ref))


def _process_args(cfg: ContainerConfig, icfg: dict[str, object]) -> list[str]:
    """The container's argv: entrypoint and command, each the container's own or else the image's
    (an entrypoint of the container's own drops the image's command, as docker does)."""
    entry = cfg.entrypoint if cfg.entrypoint is not None else (icfg.get("Entrypoint") or [])
    if cfg.command is not None:
        cmd = cfg.command
    elif cfg.entrypoint is not None:
        cmd = []
    else:
        cmd = icfg.get("Cmd") or []
    args = [str(x) for x in [*entry, *cmd]]  # type: ignore[misc]
    if not args:
        # docker refuses the container at create ("No command specified"), not at start
        raise InvalidInput("no command specified: give one after the image, or set CMD in the image")
    return args


def _read_pid(path: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _runtime_failed(log: str) -> bool:
    """Whether the runtime itself failed (its log has an error), as opposed to the container."""
    try:
        with open(log, "rb") as f:
            return b'"level":"error"' in f.read()
    except OSError:
        return False
