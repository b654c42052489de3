"""Measure the HTML report of a large run, in one go.

Builds a synthetic run folder of N samples through the project's own writers
(``samples.jsonl`` / ``metrics.json`` from typed records), each sample with its
own image file (hard links to FigStep's 500 published images, or drawn 760x760
typographic images without them) and a thinking of about W words, then writes
the report and prints:

* the page size (total, embedded thumbnails, everything else) against the
  50 MB goal, and per sample;
* the time to build the page against the time to just read ``samples.jsonl``;
* with Chromium installed (or ``$THINKSAFE_CHROMIUM``): the time until the
  opened page shows its sample count, and the time of one filter change.

Usage: python benchmarks/report_size.py [--samples 5000] [--words 400] [--keep DIR]
       [--figstep ../shared/benchmarks/figstep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image, ImageDraw  # noqa: E402

from thinksafe.benchmarks import get_benchmark  # noqa: E402
from thinksafe.benchmarks.base import Result  # noqa: E402
from thinksafe.records import Generation, Judgment, Sample  # noqa: E402
from thinksafe.report.files import write_results  # noqa: E402
from thinksafe.report.html import write_report  # noqa: E402
from thinksafe.report.runs import RunRef  # noqa: E402

WORDS = ("the image shows a list of steps user asks about safety policy harmful request so I should consider "
         "whether answering could cause harm and what a careful assistant would say here first second").split()
CATEGORIES = ["Illegal Activity", "Hate Speech", "Malware Generation", "Physical Harm", "Fraud", "Adult Content",
              "Privacy Violation", "Legal Opinion", "Financial Advice", "Health Consultation"]


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_image(path: Path, i: int) -> None:
    im = Image.new("RGB", (760, 760), "white")
    draw = ImageDraw.Draw(im)
    for line, words in enumerate((f"Steps to do thing number {i}.", "1.", "2.", "3.")):
        draw.text((30, 30 + 60 * line), words, fill="black", font_size=48)
    im.save(path)


def results(n: int, words: int, images: Path):
    rng = random.Random(0)
    for i in range(n):
        unsafe_thought, unsafe_answer = rng.random() < 0.5, rng.random() < 0.3
        sample = Sample(f"{i // 10}-{i % 10}", "figstep", text(rng, 30), [str(images / f"{i}.png")],
                        CATEGORIES[i % len(CATEGORIES)])
        thinking = text(rng, rng.randint(words // 2, 3 * words // 2))
        gen = Generation(raw=f"<think>{thinking}</think>answer", reasoning=thinking, answer=text(rng, words // 4),
                         reasoning_source="tags", finish_reason="stop", completion_tokens=words * 2)
        judgments = {t: Judgment(t, "unsafe" if bad else "safe", raw=f"{'unsafe' if bad else 'safe'}: {text(rng, 20)}")
                     for t, bad in (("reasoning", unsafe_thought), ("answer", unsafe_answer),
                                    ("full", unsafe_thought or unsafe_answer))}
        yield Result(sample, gen, judgments)


def build_run(folder: Path, n: int, words: int, figstep: Path) -> None:
    images = folder / "images"
    images.mkdir(parents=True)
    published = sorted((figstep / "images" / "SafeBench").glob("*.png"))
    for i in range(n):
        if published:
            os.link(published[i % len(published)], images / f"{i}.png")
        else:
            make_image(images / f"{i}.png", i)
    print(f"images: {'hard links to FigStep' if published else 'drawn'}")
    run = folder / "run"
    run.mkdir()
    bench = get_benchmark("figstep")(workdir=run)
    header = {"benchmark": "figstep", "family": "jailbreak", "subset": "synthetic", "model": "openai/synthetic",
              "judge": "refusal", "protocol": "official"}
    write_results(run, bench, lambda: results(n, words, images), header)
    (run / "run.json").write_text(json.dumps({**header, "config": {"settings": {"max_tokens": 4096}}}))


def in_browser(page_path: Path) -> None:
    from browser import Browser, find_chromium

    exe = find_chromium()
    if exe is None:
        print("browser: Chromium not found, skipped")
        return
    browser = Browser(exe)
    try:
        page = browser.page()
        start = time.perf_counter()
        page.open(page_path.as_uri(), timeout=300)
        opened = time.perf_counter() - start
        count = page.eval("document.getElementById('ts-count').textContent")
        start = time.perf_counter()
        filtered = page.eval("(() => { const s = document.getElementById('ts-verdict'); s.value = 'self_correction';"
                             " s.dispatchEvent(new Event('change')); return document.getElementById('ts-count')"
                             ".textContent; })()")
        expected = json.loads((page_path.parent / "metrics.json").read_text())["self_correction"]
        print(f"browser: page loaded, {count} samples shown as the count, in {opened:.1f}s; "
              f"filter 'answer safe, thinking unsafe' -> {filtered} (metrics.json: {expected}) "
              f"in {time.perf_counter() - start:.2f}s")
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--words", type=int, default=400, help="mean thinking length in words")
    parser.add_argument("--keep", type=Path, help="build here and keep the files")
    parser.add_argument("--figstep", type=Path, default=ROOT.parent / "shared" / "benchmarks" / "figstep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        start = time.perf_counter()
        build_run(folder, args.samples, args.words, args.figstep)
        print(f"built a synthetic run of {args.samples} samples in {time.perf_counter() - start:.1f}s")
        start = time.perf_counter()
        with open(folder / "run" / "samples.jsonl", encoding="utf-8") as f:
            rows = sum(1 for line in f if json.loads(line))
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        page = write_report([RunRef(folder / "run")], None, folder / "run" / "report.html")
        build_s = time.perf_counter() - start
        html = page.read_text(encoding="utf-8")
        images = sum(len(part.split('"', 1)[0]) for part in html.split('"src":"data:image/')[1:])
        size = page.stat().st_size
        samples_mb = (folder / "run" / "samples.jsonl").stat().st_size / 1e6
        print(f"page: {size / 1e6:.1f} MB for {rows} samples (goal < 50 MB): thumbnails {images / 1e6:.1f} MB, "
              f"everything else {(size - images) / 1e6:.1f} MB; {size / rows / 1e3:.1f} kB per sample; "
              f"samples.jsonl {samples_mb:.1f} MB")
        print(f"time: page built in {build_s:.1f}s = {build_s / read_s:.0f}x reading samples.jsonl ({read_s:.2f}s)")
        in_browser(page)


if __name__ == "__main__":
    main()
