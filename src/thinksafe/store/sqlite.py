"""The run store: one SQLite file (WAL) per run folder.

Every result is committed as soon as it arrives, so a process killed at any
moment loses at most the requests in flight, and a re-run does only the
missing work. Keys:

* generations: (generation fingerprint, sample id), with the sample's content
  hash so a changed benchmark item is generated again;
* judgments: (judge fingerprint, generation fingerprint, sample id, target);
* cache: (namespace, key) -> JSON, for other stages (captions, teacher thoughts).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Generation, Judgment, Sample

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id TEXT PRIMARY KEY, benchmark TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    gen_key TEXT NOT NULL, sample_id TEXT NOT NULL, sample_hash TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (gen_key, sample_id));
CREATE TABLE IF NOT EXISTS judgments (
    judge_key TEXT NOT NULL, gen_key TEXT NOT NULL, sample_id TEXT NOT NULL, target TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (judge_key, gen_key, sample_id, target));
CREATE TABLE IF NOT EXISTS judges (judge_key TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cache (
    namespace TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (namespace, key));
"""
SCHEMA_VERSION = "1"


class Store:
    """Thread-safe access to ``store.sqlite``; every write is its own commit."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only power loss can drop
        # the last commits); FULL would fsync every result.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.set_meta("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ---- meta ----------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # ---- samples -------------------------------------------------------------------
    def put_sample(self, sample: Sample, seq: int) -> None:
        self._write("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)",
                    (sample.id, sample.benchmark, seq, sample.to_json()))

    def clear_samples(self, benchmark: str) -> None:
        """Forget the sample list of the last run (their results stay)."""
        self._write("DELETE FROM samples WHERE benchmark = ?", (benchmark,))

    def iter_samples(self, benchmark: str | None = None) -> Iterator[Sample]:
        """Samples in load order, streamed from the database."""
        sql, params = "SELECT data FROM samples ORDER BY seq", ()
        if benchmark:
            sql, params = "SELECT data FROM samples WHERE benchmark = ? ORDER BY seq", (benchmark,)
        cur = self._db.cursor()
        # A separate cursor streams rows without holding the lock across yields.
        with self._lock:
            rows = cur.execute(sql, params)
            batch = rows.fetchmany(500)
        while batch:
            for (data,) in batch:
                yield Sample.from_json(data)
            with self._lock:
                batch = rows.fetchmany(500)

    # ---- generations ---------------------------------------------------------------
    def put_generation(self, gen_key: str, sample: Sample, gen: Generation) -> None:
        self._write("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?)",
                    (gen_key, sample.id, sample.content_hash(), gen.to_json()))

    def get_generation(self, gen_key: str, sample: Sample) -> Generation | None:
        """The stored generation, unless the sample changed since."""
        rows = self._read("SELECT sample_hash, data FROM generations WHERE gen_key = ? AND sample_id = ?",
                          (gen_key, sample.id))
        if not rows or rows[0][0] != sample.content_hash():
            return None
        return Generation.from_json(rows[0][1])

    def generation_keys(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT gen_key FROM generations")]

    # ---- judgments -----------------------------------------------------------------
    def register_judge(self, judge_key: str, name: str, config: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO judges VALUES (?, ?, ?)",
                    (judge_key, name, json.dumps(config, sort_keys=True, default=str)))

    def judges(self) -> list[dict[str, Any]]:
        return [{"judge_key": k, "name": n, "config": json.loads(c)}
                for k, n, c in self._read("SELECT judge_key, name, config FROM judges ORDER BY rowid")]

    def put_judgment(self, judge_key: str, gen_key: str, sample_id: str, j: Judgment) -> None:
        self._write("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?)",
                    (judge_key, gen_key, sample_id, j.target, j.to_json()))

    def get_judgments(self, judge_key: str, gen_key: str, sample_id: str) -> dict[str, Judgment]:
        rows = self._read("SELECT target, data FROM judgments WHERE judge_key = ? AND gen_key = ? AND sample_id = ?",
                          (judge_key, gen_key, sample_id))
        return {t: Judgment.from_json(d) for t, d in rows}

    def delete_judgments(self, judge_key: str, gen_key: str, sample_id: str) -> None:
        self._write("DELETE FROM judgments WHERE judge_key = ? AND gen_key = ? AND sample_id = ?",
                    (judge_key, gen_key, sample_id))

    # ---- generic cache (data builder stages) ---------------------------------------
    def get_cached(self, namespace: str, key: str) -> Any | None:
        rows = self._read("SELECT data FROM cache WHERE namespace = ? AND key = ?", (namespace, key))
        return json.loads(rows[0][0]) if rows else None

    def put_cached(self, namespace: str, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)",
                    (namespace, key, json.dumps(value, ensure_ascii=False)))
