"""`berth inspect` of a container in docker 20.10's ContainerJSON shape (moby api/types
ContainerJSON, HostConfig, Config, NetworkSettings), so that scripts reading docker's keys work.
Keys docker has for features berth does not have keep docker's empty values (null, "", 0, []);
berth's own additions (the recorded spec, runtime, cgroup path, snapshots) are under "Berth"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth.container import health, spec
from berth.container.config import ContainerConfig, Mount, merge_env
from berth.timefmt import iso_precise

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager
    from berth.container.store import Container

SHM_SIZE = 64 << 20  # spec.build mounts /dev/shm with size=65536k, as docker does


def command(cfg: ContainerConfig, image_config: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
    """(Entrypoint, Cmd) as the container runs them: the container's own, else the image's (an
    entrypoint given on the command line clears the image's CMD, as in docker)."""
    entry = cfg.entrypoint if cfg.entrypoint is not None else (image_config.get("Entrypoint") or None)
    if cfg.command is not None:
        cmd: list[str] | None = cfg.command
    elif cfg.entrypoint is not None:
        cmd = None
    else:
        cmd = image_config.get("Cmd") or None
    return entry, cmd


def port_key(p: dict[str, object]) -> str:
    return f"{p['containerPort']}/{p['protocol']}"


def port_bindings(ports: list[str]) -> dict[str, list[dict[str, str]]]:
    from berth.container.network import parse_port

    out: dict[str, list[dict[str, str]]] = {}
    for spec_ in ports:
        p = parse_port(spec_)
        out.setdefault(port_key(p), []).append({"HostIp": str(p.get("hostIP", "")), "HostPort": str(p["hostPort"])})
    return out


def container_json(m: ContainerManager, c: Container) -> dict[str, object]:
    cfg = c.config
    try:
        icfg: dict[str, Any] = m.images.config(c.image_id).get("config") or {}  # type: ignore[assignment]
    except Exception:  # noqa: BLE001 - an image config that cannot be read leaves the image's part out
        icfg = {}
    entry, cmd = command(cfg, icfg)
    args = list(entry or []) + list(cmd or [])
    ud = m.userdata(c.id)
    restart, retries = cfg.restart_policy()
    running = c.state in ("running", "paused")
    paused = c.state == "paused" or (running and c.paused)
    bridge = cfg.bridge_network()
    bindings = port_bindings(cfg.ports)
    labels = {**(icfg.get("Labels") or {}), **cfg.labels}
    exposed = {**(icfg.get("ExposedPorts") or {}), **{k: {} for k in bindings}}
    config: dict[str, object] = {
        "Hostname": cfg.hostname or c.id[:12],
        "Domainname": "",
        "User": cfg.user or icfg.get("User") or "",
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": cfg.tty,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": merge_env(list(icfg.get("Env") or []), cfg.env) or None,
        "Cmd": cmd,
        "Image": cfg.image,
        "Volumes": icfg.get("Volumes") or None,
        "WorkingDir": cfg.workdir or icfg.get("WorkingDir") or "",
        "Entrypoint": entry,
        "OnBuild": icfg.get("OnBuild") or None,
        "Labels": labels,
    }
    # docker omits these from its JSON when empty, but its templates see them (as null): a
    # script's {{json .Config.ExposedPorts}} must not fail on berth
    config["ExposedPorts"] = exposed or None
    if icfg.get("StopSignal"):
        config["StopSignal"] = icfg["StopSignal"]
    check = health.effective(cfg, icfg)
    if check is not None:
        config["Healthcheck"] = check.docker()
    host_config: dict[str, object] = {
        "Binds": [f"{v.source}:{v.destination}" + (":ro" if v.readonly else "") for v in cfg.volumes
                  if v.type in ("bind", "volume")] or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "k8s-file", "Config": {}},
        "NetworkMode": cfg.network,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": restart, "MaximumRetryCount": retries or 0},
        "AutoRemove": cfg.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "CapAdd": list(cfg.cap_add) or None,
        "CapDrop": list(cfg.cap_drop) or None,
        "CgroupnsMode": "host",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": list(cfg.group_add) or None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": cfg.pid or "",
        "Privileged": cfg.privileged,
        "PublishAllPorts": False,
        "ReadonlyRootfs": cfg.read_only,
        "SecurityOpt": None,
        "UTSMode": "host" if cfg.network == "host" else "",
        "UsernsMode": "",
        "ShmSize": SHM_SIZE,
        "Runtime": c.runtime or cfg.runtime or "",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": 0,
        "Memory": cfg.memory or 0,
        "NanoCpus": round(cfg.cpus * 1e9) if cfg.cpus else 0,
        "CgroupParent": m.cgroup_parent,
        "BlkioWeight": cfg.blkio_weight or 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": None,
        "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None,
        "BlkioDeviceWriteIOps": None,
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": 0,
        "MemorySwap": 0,
        "MemorySwappiness": None,
        "OomKillDisable": False,
        "PidsLimit": cfg.pids_limit if cfg.pids_limit and cfg.pids_limit > 0 else None,
        "Ulimits": None,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": [] if cfg.privileged else list(spec.MASKED_PATHS),
        "ReadonlyPaths": [] if cfg.privileged else list(spec.READONLY_PATHS),
    }
    host_config["Tmpfs"] = {t.partition(":")[0]: t.partition(":")[2] for t in cfg.tmpfs} or None
    return {
        "Id": c.id,
        "Created": iso_precise(c.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": "paused" if paused else c.state,
            "Running": running,
            "Paused": paused,
            "Restarting": False,
            "OOMKilled": c.oom_killed,
            "Dead": False,
            "Pid": c.pid if running else 0,
            "ExitCode": c.exit_code if c.exit_code is not None else 0,
            "Error": c.error or "",
            "StartedAt": iso_precise(c.started_at),
            "FinishedAt": iso_precise(c.finished_at),
            **({"Health": c.health} if c.health is not None else {}),
        },
        "Image": c.image_id,
        "ResolvConfPath": f"{ud}/resolv.conf",
        "HostnamePath": f"{ud}/hostname",
        "HostsPath": f"{ud}/hosts",
        "LogPath": m.log_path(c.id),
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": m.driver_name,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Data": m.layers.metadata(c.rw_layer), "Name": m.driver_name},
        "Mounts": [_mount(m, v) for v in cfg.volumes],
        "Config": config,
        "NetworkSettings": _network_settings(m, c, bridge, bindings if running else {}),
        "Berth": {
            "ImageName": cfg.image,
            "Runtime": c.runtime,
            "CgroupsPath": m.cgroups_path(c.id),
            "RwLayer": c.rw_layer,
            "Snapshots": [s["name"] for s in m.store.snapshots(c.id)],
            "Spec": cfg.to_dict(),
        },
    }


def _mount(m: ContainerManager, v: Mount) -> dict[str, object]:
    """One of docker's MountPoints: a bind, a named volume (with its name and host directory) or a
    tmpfs given with --mount."""
    mode = "ro" if v.readonly else ""
    if v.type == "volume":
        return {"Type": "volume", "Name": v.source, "Source": m.volumes.path(v.source), "Destination": v.destination,
                "Driver": "local", "Mode": mode, "RW": not v.readonly, "Propagation": ""}
    if v.type == "tmpfs":
        return {"Type": "tmpfs", "Source": "", "Destination": v.destination, "Mode": mode, "RW": not v.readonly,
                "Propagation": ""}
    return {"Type": "bind", "Source": v.source, "Destination": v.destination, "Mode": mode, "RW": not v.readonly,
            "Propagation": "rprivate"}


def _network_settings(m: ContainerManager, c: Container, bridge: str | None,
                      ports: dict[str, list[dict[str, str]]]) -> dict[str, object]:
    ip = c.ip or "" if c.state in ("running", "paused") else ""
    prefix, gateway = 0, ""
    if bridge and ip:
        prefix, gateway = _subnet_facts(m, bridge)
    published = {k: [{"HostIp": b["HostIp"] or "0.0.0.0", "HostPort": b["HostPort"]} for b in v]
                 for k, v in ports.items()}
    endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": bridge or "", "EndpointID": "",
                "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": published,
        "SandboxKey": m.networks().netns_path(c.id) if bridge and ip else "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": gateway,
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {bridge or c.config.network: endpoint},
    }


def _subnet_facts(m: ContainerManager, network: str) -> tuple[int, str]:
    """(prefix length, gateway) of a network: the bridge's first address is the gateway."""
    import ipaddress

    from berth.errors import NotFound

    try:
        subnet = ipaddress.IPv4Network(str(m.networks().inspect(network)["subnet"]))
    except (NotFound, ValueError):
        return 0, ""
    return subnet.prefixlen, str(subnet.network_address + 1)
