"""Plan and apply a desired state: every action comes with its reasons, and applying a plan twice
changes nothing the second time. Containers are compared spec to spec (the normalised
ContainerConfig they were created from), never against runtime-normalised values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth.container import options
from berth.container.config import ContainerConfig
from berth.declare.schema import MANAGED_LABEL, Declared, DeclaredVolume, Desired
from berth.errors import BerthError, NotFound
from berth.record import Factory, Record

if TYPE_CHECKING:
    from berth.container.store import Container
    from berth.container.volumestore import Volume
    from berth.engine import Engine


class Action(Record):
    kind: str  # image, volume, create, recreate, update, start, stop, restart, remove, snapshot, remove-volume, healthy
    target: str
    reasons: list[str] = Factory(list)
    detail: Any = None
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        return f"{self.kind} {self.target}: " + "; ".join(self.reasons)


def compare(old: ContainerConfig, new: ContainerConfig) -> tuple[list[str], list[str]]:
    """(reasons that can be applied in place, reasons that need a new container), every field compared."""
    return options.compare(old, new)


def _summary(cfg: ContainerConfig) -> dict[str, Any]:
    """The declared-level view of a spec, for diffs."""
    d = cfg.to_dict()
    d.pop("auto_remove", None)
    return {k: v for k, v in d.items() if v not in (None, [], {}, False)}


def _short(image_id: str | None) -> str:
    return image_id[:19] + "…" if image_id else "(none)"


def plan(engine: Engine, desired: Desired, prune: bool = False) -> list[Action]:
    actions: list[Action] = []
    missing_images: dict[str, str | None] = {}  # ref -> the image ID an earlier action makes (None: unknown)
    for img in desired.images:
        try:
            engine.image(str(img["name"]))
            if img.get("require_signature"):
                _check_signature(engine, str(img["name"]))
        except NotFound:
            src = next(s for s in ("import", "pull", "load", "build") if s in img)
            actions.append(Action("image", str(img["name"]), [f"image {img['name']} is missing: {src} it"], img))
            missing_images[str(img["name"])] = None
    volumes = {v.name: v for v in engine.volumes.list()}
    for dv in desired.volumes:
        if dv.state == "present":
            actions.extend(_plan_volume(dv, volumes.get(dv.name)))
    existing = {c.name: c for c in engine.containers.list(all_=True)}
    for d in desired.containers:
        actions.extend(_plan_container(engine, desired.path, d, existing.get(d.name), missing_images))
    for dv in desired.volumes:
        if dv.state == "absent" and dv.name in volumes:
            # after the containers: one declared absent above may be the volume's last user
            actions.append(Action("remove-volume", dv.name, ["declared absent"],
                                  before={"labels": volumes[dv.name].labels}, after="absent"))
    if prune:
        declared = {d.name for d in desired.containers}
        for c in existing.values():
            if c.config.labels.get(MANAGED_LABEL) == "true" and c.name not in declared:
                actions.append(Action("remove", c.name, ["not declared any more (--prune)"]))
    return actions


def _plan_volume(dv: DeclaredVolume, cur: Volume | None) -> list[Action]:
    after = {"labels": dv.labels}
    if cur is None:
        return [Action("volume", dv.name, [f"volume {dv.name} does not exist"], dv.labels, before="absent",
                       after=after)]
    if cur.labels != dv.labels:
        reasons = options.reasons(options.BY_NAME["labels"], cur.labels, dv.labels)
        return [Action("volume", dv.name, reasons, dv.labels, before={"labels": cur.labels}, after=after)]
    return []


def _want_image(engine: Engine, source: str, d: Declared, missing_images: dict[str, str | None],
                actions: list[Action]) -> str | None:
    """The image ID the container must run (None: not known yet; an earlier action makes it).
    pull: always asks the registry which image the tag names now (manifests only, no layer)."""
    ref = d.config.image
    if ref in missing_images:
        return missing_images[ref]
    if d.pull == "always":
        remote_id, reason = engine.pull_needed(ref)
        if remote_id is None:
            return engine.image(ref).id
        actions.append(Action("image", ref, [reason], {"name": ref, "pull": ref}))
        missing_images[ref] = remote_id
        return remote_id
    try:
        return engine.image(ref).id
    except NotFound:
        if d.pull == "never":
            raise BerthError(f"{source}: container {d.name} uses image {ref}, which neither exists nor is declared "
                             + ("under images" if d.given is None else "(and the task says pull: never)")) from None
        actions.append(Action("image", ref, [f"image {ref} is missing: pull it"], {"name": ref, "pull": ref}))
        missing_images[ref] = None
        return None


def _plan_container(engine: Engine, source: str, d: Declared, cur: Container | None,
                    missing_images: dict[str, str | None]) -> list[Action]:
    actions: list[Action] = []
    name, state = d.name, d.state
    if state == "absent":
        if cur is not None:
            actions.append(Action("remove", name, ["declared absent"], before=_summary(cur.config), after="absent"))
        return actions
    by_name = d.given is not None and "image" not in d.given  # start/stop/... an existing container
    if by_name and cur is None:
        raise BerthError(f"{source}: container {name} does not exist: give image to create it")
    want_image = None if by_name else _want_image(engine, source, d, missing_images, actions)
    running = state in ("running", "healthy")
    if cur is None:
        run = running
        after = dict(_summary(d.config), state=state, image_id=want_image or d.config.image)
        actions.append(Action("create", name, [f"container {name} does not exist"], (d.config, run),
                              before="absent", after=after))
    else:
        fields = options.differing(cur.config, d.config, d.given, d.comparisons)
        in_place, recreate = options.compare(cur.config, d.config, d.given, d.comparisons)
        image_changed = not by_name and d.comparisons.get("image") != "ignore" and (
            want_image is None or cur.image_id != want_image)
        cfg = options.merged(cur.config, d.config, fields + (["image"] if image_changed else []))
        try:
            cfg.validate()
        except BerthError as e:
            raise BerthError(f"{source}: container {name}: {e}") from None
        if image_changed:
            recreate.insert(0, f"image {_short(cur.image_id)} → {_short(want_image) if want_image else cfg.image}")
        if d.recreate:
            recreate.insert(0, "recreate requested")
        run = running or (state == "present" and cur.state == "running")
        before = dict(_summary(cur.config), state=cur.state, image_id=cur.image_id)
        after = dict(_summary(cfg), state="running" if run else "stopped" if state == "stopped" else cur.state,
                     image_id=(want_image or cfg.image) if image_changed else cur.image_id)
        if recreate:
            actions.append(Action("recreate", name, recreate + in_place, (cfg, run), before=before, after=after))
        else:
            if in_place:
                actions.append(Action("update", name, in_place, cfg, before=before, after=after))
            if running and cur.state != "running":
                actions.append(Action("start", name, [f"state {cur.state} → running"],
                                      before={"state": cur.state}, after={"state": "running"}))
            elif running and d.restart:
                actions.append(Action("restart", name, ["restart requested"], before={"state": "running"},
                                      after={"state": "running"}))
            elif state == "stopped" and cur.state == "running":
                actions.append(Action("stop", name, ["state running → stopped"],
                                      before={"state": "running"}, after={"state": "stopped"}))
    if state == "healthy" and (actions or cur is None or (cur.health or {}).get("Status") != "healthy"):
        status = "absent" if cur is None else (cur.health or {}).get("Status") or "no health check"
        actions.append(Action("healthy", name, [f"health {status} → healthy (within {d.healthy_timeout:g}s)"],
                              d.healthy_timeout))
    have = {str(s["name"]) for s in engine.containers.snapshot_list(cur.id)} if cur is not None else set()
    for s in d.snapshots:
        if s not in have:
            actions.append(Action("snapshot", name, [f"snapshot {s} missing"], s))
    return actions


def apply(engine: Engine, actions: list[Action], say: Any = None) -> list[Action]:
    """Carry out a plan in order; returns what was done."""
    m = engine.containers
    done: list[Action] = []
    for a in actions:
        if say:
            say(a.describe())
        if a.kind == "healthy":
            _wait_healthy(engine, a, actions[len(done) + 1:])
        elif a.kind == "image":
            _ensure_image(engine, a.detail)
        elif a.kind == "volume":
            engine.volumes.create(a.target, a.detail)
            engine.volumes.set_labels(a.target, a.detail)
        elif a.kind == "remove-volume":
            engine.volumes.remove(a.target)
        elif a.kind == "create":
            cfg, run = a.detail
            c = m.create(cfg, a.target)
            if run:
                m.start(c.id)
        elif a.kind == "recreate":
            cfg, run = a.detail
            m.remove(a.target, force=True)
            c = m.create(cfg, a.target)
            if run:
                m.start(c.id)
        elif a.kind == "update":
            m.update_config(a.target, a.detail)
        elif a.kind == "start":
            m.start(a.target)
        elif a.kind == "stop":
            m.stop(a.target)
        elif a.kind == "restart":
            m.stop(a.target)
            m.start(a.target)
        elif a.kind == "remove":
            m.remove(a.target, force=True)
        elif a.kind == "snapshot":
            m.snapshot_create(a.target, str(a.detail))
        done.append(a)
    return done


def _wait_healthy(engine: Engine, a: Action, rest: list[Action]) -> None:
    """state: healthy: the container must be healthy before anything after it is done (so a rolling
    change stops at the first container that does not come up healthy, and says which and why)."""
    try:
        engine.wait_container(a.target, "healthy", float(a.detail), fail_unhealthy=True)
    except BerthError as e:
        later = sorted({x.target for x in rest if x.kind != "healthy"})
        left = f"; not done: {', '.join(later)}" if later else ""
        raise BerthError(f"apply stopped at container {a.target}: {e}{left}") from None


def _check_signature(engine: Engine, name: str) -> None:
    """require_signature: the image must pass a trust policy that really asks for a signature."""
    result = engine.verify(name)
    if not any(c.get("requirement") == "signedBy" for c in result["checks"]):  # type: ignore[union-attr]
        raise BerthError(f"image {name} must be signed (require_signature), but the trust policy accepts it "
                         "without a signature: add a signedBy requirement for it")


def _ensure_image(engine: Engine, img: dict[str, Any]) -> None:
    name = str(img["name"])
    _fetch_image(engine, img, name)
    if img.get("require_signature"):
        _check_signature(engine, name)


def _fetch_image(engine: Engine, img: dict[str, Any], name: str) -> None:
    if "import" in img:
        with open(str(img["import"]), "rb") as f:
            engine.import_image(f, name, changes=[str(c) for c in img.get("changes") or []])
    elif "pull" in img:
        engine.pull(str(img["pull"]), bool(img.get("tls_verify", True)), img.get("ca_file"), img.get("authfile"))
        if str(img["pull"]) != name:
            engine.tag(str(img["pull"]), name)
    elif "load" in img:
        engine.load_images(str(img["load"]))
        engine.image(name)
    elif "build" in img:
        import os

        b = img["build"] if isinstance(img["build"], dict) else {"context": img["build"]}
        ctx = str(b["context"])
        engine.build(ctx, str(b.get("dockerfile") or os.path.join(ctx, "Dockerfile")),
                     {str(k): str(v) for k, v in (b.get("args") or {}).items()}, [name])
