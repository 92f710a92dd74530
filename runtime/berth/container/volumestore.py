"""Named volume records in the metadata database (the volumes table's one owner)."""

from __future__ import annotations

import json

from berth.db import Database
from berth.errors import InvalidInput, NotFound
from berth.record import Factory, Record


class Volume(Record):
    name: str
    created: float
    labels: dict[str, str] = Factory(dict)


def _row(r: object) -> Volume:
    d = dict(r)  # type: ignore[call-overload]
    return Volume(d["name"], d["created"], json.loads(d["labels"] or "{}"))


class VolumeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, v: Volume) -> bool:
        """Record a volume; False when one of that name is there already (nothing changes)."""
        with self.db.write() as w:
            if w.execute("SELECT 1 FROM volumes WHERE name = ?", (v.name,)).fetchone():
                return False
            w.execute("INSERT INTO volumes(name, created, labels) VALUES (?, ?, ?)",
                      (v.name, v.created, json.dumps(v.labels, sort_keys=True)))
        return True

    def get(self, name: str) -> Volume:
        r = self.db.one("SELECT * FROM volumes WHERE name = ?", (name,))
        if r is None:
            raise NotFound(f"no such volume: {name}")
        return _row(r)

    def exists(self, name: str) -> bool:
        return self.db.one("SELECT 1 FROM volumes WHERE name = ?", (name,)) is not None

    def list(self) -> list[Volume]:
        return [_row(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        with self.db.write() as w:
            w.execute("UPDATE volumes SET labels = ? WHERE name = ?", (json.dumps(labels, sort_keys=True), name))

    def delete(self, name: str) -> None:
        with self.db.write() as w:
            if w.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount == 0:
                raise InvalidInput(f"no such volume: {name}")
