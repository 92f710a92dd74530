"""Bridge networks through the CNI plugins (bridge + host-local IPAM, loopback, portmap).

A network is a CNI config list in ROOT/networks/NAME.conflist. A container on a network gets a
persistent network namespace (bound to a file in the runroot by `unshare --net=FILE`), the chain
is run with ADD before the runtime starts and with DEL when the container stops, and the
namespace file goes with it. Containers on one network find each other through /etc/hosts, which
berth rewrites in place (it is bind-mounted) whenever a member comes or goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import subprocess
from typing import TYPE_CHECKING

from berth import trace
from berth.container import etchosts, isolation
from berth.container.ports import dnat_rules, ports_in_use
from berth.errors import BerthError, InUse, InvalidInput, NotFound
from berth.locks import FileLock
from berth.proc import run
from berth.storage.fsutil import atomic_write

if TYPE_CHECKING:
    from berth.container.manager import ContainerManager

CNI_PATHS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")
DEFAULT_NETWORK = "berth"
DEFAULT_SUBNET = "10.89.0.0/24"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,30}$")
PORT_RE = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>tcp|udp))?$")


def cni_path() -> str:
    for p in CNI_PATHS:
        if os.path.exists(os.path.join(p, "bridge")):
            return p
    raise BerthError("the CNI plugins are not installed (apt-get install containernetworking-plugins)")


def parse_port(spec: str) -> dict[str, object]:
    m = PORT_RE.match(spec)
    if not m:
        raise InvalidInput(f"invalid port mapping {spec!r}: use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    host, ctr = int(m["host"]), int(m["ctr"])
    if not (0 < host < 65536 and 0 < ctr < 65536):
        raise InvalidInput(f"invalid port mapping {spec!r}: ports are 1 to 65535")
    out: dict[str, object] = {"hostPort": host, "containerPort": ctr, "protocol": m["proto"] or "tcp"}
    if m["ip"]:
        out["hostIP"] = m["ip"]
    return out


class Networks:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.root = containers.root
        self.dir = os.path.join(containers.root, "networks")
        self.netns_dir = os.path.join(containers.runroot, "netns")

    # -- networks ----------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        if not NAME_RE.match(name):
            raise InvalidInput(f"invalid network name {name!r}")
        return os.path.join(self.dir, f"{name}.conflist")

    def _lock(self, what: str) -> FileLock:
        return FileLock(os.path.join(self.containers.lock_dir, f"net-{what}"))

    def create(self, name: str, subnet: str | None = None, bridge: str | None = None) -> dict[str, object]:
        """One creator at a time: the name, subnet and bridge checks and the write are one step."""
        self._path(name)
        with self._lock("networks"):
            return self._create(name, subnet, bridge)

    def _create(self, name: str, subnet: str | None, bridge: str | None) -> dict[str, object]:
        path = self._path(name)
        if os.path.exists(path):
            raise InvalidInput(f"network {name} already exists")
        existing = self.list()
        used = {str(n["subnet"]) for n in existing}
        if subnet is None:
            routed = run(["ip", "-4", "route", "show"], check=False).stdout.decode()
            for third in range(89, 255):
                cand = f"10.{third}.0.0/24"
                if cand not in used and cand not in routed:
                    subnet = cand
                    break
        try:
            net = ipaddress.ip_network(subnet or DEFAULT_SUBNET)
        except ValueError:
            raise InvalidInput(f"invalid subnet {subnet!r}: use CIDR notation, e.g. 10.90.0.0/24") from None
        if str(net) in used:
            raise InvalidInput(f"subnet {net} is already used by another berth network")
        bridges = {str(n["bridge"]): str(n["name"]) for n in existing}
        if bridge is None:
            bridge = self._free_bridge(set(bridges))
        elif bridge in bridges:
            raise InvalidInput(f"bridge {bridge} is already used by network {bridges[bridge]}")
        conf = {
            "cniVersion": "0.4.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net)}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": os.path.join(self.dir, "ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }
        os.makedirs(self.dir, exist_ok=True)
        atomic_write(path, json.dumps(conf, indent=2).encode())
        return self.inspect(name)

    def _free_bridge(self, taken: set[str]) -> str:
        """The first berth<tag><N> no network of this root uses and the host has no link of.
        Interface names are global to the host: roots other than the default get their own tag."""
        tag = "" if self.root == "/var/lib/berth" else hashlib.sha256(self.root.encode()).hexdigest()[:6]
        for index in range(10 ** (15 - len("berth") - len(tag))):
            cand = f"berth{tag}{index}"
            if cand not in taken and not os.path.exists(os.path.join("/sys/class/net", cand)):
                return cand
        raise BerthError("no free bridge name for a new network: remove unused networks")

    def ensure_default(self) -> None:
        """The default network, on the first 10.N.0.0/24 (N from 89) the host does not route yet."""
        if os.path.exists(self._path(DEFAULT_NETWORK)):
            return
        cni_path()
        with self._lock("networks"):
            if os.path.exists(self._path(DEFAULT_NETWORK)):
                return  # another command made it while this one waited
            routed = run(["ip", "-4", "route", "show"], check=False).stdout.decode()
            used = {str(n["subnet"]) for n in self.list()}
            for third in range(89, 255):
                cand = f"10.{third}.0.0/24"
                if cand not in used and cand not in routed:
                    self._create(DEFAULT_NETWORK, cand, None)
                    return
        raise BerthError("no free 10.N.0.0/24 subnet for the default network: berth network create one")

    def conf(self, name: str) -> dict[str, object]:
        try:
            with open(self._path(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            raise NotFound(f"no such network: {name} (see 'berth network ls')") from None

    def inspect(self, name: str) -> dict[str, object]:
        conf = self.conf(name)
        bridge = conf["plugins"][0]  # type: ignore[index]
        members = [{"Name": c.name, "Id": c.id[:12], "IP": c.ip} for c in self.containers.store.list()
                   if c.config.bridge_network() == name and c.state == "running"]
        return {"name": name, "subnet": bridge["ipam"]["ranges"][0][0]["subnet"], "bridge": bridge["bridge"],
                "isolated": isolation.available(), "containers": members}

    def list(self) -> list[dict[str, object]]:
        if not os.path.isdir(self.dir):
            return []
        out = []
        for name in self.names():
            with contextlib.suppress(NotFound):  # removed since the directory was read
                out.append(self.inspect(name))
        return out

    def names(self) -> list[str]:
        """Networks by their files; atomic_write's temp files (.tmp-*) are no network names."""
        if not os.path.isdir(self.dir):
            return []
        return sorted(n[: -len(".conflist")] for n in os.listdir(self.dir)
                      if n.endswith(".conflist") and NAME_RE.match(n[: -len(".conflist")]))

    def remove(self, name: str) -> None:
        with self._lock("networks"):  # the bridge goes before its name can be handed out again
            conf = self.conf(name)
            users = [c.name for c in self.containers.store.list() if c.config.bridge_network() == name]
            if users:
                raise InUse(f"network {name} is used by container(s) {', '.join(users)}: remove them first")
            os.unlink(self._path(name))
            bridge = str(conf["plugins"][0]["bridge"])  # type: ignore[index]
            isolation.remove(bridge)
            run(["ip", "link", "delete", bridge], check=False)

    # -- attachments -------------------------------------------------------------------------
    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid[:16])

    def _exec(self, plugin: dict[str, object], conf: dict[str, object], command: str, cid: str, netns: str,
              prev: dict[str, object] | None, runtime_config: dict[str, object], cni_args: str) -> dict[str, object]:
        net = dict(plugin)
        net["name"] = conf["name"]
        net["cniVersion"] = conf["cniVersion"]
        if prev is not None:
            net["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in runtime_config.items() if caps.get(k)}  # type: ignore[union-attr]
        if rc:
            net["runtimeConfig"] = rc
        path = cni_path()
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": path, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if cni_args:
            env["CNI_ARGS"] = cni_args
        with trace.span("exec", f"cni {plugin['type']} {command}"):
            cp = subprocess.run([os.path.join(path, str(plugin["type"]))], input=json.dumps(net).encode(), env=env,
                                capture_output=True, check=False)
        if cp.returncode != 0:
            try:
                msg = json.loads(cp.stdout).get("msg", "")
            except ValueError:
                msg = cp.stderr.decode(errors="replace").strip()
            raise BerthError(f"network {conf['name']}: the {plugin['type']} plugin failed ({command}): {msg}")
        if command == "ADD" and cp.stdout.strip():
            return json.loads(cp.stdout)
        return prev or {}

    def attach(self, cid: str, name: str, ports: list[dict[str, object]], ip: str | None) -> str:
        """Create the container's network namespace and run the CNI chain; returns its IP."""
        conf = self.conf(name)
        os.makedirs(self.netns_dir, exist_ok=True)
        netns = self.netns_path(cid)
        self.detach(cid, name, ports, quiet=True)
        # the check and the taking of the ports are one step: the namespace file marks the taking
        with self._lock("ports"):
            if ports:
                ports_in_use(ports, self._published(cid))
            open(netns, "w").close()
        return self._add(cid, name, conf, netns, ports, ip)

    def _published(self, cid: str) -> list[tuple[str, dict[str, object]]]:
        """(container name, port) of every other container that holds its published ports: one of
        this root with a network namespace (from attach until detach), or a DNAT rule of any root
        (those carry no address: taken as published on every address)."""
        out = []
        ours = set()
        for c in self.containers.store.list():
            ours.add(c.id)
            if c.id != cid and c.config.ports and os.path.exists(self.netns_path(c.id)):
                out.extend((c.name, parse_port(p)) for p in c.config.ports)
        # another root's containers (or leftovers) are known only by the DNAT rules that take the traffic
        out.extend((f"{other[:12]} (not one of this root's)", p) for other, p in dnat_rules()
                   if other not in ours and other != cid)
        return out

    def _add(self, cid: str, name: str, conf: dict[str, object], netns: str, ports: list[dict[str, object]],
             ip: str | None) -> str:
        cni_args = f"IgnoreUnknown=1;IP={ip}" if ip else ""
        try:
            isolation.ensure(str(conf["plugins"][0]["bridge"]))  # type: ignore[index]
            run(["unshare", f"--net={netns}", "true"], what="creating a network namespace")
            lo = {"type": "loopback"}
            self._exec(lo, {"name": conf["name"], "cniVersion": conf["cniVersion"]}, "ADD", cid, netns, None, {}, "")
            prev: dict[str, object] | None = None
            for plugin in conf["plugins"]:  # type: ignore[union-attr]
                prev = self._exec(plugin, conf, "ADD", cid, netns, prev, {"portMappings": ports}, cni_args)
            ips = (prev or {}).get("ips") or []
            if not ips:
                raise BerthError(f"network {name}: no address was assigned")
        except BaseException:
            self.detach(cid, name, ports, quiet=True)
            raise
        return str(ips[0]["address"]).split("/")[0]  # type: ignore[index]

    def detach(self, cid: str, name: str, ports: list[dict[str, object]], quiet: bool = False) -> None:
        netns = self.netns_path(cid)
        try:
            conf = self.conf(name)
        except NotFound:
            conf = None
        if conf is not None:
            for plugin in reversed(conf["plugins"]):  # type: ignore[arg-type]
                try:
                    self._exec(plugin, conf, "DEL", cid, netns if os.path.exists(netns) else "", None,
                               {"portMappings": ports}, "")
                except BerthError:
                    if not quiet:
                        raise
        if os.path.exists(netns):
            run(["umount", netns], check=False)
            try:
                os.unlink(netns)
            except OSError:
                pass

    def hosts_for(self, network: str, own_name: str, own_ip: str | None, hostname: str) -> bytes:
        lines = []
        if own_ip:
            lines.append(f"{own_ip}\t{hostname} {own_name}")
        for c in self.containers.store.list():
            if c.config.bridge_network() == network and c.state == "running" and c.ip and c.name != own_name:
                lines.append(f"{c.ip}\t{c.name}")
        return etchosts.content(lines)

    def refresh_hosts(self, network: str) -> None:
        """Rewrite every running member's /etc/hosts in place (bind mounts pin the inode)."""
        for c in self.containers.store.list():
            if c.config.bridge_network() != network or c.state != "running":
                continue
            path = os.path.join(self.containers.userdata(c.id), "hosts")
            if not os.path.exists(path):
                continue
            data = self.hosts_for(network, c.name, c.ip, c.config.hostname or c.id[:12])
            with open(path, "r+b") as f:
                f.truncate(0)
                f.write(data)
