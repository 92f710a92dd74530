"""`berth version`, `berth --version`, `berth info` / `system info` and `system df`, with docker's
shapes for `--format` templates (docker 20.10's `version` and `info` JSON; berth has no daemon,
so "Server" describes the engine library and runtimes this command uses)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.cli import output, render

if TYPE_CHECKING:
    from berth.engine import Engine

EngineOpener = Callable[[argparse.Namespace], "Engine"]
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
        "s390x": "s390x"}


def berth_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("berth")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line() -> str:
    """`berth --version`, in docker's `Docker version X, build Y` form."""
    return f"berth version {berth_version()}, python {platform.python_version()}"


def version_data(runtimes: list[dict[str, Any]] | None = None) -> dict[str, object]:
    v = berth_version()
    arch = ARCH.get(platform.machine(), platform.machine())
    common = {"Version": v, "ApiVersion": "", "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
              "Os": sys.platform, "Arch": arch, "BuildTime": ""}
    components: list[dict[str, object]] = [{"Name": "Engine", "Version": v, "Details": {
        "Os": sys.platform, "Arch": arch, "KernelVersion": platform.release(),
        "PythonVersion": platform.python_version()}}]
    for r in runtimes or []:
        if r.get("path"):
            components.append({"Name": r["name"], "Version": str(r.get("version") or "").split("\n")[0],
                               "Details": {"Path": r["path"], "Works": str(bool(r.get("works"))).lower()}})
    return {
        "Client": {"Platform": {"Name": "berth"}, **common, "DefaultAPIVersion": "", "Context": "default",
                   "Experimental": False},
        "Server": {"Platform": {"Name": "berth"}, "Components": components, **common, "MinAPIVersion": "",
                   "KernelVersion": platform.release()},
    }


def cmd_version(a: argparse.Namespace) -> int:
    from berth import config as config_mod
    from berth.host.runtimes import probe_runtimes

    render.check(a.format)
    # the runtimes' probe is remembered in the run root (a trial container only on the first call)
    runroot = config_mod.load(a.config, a.root, a.runroot, a.driver, a.storage_opt).runroot
    data = version_data([r.to_dict() for r in probe_runtimes(runroot if os.path.isdir(runroot) else None)])
    if a.format == "json":
        output.print_json(data)
    elif render.is_template(a.format):
        render.print_items(a.format, [data])
    else:
        client, server = data["Client"], data["Server"]
        assert isinstance(client, dict) and isinstance(server, dict)
        print("Client:")
        print(f" Version:           {client['Version']}")
        print(f" Python version:    {platform.python_version()}")
        print(f" OS/Arch:           {client['Os']}/{client['Arch']}")
        print("\nServer: none (berth runs containers without a daemon); the engine and the runtimes it uses:")
        for comp in server["Components"]:
            print(f" {comp['Name']}:\n  Version:          {comp['Version']}")
    return 0


def _meminfo_total() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_release() -> tuple[str, str]:
    vals: dict[str, str] = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                vals[k] = v.strip('"')
    except OSError:
        pass
    return vals.get("PRETTY_NAME", "Linux"), vals.get("VERSION_ID", "")


def _read_flag(path: str) -> bool:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def docker_info(info: dict[str, Any], containers: list[str]) -> dict[str, object]:
    """berth's info in docker 20.10's `docker info` shape (berth's own under "Berth");
    containers: the state of each container."""
    from berth.timefmt import iso_precise

    controllers = set((info.get("cgroups") or {}).get("controllers") or []) | \
        set((info.get("cgroups") or {}).get("unified_controllers") or [])
    runtimes = info.get("runtimes") or []
    working = [r for r in runtimes if r.get("works")]
    os_name, os_version = _os_release()
    status = info.get("driver_status") or {}
    return {
        "ID": "",
        "Containers": len(containers),
        "ContainersRunning": containers.count("running"),
        "ContainersPaused": containers.count("paused"),
        "ContainersStopped": len([s for s in containers if s not in ("running", "paused")]),
        "Images": info.get("images", 0),
        "Driver": info.get("driver", ""),
        "DriverStatus": [[str(k), str(v)] for k, v in status.items()],
        "Plugins": {"Volume": [], "Network": ["bridge", "host", "null"], "Authorization": None, "Log": ["k8s-file"]},
        "MemoryLimit": "memory" in controllers,
        "SwapLimit": "memory" in controllers,
        "KernelMemory": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": "cpu" in controllers,
        "CpuCfsQuota": "cpu" in controllers,
        "CPUShares": "cpu" in controllers,
        "CPUSet": "cpuset" in controllers,
        "PidsLimit": "pids" in controllers,
        "IPv4Forwarding": _read_flag("/proc/sys/net/ipv4/ip_forward"),
        "BridgeNfIptables": _read_flag("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": _read_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "Debug": bool(os.environ.get("BERTH_DEBUG")),
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": "memory" in controllers,
        "NGoroutines": 0,
        "SystemTime": iso_precise(time.time()),
        "LoggingDriver": "k8s-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": str(info.get("cgroup_version", "")).split(" ")[0],
        "NEventsListener": 0,
        "KernelVersion": info.get("kernel", platform.release()),
        "OperatingSystem": os_name,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "",
        "RegistryConfig": None,
        "NCPU": os.cpu_count() or 0,
        "MemTotal": _meminfo_total(),
        "GenericResources": None,
        "DockerRootDir": info.get("root", ""),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": berth_version(),
        "Runtimes": {r["name"]: {"path": r["path"]} for r in runtimes if r.get("path")},
        "DefaultRuntime": working[0]["name"] if working else "",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False, "Error": "",
                  "RemoteManagers": None},
        # containers run under conmon, not under a daemon: they outlive every berth command
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [],
        "Warnings": None,
        "Berth": info,
    }


def add_info_format(sp: argparse.ArgumentParser) -> None:
    render.add_format(sp, short=True, help="table (default: berth's report), json (berth's report as JSON), or a Go "
                                           "template over docker's info shape ('{{.Driver}}', '{{.NCPU}}'; "
                                           "berth's report is .Berth)")


def cmd_info(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format)
    with open_engine(a) as e:
        info = e.info()
        states = [c.state for c in e.containers.list(all_=True)] if render.is_template(a.format) else []
    if a.format == "json":
        output.print_json(info)
    elif render.is_template(a.format):
        render.print_items(a.format, [docker_info(info, states)])
    else:
        output.print_info(info)
    return 0


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def df_rows(rows: list[dict[str, Any]]) -> list[Any]:
    from berth.cli.gotemplate import Context

    out = []
    for r in rows:
        size, back = int(r["Size"]), int(r["Reclaimable"])
        share = f" ({back * 100 // size}%)" if size else ""
        out.append(Context("*formatter.diskUsageImagesContext", {
            "Type": "Local Volumes" if r["Type"] == "Volumes" else r["Type"],  # docker's word
            "TotalCount": str(r["Total"]), "Active": str(r["Active"]),
            "Size": output.human_size(size), "Reclaimable": output.human_size(back) + share}))
    return out


def cmd_system_df(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format)
    with open_engine(a) as e:
        rows = e.disk_usage()
    if a.format == "json":
        output.print_json(rows)
        return 0
    fmt = a.format if render.is_template(a.format) else \
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    render.print_items(fmt, df_rows(rows), DF_HEADERS)
    return 0
