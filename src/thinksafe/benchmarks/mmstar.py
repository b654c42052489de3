"""MMStar (Chen et al., NeurIPS 2024; arXiv 2403.20330): 1,500 vision-indispensable multiple-choice questions.

Six core capabilities (coarse perception, fine-grained perception, instance
reasoning, logical reasoning, science & technology, math), 250 questions each,
three sub-capabilities per core capability.

Checked against github.com/MMStar-Benchmark/MMStar at commit 88f243ab4a39cb339530085c33aecb22819881a1:
``eval/vlmeval/evaluate/mmstar.py`` (scoring), ``eval/vlmeval/utils/dataset.py``
(``TSVDataset.build_prompt``, the prompt of API models), ``eval/vlmeval/inference.py``,
``eval/vlmeval/utils/dataset_config.py``.

Inputs (``--data``): the Hugging Face release Lin-Chen/MMStar, ``mmstar.parquet``
(columns ``index``, ``question``, ``image``, ``answer``, ``category``,
``l2_category``, ``meta_info``), found anywhere under ``--data``; images
embedded (written to the run folder once each). Each question carries its
options inline ("... Options: A: ..., B: ..., C: ..., D: ..."); they are read
from there for the option-text rule of the reader. Sample id = ``index``;
category = the core capability.

Download (without ``--data``): Lin-Chen/MMStar at commit
bc98d668301da7b14f648724866e57302778ab27, ``mmstar.parquet`` (41.8 MB, uploaded
in a9beb09 and unchanged since), checked against the sha256 the dataset's page
lists for it (the Git LFS object id).

Prompt: ``TSVDataset.build_prompt`` for a multiple-choice row without option
columns or hint, the path the authors' inference takes for API models:
``Question: {question}\\n``.

Judge (``--judge official``, the default; no model): the shared multiple-choice
reader (:func:`thinksafe.benchmarks.answers.extract_choice`) on the answer with
the thinking removed. Labels ``correct`` / ``wrong`` / ``unparsed`` / ``missing``.

Metric (``official``): accuracy over every question that ran (the authors'
``final score`` = correct / 1,500; unparsed and missing answers earn no credit
and are counted), by core capability (``by_category``, the authors' score per
category = correct / 250) and by sub-capability (``by_l2_category``).

Deviations from the authors' code:

* Extraction: the authors compare the answer letter with the prediction's
  first character (or the one after "(", "option " or "the answer is "), so
  "A cat is ..." counts as option A and a thinking trace or an "Answer:"
  label makes a right answer wrong. We read the answer after the thinking with
  the shared reader, and count what it cannot read as ``unparsed``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Judgment, Sample
from .base import LoaderError, register
from .capability import CapabilityBenchmark, score_choice
from .download import Remote
from .files import attach_embedded_image, iter_parquet_rows, safe_name

_HF, _HF_REVISION = "Lin-Chen/MMStar", "bc98d668301da7b14f648724866e57302778ab27"
CATEGORIES = ("coarse perception", "fine-grained perception", "instance reasoning", "logical reasoning",
              "science & technology", "math")


def parse_options(question: str) -> dict[str, str]:
    """Letter -> text of the options written after the question's last ``Options:``
    ("Options: A: x, B: y, ..."); ``{}`` when there are fewer than two."""
    at = question.rfind("Options:")
    if at < 0:
        return {}
    rest, marks, pos = question[at + len("Options:"):], [], 0
    for k in range(26):
        m = re.compile(rf"(?:^|[,\n])\s*{chr(65 + k)}\s*[:.]\s*").search(rest, pos)
        if not m:
            break
        marks.append((chr(65 + k), m.start(), m.end()))
        pos = m.end()
    ends = [start for _, start, _ in marks[1:]] + [len(rest)]
    options = {letter: rest[end_mark:stop].strip() for (letter, _, end_mark), stop in zip(marks, ends)}
    return options if len(options) >= 2 else {}


@register
class MMStar(CapabilityBenchmark):
    name = "mmstar"
    title = "MMStar: 1,500 vision-indispensable multiple-choice questions, six core capabilities"
    source = "https://github.com/MMStar-Benchmark/MMStar; Hugging Face Lin-Chen/MMStar (mmstar.parquet)"
    metric = "accuracy overall and by core capability (shared multiple-choice reader; unparsed counted)"
    subsets = {"all": 1500, **{c: 250 for c in CATEGORIES}}
    default_subset = "all"
    groups = ("category", "l2_category")
    release = (Remote.hf(_HF, _HF_REVISION, "mmstar.parquet",
                         sha256="29afd74b0134cfab083a8909b5358577ab18fd41c1e612031577cfb3635531c2"),)
    download_size = "Lin-Chen/MMStar mmstar.parquet: 41.8 MB, the 1,500 questions with their images"

    def files(self) -> list[Path]:
        found = sorted(self.data_dir().rglob("*.parquet"))
        if not found:
            raise LoaderError(f"{self.data_dir()}: no MMStar data (expected mmstar.parquet of {_HF})")
        return found

    def load(self) -> Iterator[Sample]:
        for path in self.files():
            for n, row in enumerate(iter_parquet_rows(path), start=1):
                where = f"{path}, row {n}"
                sample = self._sample(row, where)
                if self.subset not in (None, "all") and sample.category != self.subset:
                    continue
                if not sample.error:
                    out = self.workdir / "images" / self.name / safe_name(sample.id)
                    attach_embedded_image(sample, row.get("image"), out, where)
                yield sample

    def _sample(self, row: dict[str, Any], where: str) -> Sample:
        question, answer = row.get("question"), str(row.get("answer") or "").strip().upper()
        sid = str(row.get("index", "")) or f"row-{where.rsplit(' ', 1)[-1]}"
        options = parse_options(question) if isinstance(question, str) else {}
        if not options and isinstance(question, str):
            options = {letter: "" for letter in "ABCD"}  # letters only: the option-text rule is off
        if not isinstance(question, str) or answer not in options:
            return Sample(sid, self.name, "", error=f"{where}: malformed MMStar row (needs question and answer, "
                                                    f"a letter among its options; got answer {answer!r})")
        fields = {"options": options, "answer": answer, "category": str(row.get("category") or ""),
                  "l2_category": str(row.get("l2_category") or ""), "index": row.get("index")}
        return Sample(sid, self.name, f"Question: {question}\n", category=fields["category"], fields=fields)

    def score(self, sample: Sample, answer: str) -> Judgment:
        return score_choice(sample, answer)
