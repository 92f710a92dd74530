"""Printing for the CLI: tables like docker's, JSON on request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth.host.checks import Check


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def human_size(n: int, binary: bool = False) -> str:
    """docker's sizes: decimal units with 3 significant digits (images, system df), or binary
    ones with 4 (stats' memory and I/O)."""
    base, digits = (1024, 4) if binary else (1000, 3)
    units = ("B", "KiB", "MiB", "GiB", "TiB") if binary else ("B", "kB", "MB", "GB", "TB")
    size = float(n)
    for unit in units:
        if size < base or unit == units[-1]:
            return f"{size:.{digits}g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= base
    return f"{n}B"


def since(iso: str | None) -> str:
    import datetime as dt

    if not iso:
        return "N/A"
    try:
        t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    secs = (dt.datetime.now(dt.UTC) - t).total_seconds()
    for unit, n in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                    ("hour", 3600), ("minute", 60)):
        if secs >= n:
            k = int(secs // n)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "Less than a minute ago"


def since_ts(ts: float | None) -> str:
    import datetime as dt

    if not ts:
        return "N/A"
    return since(dt.datetime.fromtimestamp(ts, dt.UTC).isoformat())


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fmt = "   ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*headers).rstrip())
    for r in rows:
        print(fmt.format(*r).rstrip())


def print_checks(checks: list[Check]) -> None:
    for c in checks:
        status = "pass" if c.ok else ("FAIL" if c.required else "warn")
        line = f"[{status}] {c.name}: {c.detail}"
        if not c.ok and c.fix:
            line += f" -- fix: {c.fix}"
        print(line)


def print_info(info: dict[str, object]) -> None:
    print(f"Root:             {info['root']}")
    print(f"Run root:         {info['runroot']}")
    print(f"Storage driver:   {info['driver']} ({info['driver_reason']})")
    for k, v in info["driver_status"].items():  # type: ignore[union-attr]
        print(f"  {k}: {v}")
    print("Drivers:")
    for name, d in info["drivers"].items():  # type: ignore[union-attr]
        print(f"  {name:<13} {'yes' if d['supported'] else 'no ':<4} {d['reason']}")
    print(f"Kernel:           {info['kernel']}")
    print(f"Backing fs:       {info['backing_fs']} (d_type: {'yes' if info['d_type'] else 'no'})")
    print(f"Filesystems:      {', '.join(info['filesystems'])}")  # type: ignore[arg-type]
    ov = info["overlay"]
    print(f"Overlay:          present={ov.get('present')} multiple_lowers={ov.get('multiple_lowers')} "  # type: ignore[union-attr]
          f"native_diff={'yes' if not ov.get('native_diff') else 'no: ' + str(ov.get('native_diff'))} "  # type: ignore[union-attr]
          f"userxattr={ov.get('userxattr')} module={ov.get('module_defaults')}")  # type: ignore[union-attr]
    print(f"Btrfs:            {info['btrfs']}")
    print(f"Device mapper:    {info['devicemapper']}")
    print(f"Aufs:             {info['aufs']}")
    cg = info["cgroups"]
    print(f"Cgroups:          v{info['cgroup_version']} controllers: {', '.join(cg['controllers'])}")  # type: ignore[index]
    print(f"Namespaces:       {', '.join(info['namespaces'])}")  # type: ignore[arg-type]
    print("Runtimes:")
    for r in info["runtimes"]:  # type: ignore[union-attr]
        state = "works" if r["works"] else "does not work"
        print(f"  {r['name']:<6} {r['path'] or '-'} {r['version']} -- {state}: {r['reason']}")
    cm = info["conmon"]
    print(f"Conmon:           {cm['path'] or 'not installed'} {cm['version']}")  # type: ignore[index]
    print(f"Images:           {info['images']}")
    print(f"Layers:           {info['layers']}")
