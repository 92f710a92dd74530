"""`berth inspect` of an image in docker 20.10's ImageInspect shape (moby api/types ImageInspect),
with berth's own additions (layers, history, signatures) under "Berth"."""

from __future__ import annotations

from typing import Any

# the keys of docker's container Config (api/types/container.Config) an image config shows
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
               "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels")
_FALSE = ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce")
_EMPTY = ("Hostname", "Domainname", "User", "Image", "WorkingDir")


def docker_config(oci: dict[str, Any] | None) -> dict[str, Any]:
    """An OCI image config's "config" as docker shows it: every key of docker's Config, with the
    image's values, the others empty; keys docker adds only when set (ExposedPorts, StopSignal,
    Healthcheck, Shell, ArgsEscaped) are kept when the image has them."""
    oci = oci or {}
    out: dict[str, Any] = {}
    for k in CONFIG_KEYS:
        if k in _FALSE:
            out[k] = bool(oci.get(k, False))
        elif k in _EMPTY:
            out[k] = oci.get(k) or ""
        else:
            out[k] = oci.get(k) or None
    for k in ("ExposedPorts", "StopSignal", "Healthcheck", "Shell", "ArgsEscaped"):
        if oci.get(k):
            out[k] = oci[k]
    return out


def image_json(image_id: str, tags: list[str], size: int, cfg: dict[str, Any], driver: str,
               graph_data: dict[str, str], repo_digests: list[str], berth: dict[str, object]) -> dict[str, object]:
    history = cfg.get("history") or []
    comment = str(history[-1].get("comment", "")) if history else ""
    created = cfg.get("created") or "0001-01-01T00:00:00Z"
    return {
        "Id": image_id,
        "RepoTags": tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": created,
        "Container": cfg.get("container", ""),
        "ContainerConfig": docker_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": docker_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": graph_data, "Name": driver},
        "RootFS": {"Type": (cfg.get("rootfs") or {}).get("type", "layers"),
                   "Layers": list((cfg.get("rootfs") or {}).get("diff_ids", []))},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "Berth": berth,
    }
