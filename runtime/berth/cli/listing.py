"""`ps`, `images` and `history` as docker 20.10 prints them: its columns, widths and humanized
times, `--filter`, `--format` templates over docker's field names, and its flags
(ps -a/-q/-l/-n/-s/--no-trunc, images REPO[:TAG]/-a/-q/--digests/--no-trunc, history
-q/--no-trunc/-H)."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from berth.cli import output, render
from berth.cli.parser import bool_value
from berth.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from berth.cli.gotemplate import Context
    from berth.container.store import Container
    from berth.engine import Engine
    from berth.image.store import Image

EngineOpener = Callable[[argparse.Namespace], "Engine"]

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "State": "STATE", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
                  "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_RAW_TABLE = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
# docker ps checks its template itself, with these words; the other lists say "template parsing error: "
PARSE_PREFIX, EXEC_PREFIX = "failed to parse template: ", "failed to execute template: "

PS_FILTERS = ("status", "name", "id", "label", "ancestor", "exited", "before", "since", "network")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
IMAGE_FILTERS = ("dangling", "label", "reference", "before", "since")


# -- docker's humanized values (go-units) ------------------------------------------------------
def human_duration(secs: float) -> str:
    """go-units HumanDuration, which docker's CREATED and STATUS columns use."""
    s = int(secs)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(secs / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(secs / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(secs / 3600) // 24 // 365} years"


def ago(ts: float | None, now: float) -> str:
    return f"{human_duration(now - ts)} ago" if ts else "N/A"


def created_at(ts: float | None) -> str:
    """docker's CreatedAt: Go's time.Time String() in UTC, to the second."""
    import datetime as dt

    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def iso_ts(iso: str | None) -> float | None:
    import datetime as dt

    if not iso:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", iso)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    try:
        t = dt.datetime.fromisoformat(m.group(1) + frac + ("+00:00" if m.group(3) in (None, "Z") else m.group(3)))
    except ValueError:
        return None
    return t.timestamp()


def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def status_text(c: Container, now: float) -> str:
    """docker's STATUS column: "Up 5 minutes", "Exited (0) 2 hours ago", "Created", "Up … (Paused)"."""
    if c.state == "running" and not c.paused:
        health = {"healthy": " (healthy)", "unhealthy": " (unhealthy)", "starting": " (health: starting)"}
        return f"Up {human_duration(now - (c.started_at or now))}" + health.get(str((c.health or {}).get("Status")), "")
    if c.state == "paused" or c.paused:
        return f"Up {human_duration(now - (c.started_at or now))} (Paused)"
    if c.state == "exited":
        code = c.exit_code if c.exit_code is not None else 0
        return f"Exited ({code}) {ago(c.finished_at, now)}" if c.finished_at else f"Exited ({code})"
    return c.state.capitalize()


def ports_text(c: Container, exposed: list[str]) -> str:
    """docker's PORTS (its DisplayablePorts) for a running container on a bridge network: each
    published port as "0.0.0.0:8080->80/tcp"; exposed ports no one publishes, and ports published
    on the same number, grouped into ranges ("80-81/tcp", "0.0.0.0:80->80/tcp"); sorted by the
    container's port. exposed: the image's ExposedPorts keys ("80/tcp")."""
    if c.state not in ("running", "paused") or not c.config.bridge_network():
        return ""
    from berth.container.network import parse_port

    ports: list[tuple[int, str, int, str]] = []  # (private, ip, public, proto) as docker's types.Port
    published = set()
    for spec in c.config.ports:
        p = parse_port(spec)
        private, proto = int(p["containerPort"]), str(p["protocol"])  # type: ignore[call-overload]
        ports.append((private, str(p.get("hostIP") or "0.0.0.0"), int(p["hostPort"]), proto))  # type: ignore[call-overload]
        published.add((private, proto))
    for key in exposed:
        number, _, proto = key.partition("/")
        if number.isdigit() and (int(number), proto or "tcp") not in published:
            ports.append((int(number), "", 0, proto or "tcp"))
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []
    for private, ip, public, proto in sorted(ports):
        key = proto
        if ip:
            if public != private:
                mappings.append(f"{ip}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(key, *group))
            groups[key] = [private, private]
    result.extend(_port_group(key, *group) for key, group in groups.items())
    return ", ".join(result + mappings)


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    span = str(first) if first == last else f"{first}-{last}"
    return f"{ip}:{span}->{span}/{proto}" if ip else f"{span}/{proto}"


def image_shown(c: Container) -> str:
    """The image as the user typed it (docker: `bb`, not `bb:latest`); an ID shortened."""
    ref = c.config.image
    if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", ref):
        return ref.removeprefix("sha256:")[:12]
    return ref


# -- ps ----------------------------------------------------------------------------------------
def add_ps_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-a", "--all", action="store_true", help="also stopped containers")
    sp.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    sp.add_argument("-l", "--latest", action="store_true", help="only the latest created container (of all states)")
    sp.add_argument("-n", "--last", type=int, default=-1, metavar="N",
                    help="only the N last created containers (of all states)")
    sp.add_argument("-s", "--size", action="store_true", help="also the SIZE column (rw layer, and virtual size)")
    sp.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    sp.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="status, name, id, label, ancestor, exited, before, since, network (repeatable)")
    render.add_format(sp, help="table (default), json (berth's inspect of each), a Go template over "
                               + ", ".join(f".{k}" for k in PS_HEADERS) + ", or table TEMPLATE")


def parse_filters(items: list[str], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in allowed:
            raise InvalidInput(f"Invalid filter '{key if sep else item}' (use one of: {', '.join(allowed)})")
        out.setdefault(key, []).append(value)
    return out


def _label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and labels[k] != v):
            return False
    return True


def filter_containers(e: Engine, cs: list[Container], f: dict[str, list[str]]) -> list[Container]:
    for s in f.get("status", []):
        if s not in STATUSES:
            raise InvalidInput(f"Invalid filter 'status={s}' (use one of: {', '.join(STATUSES)})")
    for x in f.get("exited", []):
        if not re.fullmatch(r"-?\d+", x):
            raise InvalidInput(f"Invalid filter 'exited={x}': an exit code is a number")
    ancestors: set[str] = set()
    for ref in f.get("ancestor", []):
        try:
            ancestors |= e.image_and_descendants(ref)
        except NotFound:  # docker: an ancestor that does not exist matches nothing
            continue
    by_ref = {c.id: c for c in cs}

    def created_of(ref: str) -> float:
        return e.containers.get(ref).created

    before = min((created_of(r) for r in f.get("before", [])), default=None)
    since = max((created_of(r) for r in f.get("since", [])), default=None)
    out = []
    for c in by_ref.values():
        if "status" in f and c.state not in f["status"]:
            continue
        if "name" in f and not any(re.search(n, c.name) for n in f["name"]):
            continue
        if "id" in f and not any(c.id.startswith(i) for i in f["id"]):
            continue
        if "label" in f and not _label_match(c.config.labels, f["label"]):
            continue
        if "ancestor" in f and c.image_id not in ancestors and c.config.image not in f["ancestor"]:
            continue
        if "exited" in f and (c.state != "exited" or str(c.exit_code) not in f["exited"]):
            continue
        if "network" in f and c.config.network not in f["network"] and \
                (c.config.bridge_network() or "") not in f["network"]:
            continue
        if before is not None and c.created >= before:
            continue
        if since is not None and c.created <= since:
            continue
        out.append(c)
    return out


def container_context(e: Engine, c: Container, now: float, no_trunc: bool) -> Context:
    from berth.cli.gotemplate import Context

    cmd = " ".join(_shell_quote(x) for x in _command_args(e, c))
    command = cmd if no_trunc else ellipsis(cmd, 20)

    def size() -> str:
        rw, virtual = e.container_size(c.id)
        return f"{output.human_size(rw)} (virtual {output.human_size(virtual)})"

    return Context("*formatter.ContainerContext", {
        "ID": c.id if no_trunc else c.id[:12],
        "Image": image_shown(c),
        "Command": f'"{command}"',
        "CreatedAt": created_at(c.created),
        "RunningFor": ago(c.created, now),
        "Ports": ports_text(c, list(dict(e.image_config(c.image_id).get("ExposedPorts") or {}))),  # type: ignore[call-overload]
        "State": c.state,
        "Status": status_text(c, now),
        "Size": size,
        "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in c.config.labels.items()),
        "Label": lambda name: c.config.labels.get(name, ""),
        "Mounts": ",".join(v.source for v in c.config.volumes if v.source),
        "Networks": c.config.network,
        "LocalVolumes": "0",
    })


def _command_args(e: Engine, c: Container) -> list[str]:
    from berth.container.inspect import command

    entry, cmd = command(c.config, e.image_config(c.image_id))
    return list(entry or []) + list(cmd or [])


def _shell_quote(s: str) -> str:
    """docker shows each argument as Go's strconv.Quote would in a shell: plain when it is plain."""
    if s and re.fullmatch(r"[\w@%+=:,./-]+", s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"


def cmd_ps(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format, PARSE_PREFIX)
    filters = parse_filters(a.filter, PS_FILTERS)
    with open_engine(a) as e:
        # a status filter looks at all containers, exited= only at those listed (docker 20.10)
        everything = a.all or a.latest or a.last >= 0 or "status" in filters
        cs = e.containers.list(all_=everything)
        cs = filter_containers(e, cs, filters)
        cs.sort(key=lambda c: c.created, reverse=True)
        if a.latest:
            cs = cs[:1]
        elif a.last >= 0:
            cs = cs[:a.last]
        if a.quiet:
            for c in cs:
                print(c.id if a.no_trunc else c.id[:12])
            return 0
        if a.format == "json":
            output.print_json([e.containers.inspect(c.id) for c in cs])
            return 0
        now = time.time()
        fmt = a.format if render.is_template(a.format) else PS_TABLE + ("\t{{.Size}}" if a.size else "")
        render.print_items(fmt, [container_context(e, c, now, a.no_trunc) for c in cs], PS_HEADERS,
                           prefix=EXEC_PREFIX)
    return 0


# -- images ------------------------------------------------------------------------------------
def add_images_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]", help="only images of this name")
    sp.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    sp.add_argument("-a", "--all", action="store_true", help="also the intermediate images of builds")
    sp.add_argument("--digests", action="store_true", help="also the DIGEST column (manifest digests)")
    sp.add_argument("--no-trunc", action="store_true", help="full image IDs")
    sp.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="dangling=true|false, label=KEY[=VALUE], reference=PATTERN, before=IMAGE, since=IMAGE")
    render.add_format(sp, help="table (default), json, a Go template over "
                               + ", ".join(f".{k}" for k in IMAGES_HEADERS) + ", or table TEMPLATE")


def _rows(imgs: list[Image]) -> list[tuple[Image, str, str]]:
    rows = []
    for img in imgs:
        for n in img.tags or ["<none>:<none>"]:
            repo, _, tag = n.rpartition(":")
            rows.append((img, repo, tag))
    return rows


def _ref_match(repo: str, tag: str, pattern: str) -> bool:
    """docker's reference filter and `images REPO[:TAG]`: a glob on the name, and on the tag if given."""
    import fnmatch

    p_repo, p_tag = pattern, None
    if ":" in pattern.rsplit("/", 1)[-1]:
        p_repo, _, p_tag = pattern.rpartition(":")
    short = repo.split("/", 1)[1] if repo.startswith("docker.io/") else repo
    if not (fnmatch.fnmatchcase(repo, p_repo) or fnmatch.fnmatchcase(short, p_repo)):
        return False
    return p_tag is None or fnmatch.fnmatchcase(tag, p_tag)


def cmd_images(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format)
    f = parse_filters(a.filter, IMAGE_FILTERS)
    for d in f.get("dangling", []):
        if d.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"Invalid filter 'dangling={d}': use true or false")
    with open_engine(a) as e:
        imgs = e.listed_images(a.all)

        def created(ref: str) -> float:
            return iso_ts(e.image(ref).created) or 0.0

        before = min((created(r) for r in f.get("before", [])), default=None)
        since = max((created(r) for r in f.get("since", [])), default=None)
        labels: dict[str, dict[str, str]] = {}

        def labels_of(img: Image) -> dict[str, str]:
            if img.id not in labels:
                labels[img.id] = e.inspect_image(img.id)["Config"].get("Labels") or {}  # type: ignore[union-attr]
            return labels[img.id]

        rows = []
        for img, repo, tag in _rows(imgs):
            untagged = repo == "<none>"
            if "dangling" in f and untagged != (f["dangling"][-1].lower() in ("true", "1")):
                continue
            if a.reference and (untagged or not _ref_match(repo, tag, a.reference)):
                continue
            if "reference" in f and (untagged or not any(_ref_match(repo, tag, r) for r in f["reference"])):
                continue
            if "label" in f and not _label_match(labels_of(img), f["label"]):
                continue
            t = iso_ts(img.created) or 0.0
            if (before is not None and t >= before) or (since is not None and t <= since):
                continue
            rows.append((img, repo, tag))
        if a.quiet:
            seen = []
            for img, _, _ in rows:
                shown = img.id if a.no_trunc else img.id[7:19]
                if shown not in seen:
                    seen.append(shown)
            print("\n".join(seen)) if seen else None
            return 0
        if a.format == "json":
            output.print_json([{"Id": i.id, "RepoTags": i.tags, "Created": i.created, "Size": i.size}
                               for i in {img.id: img for img, _, _ in rows}.values()])
            return 0
        from berth.cli.gotemplate import Context

        now = time.time()
        digests: dict[str, list[str]] = {}

        def digest(img: Image, repo: str) -> str:
            if img.id not in digests:
                digests[img.id] = list(e.inspect_image(img.id)["RepoDigests"])  # type: ignore[call-overload]
            mine = [d.partition("@")[2] for d in digests[img.id] if d.partition("@")[0] == repo]
            return mine[0] if mine else "<none>"

        items = [Context("*formatter.ImageContext", {
            "ID": img.id if a.no_trunc else img.id[7:19],
            "Repository": repo,
            "Tag": tag,
            "Digest": lambda img=img, repo=repo: digest(img, repo),
            "CreatedSince": ago(iso_ts(img.created), now),
            "CreatedAt": created_at(iso_ts(img.created)),
            "Size": output.human_size(img.size),
            "VirtualSize": output.human_size(img.size),
            "Containers": "N/A",
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
        }) for img, repo, tag in rows]
        fmt = a.format if render.is_template(a.format) else (IMAGES_DIGESTS_TABLE if a.digests else IMAGES_TABLE)
        render.print_items(fmt, items, IMAGES_HEADERS)
    return 0


# -- history -----------------------------------------------------------------------------------


def add_history_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("ref", metavar="IMAGE")
    sp.add_argument("--no-trunc", action="store_true", help="full IDs and CREATED BY")
    sp.add_argument("-q", "--quiet", action="store_true", help="only the IDs")
    sp.add_argument("-H", "--human", type=bool_value, nargs="?", const=True, default=True, metavar="BOOL",
                    help="sizes and dates for people (default true; -H=false: bytes and RFC 3339)")
    render.add_format(sp, help="table (default), json, a Go template over "
                               + ", ".join(f".{k}" for k in HISTORY_HEADERS) + ", or table TEMPLATE")


def cmd_history(a: argparse.Namespace, open_engine: EngineOpener) -> int:
    render.check(a.format)
    with open_engine(a) as e:
        rows = e.history(a.ref)
    if a.format == "json":
        output.print_json(rows)
        return 0
    now = time.time()

    def rid(r: dict[str, object]) -> str:
        i = str(r.get("id", "<missing>"))
        return i[7:19] if i.startswith("sha256:") and not a.no_trunc else i

    if a.quiet:
        for r in rows:
            print(rid(r))
        return 0
    from berth.cli.gotemplate import Context

    items = []
    for r in rows:
        by = str(r["created_by"])
        ts = iso_ts(str(r["created"]) if r["created"] else None)
        size = int(r["size"])  # type: ignore[call-overload]
        items.append(Context("*formatter.historyContext", {
            "ID": rid(r),
            "CreatedSince": ago(ts, now) if a.human else (str(r["created"]) if r["created"] else ""),
            "CreatedAt": str(r["created"] or ""),
            "CreatedBy": by if a.no_trunc else ellipsis(by, 45),
            "Size": output.human_size(size) if a.human else str(size),
            "Comment": str(r["comment"]),
        }))
    fmt = a.format if render.is_template(a.format) else (HISTORY_TABLE if a.human else HISTORY_RAW_TABLE)
    render.print_items(fmt, items, HISTORY_HEADERS)
    return 0
