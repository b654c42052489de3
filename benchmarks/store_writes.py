"""What the run store's group commit saves, measured in one run.

Writes what an evaluation writes per sample (its place in the sample list, its
generation, three judgments) for N samples, once with grouped commits (the
default: queued, committed by the writer thread every 5 ms) and once
committing every write before the next (``flush()`` after each), and prints
samples/s and the caller's CPU per sample. How long a result waits for its
commit is checked by tests/test_store.py (SIGKILL).

Usage: python benchmarks/store_writes.py [--samples 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from thinksafe.records import Generation, Judgment, Sample
from thinksafe.store import Store
from thinksafe.store.sqlite import COMMIT_INTERVAL_S

TEXT = "<think>" + "The user asks about the image. " * 20 + "</think>" + "Here is an answer. " * 30


def write_samples(path: Path, n: int, each: bool) -> tuple[float, float]:
    """(samples per second, process CPU ms per sample) written into a new store at ``path``;
    ``each``: commit every write before the next."""
    store = Store(path)
    sync = store.flush if each else (lambda: None)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        sample = Sample(str(i), "bench", f"question {i}")
        gen = Generation(raw=TEXT, reasoning=TEXT[:600], answer=TEXT[600:], full=TEXT, latency_s=0.2)
        store.put_sample(sample, i)
        sync()
        gen_id = store.put_generation("gen", sample, gen)
        sync()
        for target in ("reasoning", "answer", "full"):
            store.put_judgments("judge", "gen", sample, gen_id, [Judgment(target, "safe", raw="safe")])
            sync()
    store.close()
    return n / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grouped, grouped_cpu = write_samples(Path(tmp) / "grouped.sqlite", args.samples, each=False)
        each, each_cpu = write_samples(Path(tmp) / "each.sqlite", args.samples, each=True)
    print(f"{args.samples} samples, 5 writes each")
    print(f"  group commit every {COMMIT_INTERVAL_S * 1000:.0f} ms: {grouped:8.0f} samples/s, "
          f"{grouped_cpu:.2f} CPU ms/sample")
    print(f"  one commit per write:      {each:8.0f} samples/s, {each_cpu:.2f} CPU ms/sample")
    print(f"  ratio grouped / per write: {grouped / each:8.1f}")


if __name__ == "__main__":
    main()
