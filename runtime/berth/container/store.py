"""Container records in the metadata database."""

from __future__ import annotations

import json
import re
from typing import Any

from berth.container.config import ContainerConfig
from berth.db import Database
from berth.errors import InvalidInput, NotFound
from berth.record import Record

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
STATES = ("creating", "created", "starting", "running", "exited", "removing")


class Container(Record):
    id: str
    name: str
    image_id: str
    rw_layer: str
    config: ContainerConfig
    created: float
    state: str
    pid: int
    exit_code: int | None
    oom_killed: bool
    started_at: float | None
    finished_at: float | None
    runtime: str | None
    error: str | None
    restart_count: int = 0
    stopped_by_user: bool = False
    ip: str | None = None
    health: dict[str, Any] | None = None  # State.Health as docker shows it; None without a health check
    paused: bool = False


def _row(r: object) -> Container:
    d = dict(r)  # type: ignore[call-overload]
    return Container(d["id"], d["name"], d["image_id"], d["rw_layer"],
                     ContainerConfig.from_dict(json.loads(d["config"])), d["created"], d["state"], d["pid"],
                     d["exit_code"], bool(d["oom_killed"]), d["started_at"], d["finished_at"], d["runtime"],
                     d["error"], int(d.get("restart_count") or 0), bool(d.get("stopped_by_user")), d.get("ip"),
                     json.loads(d["health"]) if d.get("health") else None, bool(d.get("paused")))


def _snapshot(r: object) -> dict[str, object]:
    d = dict(r)  # type: ignore[call-overload]
    d["volumes"] = json.loads(d.get("volumes") or "[]")
    return d


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, c: Container) -> None:
        if not NAME_RE.match(c.name):
            raise InvalidInput(f"invalid container name {c.name!r}: use letters, digits, '_', '.', '-'")
        with self.db.write() as w:
            if w.execute("SELECT 1 FROM containers WHERE name = ?", (c.name,)).fetchone():
                raise InvalidInput(f"the container name {c.name!r} is already in use; remove that container "
                                   "or choose another name")
            w.execute("INSERT INTO containers(id, name, image_id, rw_layer, config, created, state, runtime) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (c.id, c.name, c.image_id, c.rw_layer, json.dumps(c.config.to_dict(), sort_keys=True),
                       c.created, c.state, c.runtime))

    def update(self, cid: str, **fields: object) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.db.write() as w:
            w.execute(f"UPDATE containers SET {cols} WHERE id = ?", (*fields.values(), cid))

    def set_health(self, cid: str, health: dict[str, Any] | None) -> None:
        """Record the container's health (State.Health), or forget it (None)."""
        self.update(cid, health=json.dumps(health, sort_keys=True) if health is not None else None)

    def rename(self, cid: str, name: str) -> None:
        if not NAME_RE.match(name):
            raise InvalidInput(f"invalid container name {name!r}: use letters, digits, '_', '.', '-'")
        with self.db.write() as w:
            if w.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone():
                raise InvalidInput(f"the container name {name!r} is already in use; remove that container "
                                   "or choose another name")
            w.execute("UPDATE containers SET name = ? WHERE id = ?", (name, cid))

    def update_config(self, cid: str, cfg: ContainerConfig) -> None:
        """Replace the recorded spec (limits changed in place)."""
        self.update(cid, config=json.dumps(cfg.to_dict(), sort_keys=True))

    def exists(self, cid: str) -> bool:
        return self.db.one("SELECT 1 FROM containers WHERE id = ?", (cid,)) is not None

    def removing(self) -> list[str]:
        """IDs of containers caught half-way through removal."""
        return self.in_state("removing")

    def in_state(self, state: str) -> list[str]:
        return [str(r["id"]) for r in self.db.query("SELECT id FROM containers WHERE state = ?", (state,))]

    def delete(self, cid: str) -> None:
        with self.db.write() as w:
            w.execute("DELETE FROM snapshots WHERE container_id = ?", (cid,))
            w.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def get(self, cid: str) -> Container:
        r = self.db.one("SELECT * FROM containers WHERE id = ?", (cid,))
        if r is None:
            raise NotFound(f"no such container: {cid}")
        return _row(r)

    def resolve(self, ref: str) -> Container:
        r = self.db.one("SELECT * FROM containers WHERE name = ?", (ref,))
        if r is None and re.match(r"^[0-9a-f]{3,64}$", ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ?", (f"{ref}%",))
            if len(rows) > 1:
                raise InvalidInput(f"container ID prefix {ref!r} is ambiguous: give more digits")
            r = rows[0] if rows else None
        if r is None:
            raise NotFound(f"no such container: {ref}")
        return _row(r)

    def list(self) -> list[Container]:
        return [_row(r) for r in self.db.query("SELECT * FROM containers ORDER BY created DESC")]

    def layers(self) -> set[str]:
        """Every layer a container uses: rw layers and snapshots."""
        return {str(r["layer"]) for r in self.db.query(
            "SELECT rw_layer AS layer FROM containers UNION SELECT layer FROM snapshots")}

    def using_image(self, image_id: str) -> list[Container]:
        return [_row(r) for r in self.db.query("SELECT * FROM containers WHERE image_id = ?", (image_id,))]

    # -- snapshots ---------------------------------------------------------------------------
    def add_snapshot(self, cid: str, name: str, layer: str, created: float, volumes: list[str] | None = None) -> None:
        with self.db.write() as w:
            if w.execute("SELECT 1 FROM snapshots WHERE container_id = ? AND name = ?", (cid, name)).fetchone():
                raise InvalidInput(f"snapshot {name!r} already exists for this container")
            w.execute("INSERT INTO snapshots(container_id, name, layer, created, volumes) VALUES (?, ?, ?, ?, ?)",
                      (cid, name, layer, created, json.dumps(volumes or [])))

    def snapshots(self, cid: str) -> list[dict[str, object]]:
        return [_snapshot(r) for r in self.db.query(
            "SELECT name, layer, created, volumes FROM snapshots WHERE container_id = ? ORDER BY created", (cid,))]

    def snapshot(self, cid: str, name: str) -> dict[str, object]:
        r = self.db.one("SELECT name, layer, created, volumes FROM snapshots WHERE container_id = ? AND name = ?",
                        (cid, name))
        if r is None:
            raise NotFound(f"no snapshot {name!r} for this container (see 'berth snapshot ls')")
        return _snapshot(r)

    def remove_snapshot(self, cid: str, name: str) -> None:
        with self.db.write() as w:
            w.execute("DELETE FROM snapshots WHERE container_id = ? AND name = ?", (cid, name))
