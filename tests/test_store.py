"""The run store: group commit, SIGKILL, keys by benchmark, verdicts tied to generations, schema 1."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from thinksafe.errors import UserError
from thinksafe.records import Generation, Judgment, Sample
from thinksafe.store import Store
from thinksafe.store.sqlite import COMMIT_INTERVAL_S, _dumps, generation_id

GEN = Generation(raw="<think>t</think>a", reasoning="t", answer="a", full="<think>t</think>a", latency_s=0.5)


def sample(sid: str, benchmark: str = "b", prompt: str = "p") -> Sample:
    return Sample(sid, benchmark, prompt)


def committed(path, sql: str) -> list[tuple]:
    """What another connection (another process) sees: committed rows only."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_reads_see_pending_writes_and_commits_are_grouped(tmp_path):
    path = tmp_path / "store.sqlite"
    store = Store(path, commit_interval_s=60)  # nothing is committed by the clock in this test
    try:
        s = sample("1")
        store.put_generation("g", s, GEN)
        store.put_judgment("j", "g", s, GEN, Judgment("answer", "safe"))
        assert store.get_generation("g", s) == GEN  # read-your-writes, before any commit
        assert store.get_judgments("j", "g", s, GEN) == {"answer": Judgment("answer", "safe")}
        assert committed(path, "SELECT COUNT(*) FROM generations") == [(0,)]
        store.flush()
        assert committed(path, "SELECT COUNT(*) FROM generations") == [(1,)]
        store.put_sample(s, 0)
    finally:
        store.close()  # commits
    assert committed(path, "SELECT id FROM samples") == [("1",)]


def test_writes_from_several_threads_keep_their_order_and_batches_are_one_write(tmp_path):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    try:
        s = sample("1")
        first = store.put_generation("g", s, GEN)
        store.put_judgments("j", "g", s, first, [Judgment("answer", "safe"), Judgment("full", "unsafe")])
        worker = threading.Thread(target=lambda: store.put_samples([sample(str(i)) for i in range(3)], 10))
        worker.start()
        worker.join()
        second = Generation(raw="b", answer="b", full="b")
        assert store.put_generation("g", s, second) != first  # queued after the verdicts: it voids them
        assert store.get_judgments("j", "g", s, GEN) == {}
        assert [(x.id, x.prompt) for x in store.iter_samples("b")] == [("0", "p"), ("1", "p"), ("2", "p")]
    finally:
        store.close()
    assert committed(path, "SELECT id, seq FROM samples ORDER BY seq") == [("0", 10), ("1", 11), ("2", 12)]


def test_a_write_that_fails_in_the_writer_thread_is_raised_to_the_next_caller(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    try:
        store._write("INSERT INTO no_such_table VALUES (?)", (1,))  # queued: the caller does not wait
        deadline = time.monotonic() + 10
        while store._error is None and time.monotonic() < deadline:
            time.sleep(0.002)
        with pytest.raises(RuntimeError, match="a write failed: no such table: no_such_table"):
            store.put_cached("ns", "k", {"v": 1})
    finally:
        with pytest.raises(RuntimeError, match="a write failed"):
            store.close()


def test_the_clock_commits_a_lone_write(tmp_path):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    try:
        store.put_cached("ns", "k", {"v": 1})
        deadline = time.monotonic() + 5
        while not committed(path, "SELECT key FROM cache") and time.monotonic() < deadline:
            time.sleep(0.002)
        assert committed(path, "SELECT key FROM cache") == [("k",)]
    finally:
        store.close()


WRITER = textwrap.dedent("""
    import sys, time
    from thinksafe.records import Generation, Sample
    from thinksafe.store import Store

    store = Store(sys.argv[1])
    mode = sys.argv[2]
    i = 0
    while True:
        store.put_generation("g", Sample(str(i), "b", "p"), Generation(raw="x" * 300, latency_s=i))
        print(f"{i} {time.time()}", flush=True)  # after the write returned; one string: one write(2)
        i += 1
        if mode == "burst" and i % 100 == 0:
            time.sleep(0.03)  # pauses: the last writes of each burst wait for the clock
        if mode == "burst" and i == 500:
            print("idle", flush=True)
            time.sleep(60)
""")


def kill_writer(db, mode: str) -> tuple[list[tuple[int, float]], float]:
    """Start a writer, SIGKILL it (while idle, or after 1 s of writing), and
    return ``([(index, time written)], kill time)``."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), mode], stdout=subprocess.PIPE, text=True)
    lines = []
    start = time.time()
    for line in proc.stdout:
        lines.append(line)
        if line == "idle\n":
            time.sleep(0.2)
            break
        if mode == "stream" and time.time() - start > 1.0:
            break
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    lines += proc.stdout.read().splitlines(keepends=True)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return [(int(i), float(t)) for i, t in (line.split() for line in lines if line != "idle\n")], killed_at


@pytest.mark.parametrize("mode", ["burst", "stream"])
def test_sigkill_loses_only_the_last_milliseconds(tmp_path, mode):
    db = tmp_path / "store.sqlite"
    written, killed_at = kill_writer(db, mode)
    # The bound is COMMIT_INTERVAL_S plus one commit; the slack covers a loaded
    # machine's scheduling delays, which the store cannot bound.
    bound = COMMIT_INTERVAL_S + 0.15
    store = Store(db)
    try:
        assert store._read("PRAGMA integrity_check") == [("ok",)]
        stored = {int(r[0]) for r in store._read("SELECT sample_id FROM generations")}
    finally:
        store.close()
    due = {i for i, t in written if t < killed_at - bound}
    assert len(due) > 300 and due <= stored
    if mode == "burst":
        assert stored == {i for i, _ in written} == set(range(500))


def test_a_new_generation_voids_the_verdicts_of_every_judge(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    try:
        s = sample("1")
        first = Generation(error="HTTP 500")
        store.put_generation("g", s, first)
        for judge in ("refusal", "llm"):
            store.put_judgment(judge, "g", s, first, Judgment("answer", "missing"))
        second = Generation(raw="ok", answer="ok", full="ok", latency_s=1.0)
        store.put_generation("g", s, second)
        for judge in ("refusal", "llm"):
            assert store.get_judgments(judge, "g", s, second) == {}
            assert store.get_judgments(judge, "g", s, first) == {}  # deleted, not only hidden
        store.put_judgment("llm", "g", s, second, Judgment("answer", "safe"))
        # The same generation stored again keeps its verdicts.
        store.put_generation("g", s, Generation.from_json(second.to_json()))
        assert store.get_judgments("llm", "g", s, second) == {"answer": Judgment("answer", "safe")}
        # A verdict is read back only with the generation it judged.
        assert store.get_judgments("llm", "g", s, first) == {}
    finally:
        store.close()


def test_results_are_read_in_load_order_with_only_the_verdicts_on_their_generation(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    try:
        ok, changed, failed, bare = sample("a"), sample("b"), Sample("c", "b", "p", error="row 3: bad"), sample("d")
        for s in (ok, changed, failed, bare):
            store.put_generation("g", s, GEN)
        store.put_judgment("j", "g", ok, GEN, Judgment("answer", "safe"))
        store.put_judgment("other", "g", ok, GEN, Judgment("answer", "unsafe"))
        stale = Generation(raw="old", answer="old")
        store.put_judgment("j", "g", ok, stale, Judgment("full", "unsafe"))  # judged another generation
        store.put_samples([bare, sample("b", prompt="edited"), failed, ok], 0)
        got = [(s.id, gen, {t: j.label for t, j in js.items()}) for s, gen, js in store.iter_results("b", "g", "j")]
        assert got == [("d", GEN, {}), ("b", None, {}), ("c", None, {}), ("a", GEN, {"answer": "safe"})]
        assert [(s.id, g, js) for s, g, js in store.iter_results("b", "g", "j")] == [
            (s.id, g, store.get_judgments("j", "g", s, g) if g else {})
            for s in store.iter_samples("b") for g in [None if s.error else store.get_generation("g", s)]]
    finally:
        store.close()


def test_benchmarks_with_the_same_ids_do_not_mix(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    try:
        a, b = sample("7", "siuo", "question a"), sample("7", "mmsafeaware", "question b")
        gen_a, gen_b = Generation(raw="A", answer="A"), Generation(raw="B", answer="B")
        for seq, (s, gen, label) in enumerate(((a, gen_a, "safe"), (b, gen_b, "unsafe"))):
            store.put_sample(s, seq)
            store.put_generation("g", s, gen)
            store.put_judgment("j", "g", s, gen, Judgment("answer", label))
        assert [x.prompt for x in store.iter_samples("siuo")] == ["question a"]
        assert [x.prompt for x in store.iter_samples("mmsafeaware")] == ["question b"]
        assert store.get_generation("g", a) == gen_a and store.get_generation("g", b) == gen_b
        assert store.get_judgments("j", "g", a, gen_a)["answer"].label == "safe"
        assert store.get_judgments("j", "g", b, gen_b)["answer"].label == "unsafe"
        store.clear_samples("siuo")
        assert [x.benchmark for x in store.iter_samples()] == ["mmsafeaware"]
    finally:
        store.close()


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE samples (id TEXT PRIMARY KEY, benchmark TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE generations (gen_key TEXT NOT NULL, sample_id TEXT NOT NULL, sample_hash TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (gen_key, sample_id));
CREATE TABLE judgments (judge_key TEXT NOT NULL, gen_key TEXT NOT NULL, sample_id TEXT NOT NULL,
    target TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (judge_key, gen_key, sample_id, target));
CREATE TABLE judges (judge_key TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE cache (namespace TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (namespace, key));
INSERT INTO meta VALUES ('schema_version', '"1"');
"""


def v1_store(path, samples, generations, judgments):
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)",
                   [(s.id, s.benchmark, seq, s.to_json()) for seq, s in enumerate(samples)])
    db.executemany("INSERT INTO generations VALUES (?, ?, ?, ?)",
                   [(key, s.id, s.content_hash(), g.to_json()) for key, s, g in generations])
    db.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?, ?)",
                   [(judge, key, sid, j.target, j.to_json()) for judge, key, sid, j in judgments])
    db.execute("INSERT INTO cache VALUES ('caption', 'k', '{\"text\": \"a cat\"}')")
    db.commit()
    db.close()


def test_a_schema_1_store_is_migrated(tmp_path):
    path = tmp_path / "store.sqlite"
    s1, s2 = sample("1", "figstep"), sample("2", "figstep")
    old = sample("9", "figstep")  # generated by an earlier, longer run: not in the sample list
    v1_store(path, [s1, s2], [("g", s1, GEN), ("g", s2, GEN), ("g", old, GEN)], [
        ("refusal", "g", "1", Judgment("answer", "unsafe")),
        ("refusal", "g", "1", Judgment("reasoning", "safe")),
        ("llm", "g", "2", Judgment("answer", "missing")),  # stale: judged a failed generation
        ("llm", "g", "3", Judgment("answer", "safe")),  # its generation is gone
    ])
    store = Store(path)
    try:
        assert store.get_meta("schema_version") == "2"
        assert store.get_meta("migrated_from_schema_1") == {"generations": 0, "judgments": 2}
        assert [s.id for s in store.iter_samples("figstep")] == ["1", "2"]
        assert store.get_generation("g", s1) == GEN and store.get_generation("g", old) == GEN
        assert {t: j.label for t, j in store.get_judgments("refusal", "g", s1, GEN).items()} == {
            "answer": "unsafe", "reasoning": "safe"}
        assert store.get_judgments("llm", "g", s2, GEN) == {}
        assert store.get_cached("caption", "k") == {"text": "a cat"}
        assert store._read("PRAGMA integrity_check") == [("ok",)]
    finally:
        store.close()
    Store(path).close()  # opening a migrated store again changes nothing


def test_a_schema_1_store_with_rows_of_unknown_benchmark(tmp_path):
    path = tmp_path / "store.sqlite"
    a, b, orphan = sample("1", "siuo"), sample("2", "mmsafeaware"), sample("3", "siuo")
    v1_store(path, [a, b], [("g", a, GEN), ("g", b, GEN), ("g", orphan, GEN)],
             [("j", "g", "3", Judgment("answer", "safe"))])
    store = Store(path)
    try:
        # With two benchmarks in the store, sample 3's cannot be told: it is dropped (and redone).
        assert store.get_meta("migrated_from_schema_1") == {"generations": 1, "judgments": 1}
        assert store.get_generation("g", a) == GEN and store.get_generation("g", b) == GEN
        assert store.get_generation("g", orphan) is None
    finally:
        store.close()


def test_a_store_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "run" / "store.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '\"3\"' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(UserError, match=r"run/store.sqlite: written by a newer thinksafe \(store schema 3"):
        Store(path)


def test_generation_id_follows_the_sample_and_the_output():
    base = generation_id("h1", GEN)
    assert base == generation_id("h1", Generation.from_json(GEN.to_json()))
    assert base != generation_id("h2", GEN)
    assert base != generation_id("h1", Generation(**{**GEN.to_dict(), "latency_s": 0.6}))


def test_the_store_writes_each_record_as_its_own_json():
    records = (Sample("1", "b", "q", images=["/x.png"], fields={"a": [1, {"b": "é"}]}), GEN,
               Judgment("answer", "unsafe", 1.0, raw="r", extra={"votes": {"safe": 1, "unsafe": 2}}))
    records[0].content_hash()  # cached on the instance: not a field, not stored
    for record in records:
        assert _dumps(record) == record.to_json()
    assert "_content_hash" not in _dumps(records[0])
