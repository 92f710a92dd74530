"""Where berth keeps things and with which driver: defaults < config file < BERTH_* < flags."""

from __future__ import annotations

import os
import re

from berth.errors import InvalidInput
from berth.record import Factory, Record

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_RUNROOT = "/run/berth"
DEFAULT_CONFIG = "/etc/berth/config.yml"
CONFIG_KEYS = {"root", "runroot", "driver", "storage_opts", "cgroup_parent", "policy", "sigstore",
               "default_registry", "insecure_registries", "auth_file"}
REGISTRY_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
AUTH_FILE = "auth.json"  # berth login's credentials, next to the config file


class Settings(Record):
    root: str = DEFAULT_ROOT
    runroot: str = DEFAULT_RUNROOT
    driver: str | None = None
    storage_opts: dict[str, str] = Factory(dict)
    driver_source: str = "auto"
    cgroup_parent: str = "berth"
    policy: str | None = None
    sigstore: str | None = None
    default_registry: str | None = None  # where a reference without a registry host is pulled from
    insecure_registries: list[str] = Factory(list)  # HOST[:PORT]s spoken to over plain http
    auth_file: str = os.path.join(os.path.dirname(DEFAULT_CONFIG), AUTH_FILE)


def parse_storage_opts(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise InvalidInput(f"storage option {item!r} is not KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def _registry_settings(s: Settings, data: dict[str, object], path: str) -> None:
    """default_registry (HOST[:PORT]), insecure_registries (a list of them) and auth_file."""
    default = data.get("default_registry")
    if default is not None and (not isinstance(default, str) or not REGISTRY_HOST_RE.match(default)):
        raise InvalidInput(f"{path}: default_registry must be a registry HOST[:PORT], not {default!r}")
    s.default_registry = default or None
    insecure = data.get("insecure_registries") or []
    if not isinstance(insecure, list) or not all(isinstance(h, str) and REGISTRY_HOST_RE.match(h) for h in insecure):
        raise InvalidInput(f"{path}: insecure_registries must be a list of registry HOST[:PORT]s")
    s.insecure_registries = list(insecure)
    if data.get("auth_file"):
        s.auth_file = os.path.join(os.path.dirname(os.path.abspath(path)), str(data["auth_file"]))


def load(config_path: str | None = None, root: str | None = None, runroot: str | None = None,
         driver: str | None = None, storage_opts: list[str] | None = None) -> Settings:
    s = Settings()
    path = config_path or os.environ.get("BERTH_CONFIG") or DEFAULT_CONFIG
    s.auth_file = os.path.join(os.path.dirname(os.path.abspath(path)), AUTH_FILE)
    if os.path.exists(path):
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except UnicodeDecodeError:
            raise InvalidInput(f"{path}: not UTF-8 text; fix the file or pass --config") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise InvalidInput(f"{path}{where}: not valid YAML; fix the file or pass --config") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: expected a mapping of settings ({', '.join(sorted(CONFIG_KEYS))})")
        unknown = set(data) - CONFIG_KEYS
        if unknown:
            raise InvalidInput(f"{path}: unknown setting(s) {', '.join(sorted(map(str, unknown)))}; "
                               f"allowed: {', '.join(sorted(CONFIG_KEYS))}")
        s.root = str(data.get("root", s.root))
        s.runroot = str(data.get("runroot", s.runroot))
        if data.get("driver"):
            s.driver, s.driver_source = str(data["driver"]), f"set in {path}"
        opts = data.get("storage_opts") or {}
        if not isinstance(opts, dict):
            raise InvalidInput(f"{path}: storage_opts must be a mapping of KEY: VALUE")
        s.storage_opts = {str(k): str(v) for k, v in opts.items()}
        s.cgroup_parent = str(data.get("cgroup_parent", s.cgroup_parent))
        s.policy = str(data["policy"]) if data.get("policy") else None
        s.sigstore = str(data["sigstore"]) if data.get("sigstore") else None
        _registry_settings(s, data, path)
    elif config_path:
        raise InvalidInput(f"config file {config_path} does not exist")
    env = os.environ
    s.root = env.get("BERTH_ROOT") or s.root
    s.runroot = env.get("BERTH_RUNROOT") or s.runroot
    s.cgroup_parent = env.get("BERTH_CGROUP_PARENT") or s.cgroup_parent
    s.policy = env.get("BERTH_POLICY") or s.policy
    s.sigstore = env.get("BERTH_SIGSTORE") or s.sigstore
    if not s.cgroup_parent.strip("/") or ".." in s.cgroup_parent.split("/"):
        raise InvalidInput(f"invalid cgroup parent {s.cgroup_parent!r}: use a relative path such as berth")
    if env.get("BERTH_DRIVER"):
        s.driver, s.driver_source = env["BERTH_DRIVER"], "set by BERTH_DRIVER"
    if root:
        s.root = root
    if runroot:
        s.runroot = runroot
    if driver:
        s.driver, s.driver_source = driver, "set by --driver"
    if storage_opts:
        s.storage_opts.update(parse_storage_opts(storage_opts))
    s.root = os.path.abspath(s.root)
    s.runroot = os.path.abspath(s.runroot)
    for what, d in (("root", s.root), ("runroot", s.runroot)):
        if os.path.exists(d) and not os.path.isdir(d):
            raise InvalidInput(f"the {what} {d} is not a directory: give --{what} a directory (new or berth's)")
    return s
