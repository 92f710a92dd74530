"""The metadata store: one SQLite database per root (rollback journal), every write in a transaction."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from collections.abc import Iterator

from berth import faults, trace

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    id TEXT PRIMARY KEY,
    parent TEXT,
    diff_id TEXT,
    chain_id TEXT UNIQUE,
    size INTEGER NOT NULL DEFAULT 0,
    rw INTEGER NOT NULL DEFAULT 0,
    incomplete INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS layers_parent ON layers(parent);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    top_layer TEXT,
    created TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image_id TEXT NOT NULL,
    rw_layer TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    runtime TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    container_id TEXT NOT NULL,
    name TEXT NOT NULL,
    layer TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (container_id, name)
);
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, blob)
);
CREATE TABLE IF NOT EXISTS image_manifests (
    image_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE TABLE IF NOT EXISTS blob_sources (
    blob TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (blob, registry, repository)
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id)
);
"""
SCHEMA_VERSION = "1"
# Columns added after a table first shipped: (table, column, declaration).
MIGRATIONS = (
    ("containers", "restart_count", "INTEGER NOT NULL DEFAULT 0"),
    ("containers", "stopped_by_user", "INTEGER NOT NULL DEFAULT 0"),
    ("containers", "ip", "TEXT"),
    ("containers", "health", "TEXT"),
    ("containers", "paused", "INTEGER NOT NULL DEFAULT 0"),
    ("snapshots", "volumes", "TEXT NOT NULL DEFAULT '[]'"),  # the named volumes copied with it (--with-volumes)
)

# a checksum, not a digest: it only tells an up-to-date root from one whose schema text changed
SCHEMA_FINGERPRINT = format(zlib.crc32(repr((SCHEMA, MIGRATIONS)).encode()), "08x")


class Database:
    def __init__(self, path: str) -> None:
        self.path = path
        with trace.span("db", "open"):
            self._open(path)

    def _open(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        # WAL with synchronous=NORMAL: commits need no fsync, readers never wait for a writer, and
        # a power cut may lose the last commits but never corrupts the database (the incomplete
        # markers make the file system agree with whatever survived). Not on btrfs: WAL keeps its
        # index in a shared-memory file that every connection mmaps, and on a full copy-on-write
        # file system a write to that mapping has no block to go to — the kernel kills the process
        # with SIGBUS, no message. There a rollback journal, written with write(2), fails with
        # ENOSPC (a one-line error); it needs synchronous=FULL to be safe from corruption. A root
        # is switched over by the first command that opens it alone.
        from berth.host.probe import fs_type

        mode, sync = ("TRUNCATE", "FULL") if fs_type(os.path.dirname(path) or ".") == "btrfs" else ("WAL", "NORMAL")
        with contextlib.suppress(sqlite3.OperationalError):
            self.conn.execute(f"PRAGMA journal_mode={mode}")
        self.conn.execute(f"PRAGMA synchronous={sync}")
        self.conn.execute("PRAGMA busy_timeout=60000")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # the schema's fingerprint is recorded with it: an up-to-date root skips the DDL, which
        # would otherwise take a write transaction on every command
        try:
            current = self.get_meta("schema_fingerprint") == SCHEMA_FINGERPRINT
        except sqlite3.OperationalError:  # a new root: no meta table yet
            current = False
        if current:
            return
        with self.write() as c:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            for table, column, decl in MIGRATIONS:
                cols = {r["name"] for r in c.execute(f"PRAGMA table_info({table})")}
                if column not in cols:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_fingerprint', ?)",
                      (SCHEMA_FINGERPRINT,))

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: writers queue here instead of failing late)."""
        with trace.span("db", "write transaction"):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                faults.point("db: before commit")
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    self.conn.execute("ROLLBACK")
                raise
            faults.point("db: committed")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, args).fetchone()

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def init_meta(self, key: str, value: str) -> None:
        """Record value under key unless a value is recorded already (a read when it is: a full
        file system must not stop a command that only looks)."""
        if self.get_meta(key) is not None:
            return
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with trace.span("db", "close (checkpoint)"):
            self.conn.close()
