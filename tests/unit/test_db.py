"""The metadata store's schema: created on a new root, brought up to date on an old one, and left
alone (no write transaction) when it is current."""

from __future__ import annotations

import os
import sqlite3

from berth import db


def _tables(path: str) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_new_root_gets_schema_and_fingerprint(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "berth.db")
    d = db.Database(path)
    assert d.get_meta("schema_fingerprint") == db.SCHEMA_FINGERPRINT
    d.close()
    assert {"meta", "layers", "containers"} <= _tables(path)


def test_stale_root_is_migrated(tmp_path: str) -> None:
    """A root written by an older berth (another fingerprint, a table and a column missing)."""
    path = os.path.join(str(tmp_path), "berth.db")
    db.Database(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value = 'older' WHERE key = 'schema_fingerprint'")
        c.execute("ALTER TABLE containers DROP COLUMN ip")
        c.execute("DROP TABLE layers")
    d = db.Database(path)
    assert d.get_meta("schema_fingerprint") == db.SCHEMA_FINGERPRINT
    assert "ip" in {r["name"] for r in d.query("PRAGMA table_info(containers)")}
    d.close()
    assert "layers" in _tables(path)


def test_current_root_opens_without_ddl(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "berth.db")
    db.Database(path).close()
    with sqlite3.connect(path) as c:
        c.execute("DROP TABLE layers")  # only a skipped DDL pass leaves it missing
    db.Database(path).close()
    assert "layers" not in _tables(path)
