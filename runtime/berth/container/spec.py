"""Generate the OCI runtime config.json for a container."""

from __future__ import annotations

import resource

from berth.container.config import ContainerConfig

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
# In bit order (CAP_CHOWN is bit 0), so that a capability mask reads off by index.
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_DEVICES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1),
                   ("c", 5, 2), ("c", 136, -1), ("c", 10, 229)]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000


def _cap_name(c: str) -> str:
    c = c.upper()
    return c if c.startswith("CAP_") else f"CAP_{c}"


def _bounding_set() -> set[str]:
    """The capabilities this process may hand on: a container cannot get more than its caller has
    (privileged under a sandbox that dropped, say, SYS_RESOURCE gets everything else)."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return set(ALL_CAPS)
    return {c for i, c in enumerate(ALL_CAPS) if mask >> i & 1}


def capabilities(cfg: ContainerConfig) -> list[str]:
    from berth.errors import InvalidInput

    for c in cfg.cap_add + cfg.cap_drop:
        if c.upper() != "ALL" and _cap_name(c) not in ALL_CAPS:
            raise InvalidInput(f"unknown capability {c!r} (e.g. NET_ADMIN, SYS_TIME, or ALL)")
    bounding = _bounding_set()
    if cfg.privileged:
        return [c for c in ALL_CAPS if c in bounding]
    caps = list(DEFAULT_CAPS)
    if any(c.upper() == "ALL" for c in cfg.cap_add):
        caps = [c for c in ALL_CAPS if c in bounding]
    caps += [_cap_name(c) for c in cfg.cap_add if c.upper() != "ALL" and _cap_name(c) not in caps]
    if any(c.upper() == "ALL" for c in cfg.cap_drop):
        caps = [_cap_name(c) for c in cfg.cap_add if c.upper() != "ALL"]
    drop = {_cap_name(c) for c in cfg.cap_drop if c.upper() != "ALL"}
    return [c for c in caps if c not in drop]


# the mount flag each tmpfs option sets or clears: of two options on one flag the later one counts
_TMPFS_FLAG_OF = {"rw": "ro", "ro": "ro", "exec": "noexec", "noexec": "noexec", "suid": "nosuid", "nosuid": "nosuid",
                  "dev": "nodev", "nodev": "nodev", "atime": "noatime", "noatime": "noatime",
                  "diratime": "nodiratime", "nodiratime": "nodiratime", "relatime": "relatime",
                  "strictatime": "strictatime", "sync": "sync", "async": "sync"}
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]


def tmpfs_options(given: list[str]) -> list[str]:
    """A --tmpfs mount's options as docker merges them (MergeTmpfsOptions): noexec, nosuid, nodev
    unless the user says exec, suid or dev; of options setting the same flag or key the last wins.
    No size and no mode by default: the kernel's (half the memory, 1777), as docker."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed(TMPFS_DEFAULTS + given):
        key = _TMPFS_FLAG_OF.get(opt, opt.partition("=")[0])
        if opt == "defaults" or key in seen:
            continue
        seen.add(key)
        out.insert(0, opt)
    return out


def rlimits() -> list[dict[str, object]]:
    """NOFILE within the caller's hard limit (asking for more makes runc fail)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = min(hard, 1_048_576) if hard != resource.RLIM_INFINITY else 1_048_576
    return [{"type": "RLIMIT_NOFILE", "hard": n, "soft": n}]


def build(cfg: ContainerConfig, *, rootfs: str, args: list[str], env: list[str], cwd: str, uid: int, gid: int,
          additional_gids: list[int], hostname: str, cgroups_path: str, etc_files: dict[str, str],
          terminal: bool = False, netns: str | None = None) -> dict[str, object]:
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev"] + ([] if cfg.privileged else ["ro"])},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime"] + ([] if cfg.privileged else ["ro"])},
    ]
    # docker: /etc/hosts, /etc/hostname and /etc/resolv.conf are bind mounts that follow --read-only
    etc_mode = "ro" if cfg.read_only else "rw"
    for dest, src in etc_files.items():
        mounts.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate", etc_mode]})
    for t in cfg.tmpfs:
        dest, _, opts = t.partition(":")
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": tmpfs_options(opts.split(",") if opts else [])})
    for m in cfg.volumes:
        if m.type == "tmpfs":
            mounts.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", *(m.options.split(",") if m.options else ["mode=1777"]),
                                       *(["ro"] if m.readonly else [])]})
            continue
        mounts.append({"destination": m.destination, "type": "bind", "source": m.source,
                       "options": ["rbind", "rprivate", "ro" if m.readonly else "rw"]})
    namespaces = [{"type": t} for t in ("pid", "mount", "ipc", "uts") if not (t == "pid" and cfg.pid == "host")]
    if netns:
        namespaces.append({"type": "network", "path": netns})
    elif cfg.network != "host":
        namespaces.append({"type": "network"})
    resources: dict[str, object] = {}
    if cfg.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        rules: list[dict[str, object]] = [{"allow": False, "access": "rwm"}]
        for kind, major, minor in DEFAULT_DEVICES:
            rule: dict[str, object] = {"allow": True, "type": kind, "major": major, "access": "rwm"}
            if minor >= 0:
                rule["minor"] = minor
            rules.append(rule)
        resources["devices"] = rules
    if cfg.memory:
        resources["memory"] = {"limit": cfg.memory, "swap": cfg.memory}
    if cfg.cpus:
        resources["cpu"] = {"quota": int(cfg.cpus * CPU_PERIOD), "period": CPU_PERIOD}
    if cfg.pids_limit:
        resources["pids"] = {"limit": cfg.pids_limit}
    if cfg.blkio_weight:
        resources["blockIO"] = {"weight": cfg.blkio_weight}
    caps = capabilities(cfg)
    linux: dict[str, object] = {
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": cgroups_path,
    }
    if not cfg.privileged:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    process: dict[str, object] = {
        "terminal": terminal,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": additional_gids} if additional_gids else {})},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits(),
        "noNewPrivileges": not cfg.privileged,
    }
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": cfg.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }
