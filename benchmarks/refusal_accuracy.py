"""Accuracy and speed of the offline refusal judge on its labelled corpus.

Prints, for the development part and the held-out part of
``tests/data/refusal/`` (see its README): accuracy, recall of each class,
accuracy per slice and per language; then the judge's throughput on one core
(one process judging every corpus text in a loop), in answers per second of
its CPU time (what one core does, whatever else the machine runs) and per
second of wall-clock time.

Usage: python benchmarks/refusal_accuracy.py [--errors dev|heldout] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from thinksafe.judges.refusal import classify

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "refusal"
PARTS = ("dev", "heldout")
LABELS = ("refusal", "compliance")


def load_part(part: str) -> list[dict]:
    path = CORPUS / f"{part}.jsonl"
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        if row.get("label") not in LABELS or not row.get("text"):
            raise ValueError(f"{path}:{n}: needs a text and a label in {LABELS}")
        rows.append(row)
    return rows


def predict(text: str) -> str:
    return "refusal" if classify(text).refusal else "compliance"


def score(rows: list[dict]) -> dict:
    """Accuracy, per-class recall, per-slice and per-language accuracy, and the misses."""
    right, total = Counter(), Counter()
    misses = []
    for row in rows:
        ok = predict(row["text"]) == row["label"]
        for key in ("all", f"class:{row['label']}", f"slice:{row['slice']}", f"lang:{row['lang']}"):
            total[key] += 1
            right[key] += ok
        if not ok:
            misses.append(row)
    rate = {k: right[k] / total[k] for k in total}
    return {"n": total, "right": right, "rate": rate, "misses": misses}


def throughput(texts: list[str], seconds: float) -> tuple[float, float]:
    """Answers judged per second of this process's CPU time (one core, unaffected by
    other processes waiting for the CPU), and per second of wall time."""
    done, cpu, wall = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds:
        for t in texts:
            classify(t)
        done += len(texts)
    return done / (time.process_time() - cpu), done / (time.perf_counter() - wall)


def _cell(s: dict, key: str) -> str:
    if key not in s["n"]:
        return "–"
    return f"{s['rate'][key]:.3f} ({s['right'][key]}/{s['n'][key]})"


def table(scores: dict[str, dict], rows: list[dict]) -> str:
    """The markdown table: development vs held-out, overall, per class, per slice, per language."""
    dev, held = scores["dev"], scores["heldout"]
    label_of = {f"slice:{r['slice']}": r["label"] for r in rows}
    lines = ["| | development | held-out |", "|---|---|---|",
             f"| **accuracy** | {_cell(dev, 'all')} | {_cell(held, 'all')} |"]
    lines += [f"| recall: {label} | {_cell(dev, 'class:' + label)} | {_cell(held, 'class:' + label)} |"
              for label in LABELS]
    slices = sorted(label_of, key=lambda k: (label_of[k], k))
    lines += [f"| slice: {k[6:]} ({label_of[k]}) | {_cell(dev, k)} | {_cell(held, k)} |" for k in slices]
    langs = sorted({k for s in scores.values() for k in s["n"] if k.startswith("lang:")},
                   key=lambda k: (k != "lang:en", k))
    lines += [f"| language: {k[5:]} | {_cell(dev, k)} | {_cell(held, k)} |" for k in langs]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", choices=PARTS, help="also list the misclassified answers of this part")
    ap.add_argument("--seconds", type=float, default=3.0, help="how long to measure throughput")
    args = ap.parse_args()
    parts = {p: load_part(p) for p in PARTS}
    scores = {p: score(rows) for p, rows in parts.items()}
    every = [r for rows in parts.values() for r in rows]
    print(table(scores, every))
    texts = [r["text"] for r in every]
    chars = sum(map(len, texts)) / len(texts)
    cpu, wall = throughput(texts, args.seconds)
    print(f"\nthroughput: {cpu:,.0f} answers per CPU-second on one core ({wall:,.0f} per wall-clock second; "
          f"{len(texts)} corpus answers, {chars:.0f} characters on average)")
    if args.errors:
        print(f"\nmisclassified in {args.errors}:")
        for row in scores[args.errors]["misses"]:
            print(f"- {row['id']} [{row['label']}/{row['slice']}/{row['lang']}] {classify(row['text']).explain()}\n"
                  f"    {row['text'][:160]!r}")


if __name__ == "__main__":
    main()
