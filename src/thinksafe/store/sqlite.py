"""The run store: one SQLite file (WAL) per run folder.

Writes are grouped (group commit): a write is queued and returns at once; a
writer thread runs the queue in one open transaction and commits it
:data:`COMMIT_INTERVAL_S` (5 ms) after the oldest write in it was queued (at
once when :data:`COMMIT_MAX_WRITES` are queued; should the writer thread be
held up, the first write that finds the oldest one twice that old commits the
queue itself). A run with hundreds of requests in flight thus pays one commit
per few ms, not one per result, its event loop does not wait for SQLite, and
a process killed at any moment loses only the results of its last few
milliseconds (asked again on the next run).
A read runs the queue first, on the same connection, so it sees every write
made before it, committed or not; ``flush()`` and ``close()`` commit. A write
that fails in the writer thread is raised to the next caller.

Keys (schema 2), all by benchmark so that several benchmarks whose sample ids
coincide can share one run folder:

* samples: (benchmark, sample id), with the load order of the latest run;
* generations: (generation fingerprint, benchmark, sample id), with the
  sample's content hash so a changed benchmark item is generated again;
* judgments: (judge fingerprint, generation fingerprint, benchmark, sample id,
  target), each with the id of the generation it judged
  (:func:`generation_id`). A judgment is read back only with that very
  generation, and storing a new generation for a sample deletes the verdicts
  every judge gave the old one, so no verdict outlives what it judged;
* cache: (namespace, key) -> JSON, for other stages (captions, teacher thoughts).

A store of schema 1 (keys without the benchmark) is migrated when opened.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..records import MISSING, Generation, Judgment, Sample

SCHEMA_VERSION = 2
COMMIT_INTERVAL_S = 0.005
"""Longest time a write waits for its commit (plus the commit's own duration)."""
COMMIT_MAX_WRITES = 1000
"""This many queued writes are committed at once."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS samples (
        benchmark TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (benchmark, id))""",
    "CREATE INDEX IF NOT EXISTS samples_in_order ON samples (benchmark, seq)",
    """CREATE TABLE IF NOT EXISTS generations (
        gen_key TEXT NOT NULL, benchmark TEXT NOT NULL, sample_id TEXT NOT NULL, sample_hash TEXT NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (gen_key, benchmark, sample_id))""",
    """CREATE TABLE IF NOT EXISTS judgments (
        judge_key TEXT NOT NULL, gen_key TEXT NOT NULL, benchmark TEXT NOT NULL, sample_id TEXT NOT NULL,
        target TEXT NOT NULL, gen_id TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (judge_key, gen_key, benchmark, sample_id, target))""",
    "CREATE INDEX IF NOT EXISTS judgments_by_sample ON judgments (gen_key, benchmark, sample_id)",
    "CREATE TABLE IF NOT EXISTS judges (judge_key TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS cache (
        namespace TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (namespace, key))""",
)


class StoreVersionError(UserError):
    """The store was written by a thinksafe that uses a newer schema."""


def _dumps(record: Sample | Generation | Judgment) -> str:
    """``record.to_json()``, faster: records hold only plain JSON values, so the
    deep copy ``dataclasses.asdict`` makes is not needed (the text is the same).
    Attributes cached on the instance (``_``-prefixed, e.g. a sample's content
    hash) are not fields and are left out."""
    return json.dumps({k: v for k, v in vars(record).items() if not k.startswith("_")},
                      ensure_ascii=False, sort_keys=True)


def generation_id(sample_hash: str, gen: Generation) -> str:
    """Identity of one generation of one sample: what a judgment judged.

    Any change to the sample's content or to any field of the generation gives
    a new id (a thinksafe whose Generation gains a field changes every id: its
    verdicts are then asked again, never mixed with the old ones).
    """
    return _generation_id(sample_hash, _dumps(gen))


def _generation_id(sample_hash: str, gen_json: str) -> str:
    return hashlib.sha256(f"{sample_hash}\n{gen_json}".encode()).hexdigest()[:16]


class Store:
    """Thread-safe access to one ``store.sqlite``, with grouped commits."""

    def __init__(self, path: Path | str, commit_interval_s: float = COMMIT_INTERVAL_S):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.commit_interval_s = commit_interval_s
        self._db_lock = threading.Lock()
        """Held while the connection is used."""
        self._state = threading.Condition(threading.Lock())
        """Guards the fields below; never held while SQLite works, so writers never wait for it."""
        self._pending: list[tuple[tuple[str, list[tuple]], ...]] = []
        self._oldest: float | None = None
        """When the oldest write not committed yet was queued."""
        self._error: Exception | None = None
        self._closed = False
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only power loss can drop
        # the last commits); FULL would fsync every commit.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._open_schema()
        self._writer = threading.Thread(target=self._writer_loop, name=f"store-writer:{self.path.name}",
                                        daemon=True)
        self._writer.start()

    # ---- schema --------------------------------------------------------------------
    def _open_schema(self) -> None:
        version = self._schema_version()
        if version is not None and version > SCHEMA_VERSION:
            self._db.close()
            raise StoreVersionError(
                f"{self.path}: written by a newer thinksafe (store schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}): upgrade thinksafe, or use another output folder")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:
                _migrate_from_v1(self._db, self.path.parent)
            for statement in _TABLES:
                self._db.execute(statement)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                             (json.dumps(str(SCHEMA_VERSION)),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._db.close()
            raise

    def _schema_version(self) -> int | None:
        """The version of an existing store, None for a new file."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row:
                return int(json.loads(row[0]))
        return 1 if "samples" in tables else None  # schema 1 always wrote its version; be lenient

    # ---- group commit --------------------------------------------------------------
    def _write(self, sql: str, params: tuple, *more: tuple[str, tuple]) -> None:
        """Queue one or more statements for the open transaction."""
        self._write_many(((sql, [params]), *[(q, [p]) for q, p in more]))

    def _write_many(self, statements: tuple[tuple[str, list[tuple]], ...]) -> None:
        """Queue each statement, to run once per row of its parameters, for the open transaction.

        The writer thread runs the queue and commits it once its oldest write is
        ``commit_interval_s`` old; a read runs the queue first. The caller does
        not wait for SQLite, unless the writer thread is held up (a thread that
        keeps the GIL busy can starve it): a write that finds the oldest one
        twice that old, or :data:`COMMIT_MAX_WRITES` twice over, commits the
        queue itself, so that no write waits much longer than its bound.
        """
        with self._state:
            self._check_open()
            self._pending.append(statements)
            now = time.monotonic()
            if self._oldest is None:
                self._oldest = now
                self._state.notify()  # the writer starts its clock
            elif len(self._pending) == COMMIT_MAX_WRITES:
                self._state.notify()
            late = (now - self._oldest >= 2 * self.commit_interval_s
                    or len(self._pending) >= 2 * COMMIT_MAX_WRITES)
        if late:
            self.flush()

    def _check_open(self) -> None:
        self._check_error()
        if self._closed:
            raise RuntimeError(f"{self.path}: the store is closed")

    def _check_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"{self.path}: a write failed: {self._error}") from self._error

    def _run_pending(self, commit: bool) -> None:
        """Run the queued writes (and commit everything when ``commit``); the caller holds ``_db_lock``."""
        with self._state:
            batch, self._pending = self._pending, []
            if commit:
                self._oldest = None  # later writes start a new clock
        try:
            if batch and not self._db.in_transaction:
                self._db.execute("BEGIN")
            for statements in batch:
                for sql, rows in statements:
                    if len(rows) == 1:
                        self._db.execute(sql, rows[0])
                    else:
                        self._db.executemany(sql, rows)
            if commit and self._db.in_transaction:
                self._db.execute("COMMIT")
        except Exception as exc:
            with self._state:
                self._error = self._error or exc
            raise

    def _writer_loop(self) -> None:
        """Run and commit the queued writes once the oldest is ``commit_interval_s`` old
        (or the queue holds :data:`COMMIT_MAX_WRITES`)."""
        with self._state:
            while not self._closed:
                if self._oldest is None:
                    self._state.wait()
                    continue
                wait = self._oldest + self.commit_interval_s - time.monotonic()
                if wait > 0 and len(self._pending) < COMMIT_MAX_WRITES:
                    self._state.wait(wait)
                    continue
                self._state.release()
                try:
                    with self._db_lock:
                        self._run_pending(commit=True)
                except Exception:  # noqa: BLE001 - kept in _error, raised to the next caller
                    return
                finally:
                    self._state.acquire()

    def flush(self) -> None:
        """Commit now what was written so far."""
        with self._db_lock:
            if not self._closed:
                self._check_open()
                self._run_pending(commit=True)

    def close(self) -> None:
        """Commit pending writes and close the file (idempotent)."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.notify_all()
        self._writer.join()
        try:
            with self._db_lock:
                if self._error is None:
                    self._run_pending(commit=True)
        finally:
            self._db.close()
        self._check_error()

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            self._sync()
            return self._db.execute(sql, params).fetchall()

    def _sync(self) -> None:
        """Run the queued writes, so that a read sees them; the caller holds ``_db_lock``."""
        self._check_open()
        if self._pending:
            self._run_pending(commit=False)

    # ---- meta ----------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # ---- samples -------------------------------------------------------------------
    def put_sample(self, sample: Sample, seq: int) -> None:
        self.put_samples([sample], seq)

    def put_samples(self, samples: list[Sample], first_seq: int) -> None:
        """Samples in load order from ``first_seq`` on, in one write."""
        if samples:
            self._write_many((("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)",
                               [(s.benchmark, s.id, seq, _dumps(s)) for seq, s in enumerate(samples, first_seq)]),))

    def clear_samples(self, benchmark: str) -> None:
        """Forget the sample list of the benchmark's last run (their results stay)."""
        self._write("DELETE FROM samples WHERE benchmark = ?", (benchmark,))

    def iter_samples(self, benchmark: str | None = None) -> Iterator[Sample]:
        """Samples in load order, streamed from the database."""
        sql, params = "SELECT data FROM samples ORDER BY benchmark, seq", ()
        if benchmark:
            sql, params = "SELECT data FROM samples WHERE benchmark = ? ORDER BY seq", (benchmark,)
        for (data,) in self._stream(sql, params):
            yield Sample.from_json(data)

    def _stream(self, sql: str, params: tuple) -> Iterator[tuple]:
        """The rows of a query, streamed: a cursor of its own, the lock held only while fetching."""
        cur = self._db.cursor()
        with self._db_lock:
            self._sync()
            rows = cur.execute(sql, params)
            batch = rows.fetchmany(500)
        while batch:
            yield from batch
            with self._db_lock:
                batch = rows.fetchmany(500)

    def iter_results(self, benchmark: str, gen_key: str,
                     judge_key: str) -> Iterator[tuple[Sample, Generation | None, dict[str, Judgment]]]:
        """Each sample of the benchmark's latest run, in load order, with what
        :meth:`get_generation` and :meth:`get_judgments` give for it (no generation
        for a sample with an error), read in one streamed query."""
        rows = self._stream(
            "SELECT s.id, s.data, g.sample_hash, g.data, j.target, j.gen_id, j.data FROM samples s "
            "LEFT JOIN generations g ON g.gen_key = ? AND g.benchmark = s.benchmark AND g.sample_id = s.id "
            "LEFT JOIN judgments j ON j.judge_key = ? AND j.gen_key = ? AND j.benchmark = s.benchmark "
            "AND j.sample_id = s.id WHERE s.benchmark = ? ORDER BY s.seq",
            (gen_key, judge_key, gen_key, benchmark))
        for _, group in itertools.groupby(rows, key=lambda row: row[0]):
            _, data, sample_hash, gen_data, *judgment = next(group)
            sample = Sample.from_json(data)
            if sample.error or gen_data is None or sample_hash != sample.content_hash():
                yield sample, None, {}
                continue
            gen = Generation.from_json(gen_data)
            gen_id = generation_id(sample_hash, gen)  # as get_judgments: of the record as this version reads it
            judgments = {}
            for target, judged, jdata in [judgment, *(row[4:] for row in group)]:
                if target is not None and judged == gen_id:
                    judgments[target] = Judgment.from_json(jdata)
            yield sample, gen, judgments

    # ---- generations ---------------------------------------------------------------
    def put_generation(self, gen_key: str, sample: Sample, gen: Generation) -> str:
        """Store ``gen`` as the sample's generation; every judge's verdicts on an
        earlier, different generation of it are deleted in the same transaction.
        Returns the generation's id (:func:`generation_id`)."""
        sample_hash = sample.content_hash()
        key = (gen_key, sample.benchmark, sample.id)
        data = _dumps(gen)
        gen_id = _generation_id(sample_hash, data)
        self._write("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)", (*key, sample_hash, data),
                    ("DELETE FROM judgments WHERE gen_key = ? AND benchmark = ? AND sample_id = ? AND gen_id != ?",
                     (*key, gen_id)))
        return gen_id

    def get_generation(self, gen_key: str, sample: Sample) -> Generation | None:
        """The stored generation, unless the sample changed since."""
        rows = self._read("SELECT sample_hash, data FROM generations "
                          "WHERE gen_key = ? AND benchmark = ? AND sample_id = ?",
                          (gen_key, sample.benchmark, sample.id))
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

    def put_judgment(self, judge_key: str, gen_key: str, sample: Sample, gen: Generation, j: Judgment) -> None:
        """Store the verdict judge ``judge_key`` gave on target ``j.target`` of ``gen``."""
        self.put_judgments(judge_key, gen_key, sample, generation_id(sample.content_hash(), gen), [j])

    def put_judgments(self, judge_key: str, gen_key: str, sample: Sample, gen_id: str,
                      judgments: list[Judgment]) -> None:
        """Store the verdicts judge ``judge_key`` gave on the generation with id ``gen_id``
        (as returned by :meth:`put_generation`), in one write."""
        if judgments:
            self._write_many((("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [(judge_key, gen_key, sample.benchmark, sample.id, j.target, gen_id, _dumps(j))
                                for j in judgments]),))

    def get_judgments(self, judge_key: str, gen_key: str, sample: Sample, gen: Generation) -> dict[str, Judgment]:
        """The verdicts of ``judge_key`` on exactly this generation, by target."""
        rows = self._read("SELECT target, data FROM judgments WHERE judge_key = ? AND gen_key = ? "
                          "AND benchmark = ? AND sample_id = ? AND gen_id = ?",
                          (judge_key, gen_key, sample.benchmark, sample.id,
                           generation_id(sample.content_hash(), gen)))
        return {t: Judgment.from_json(d) for t, d in rows}

    # ---- generic cache (data builder stages) ---------------------------------------
    def get_cached(self, namespace: str, key: str) -> Any | None:
        rows = self._read("SELECT data FROM cache WHERE namespace = ? AND key = ?", (namespace, key))
        return json.loads(rows[0][0]) if rows else None

    def put_cached(self, namespace: str, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)",
                    (namespace, key, json.dumps(value, ensure_ascii=False)))


# ---- migration from schema 1 --------------------------------------------------------------
def _migrate_from_v1(db: sqlite3.Connection, folder: Path) -> None:
    """Re-key a schema-1 store by benchmark and tie its judgments to their generations.

    Runs inside the caller's transaction. Schema 1 kept the benchmark only in
    each sample's JSON: rows are given the benchmark of the sample with their
    id, or the store's only benchmark. Rows no benchmark can be found for, and
    judgments whose generation is gone, are dropped (their work is done
    again). A schema-1 verdict that cannot be of the stored generation (a
    ``missing`` verdict on a target with text, or the reverse) is dropped too.
    """
    from ..reasoning import target_text

    for table in ("samples", "generations", "judgments"):
        db.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
    for statement in _TABLES:
        db.execute(statement)
    db.execute("INSERT INTO samples SELECT benchmark, id, seq, data FROM v1_samples")
    owner = dict(db.execute("SELECT id, benchmark FROM v1_samples").fetchall())
    only = _only_benchmark(db, folder)
    db.execute("CREATE INDEX v1_judgments_by_sample ON v1_judgments (gen_key, sample_id)")
    dropped = {"generations": 0, "judgments": 0}
    # Streamed: the cursor reads the old table while the loop writes the new ones.
    for gen_key, sample_id, sample_hash, data in db.execute("SELECT * FROM v1_generations"):
        judgments = db.execute("SELECT judge_key, target, data FROM v1_judgments WHERE gen_key = ? AND sample_id = ?",
                               (gen_key, sample_id)).fetchall()
        benchmark = owner.get(sample_id, only)
        if benchmark is None:
            dropped["generations"] += 1
            dropped["judgments"] += len(judgments)
            continue
        db.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?)", (gen_key, benchmark, sample_id, sample_hash, data))
        gen = Generation.from_json(data)
        gen_id = generation_id(sample_hash, gen)
        for judge_key, target, jdata in judgments:
            if (Judgment.from_json(jdata).label == MISSING) != (not target_text(gen, target).strip()):
                dropped["judgments"] += 1
                continue
            db.execute("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (judge_key, gen_key, benchmark, sample_id, target, gen_id, jdata))
    orphans = db.execute("SELECT COUNT(*) FROM v1_judgments j WHERE NOT EXISTS (SELECT 1 FROM v1_generations g "
                         "WHERE g.gen_key = j.gen_key AND g.sample_id = j.sample_id)").fetchone()[0]
    dropped["judgments"] += orphans
    for table in ("samples", "generations", "judgments"):
        db.execute(f"DROP TABLE v1_{table}")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from_schema_1', ?)", (json.dumps(dropped),))


def _only_benchmark(db: sqlite3.Connection, folder: Path) -> str | None:
    """The one benchmark a schema-1 store holds, when that is certain."""
    names = {r[0] for r in db.execute("SELECT DISTINCT benchmark FROM v1_samples")}
    if not names:
        try:
            names = {json.loads((folder / "run.json").read_text())["benchmark"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return names.pop() if len(names) == 1 else None
