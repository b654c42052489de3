"""POPE, polling-based object probing (Li et al., EMNLP 2023; arXiv 2305.10355): object hallucination.

"Is there a {object} in the image?" on COCO val2014 images; half the objects
are there ("yes"), half are not ("no"), drawn three ways: ``random``,
``popular`` (frequent objects) and ``adversarial`` (objects that co-occur with
what is there). 3,000 questions and 500 images per split.

Checked against github.com/RUCAIBox/POPE at commit 3df3ba1b110ecce25696989577fad583b67d4239:
``evaluate.py``, ``README.md``, ``output/coco/coco_pope_{random,popular,adversarial}.json``.

Inputs (``--data``), either layout:

* the authors' question files ``coco_pope_{split}.json`` (in ``--data`` or
  ``--data/output/coco/``; one JSON object per line: ``question_id``,
  ``image``, ``text``, ``label``) with the COCO val2014 images, found by file
  name in ``--data/val2014/``, ``--data/images/`` or ``--data`` itself. An
  image that is not there skips its question with an error naming the file
  (listed under ``missing_images``, counted in ``skipped_without_image``).
* the Hugging Face release lmms-lab/POPE: ``data/test-*.parquet`` (columns
  ``id``, ``question_id``, ``question``, ``answer``, ``image_source``,
  ``image``, ``category`` = the split), images embedded (written to the run
  folder once each).

Download (without ``--data``): the lmms-lab/POPE release at commit
4db1276663dfa5eb8ad16a52d24c31a09e470896 (its ``main`` when read), the three
shards ``data/test-0000{0,1,2}-of-00003.parquet`` (85 MB each; the file names
are those of the dataset's file tree at that commit and at 271684c, the commit
that uploaded them). The three are fetched for any subset (which split each
shard holds is not published). These carry COCO's images, so nothing of
COCO's 6 GB val2014 zip is needed; the questions are then the release's (its
``question_id`` and ``category`` give the sample ids). No sha256 of these
files is published where it could be read: ``run.json`` records the sha256 of
each file fetched.

The model gets the question text as it is (the authors' ``text``) and the
image. Sample id = ``{split}-{question_id}``; category = the split. Subsets:
``all`` (the three splits, 9,000) or one split.

Judge (``--judge official``, the default; no model): the authors' rule on the
answer (thinking removed): keep the text before the first ".", drop commas,
split on spaces; "no" if the words contain ``No``, ``not`` or ``no``, else
"yes". Beside it, a stricter reading: the answer must START with Yes or No
(markdown, quotes and an "Answer:" label tolerated), else ``unparsed``.
Labels: ``correct`` / ``wrong`` (the authors' rule) / ``missing``;
``extra``: ``prediction`` (authors), ``strict``, ``label``.

Metric (``official``), overall and per split (``by_split``), for the authors'
rule and, under ``strict``, for the start-of-answer reading: accuracy,
precision, recall, F1 (positive = "yes"), yes-ratio, with the confusion
counts. ``accuracy = (TP + TN) / n`` over every question that ran (a missing
answer, and under ``strict`` an unparsed one, earns no credit and is counted);
precision, recall, F1 and the yes-ratio are over the answers that have a
prediction. With every answer present, these are the authors' numbers exactly.
``split_mean`` is the mean of the splits' accuracy and F1.

Deviations from the authors' code:

* The rule reads the answer after the thinking is removed; an answer cut off
  while thinking is ``missing`` (no prediction), where the authors' rule would
  call an empty answer "yes".
* A split where precision or recall is 0/0 reports None (the script divides by zero).
* The stricter start-of-answer reading is ours, reported beside, never instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..records import MISSING, Judgment, Sample
from .answers import parse_yes_no
from .base import LoaderError, Result, register
from .capability import AccuracyTally, CapabilityBenchmark, verdict
from .download import Remote
from .files import attach_embedded_image, attach_image, iter_parquet_rows, safe_name

SPLITS = ("random", "popular", "adversarial")
IMAGE_DIRS = ("val2014", "images", ".")
_QUESTION_DIRS = (".", "output/coco")
_HF, _HF_REVISION = "lmms-lab/POPE", "4db1276663dfa5eb8ad16a52d24c31a09e470896"


def authors_yes_no(answer: str) -> str:
    """The authors' ``evaluate.py`` rule, line by line: ``"no"`` or ``"yes"``."""
    text = answer
    if text.find(".") != -1:  # only keep the first sentence
        text = text.split(".")[0]
    text = text.replace(",", "")
    words = text.split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def binary_scores(c: Counter, prefix: str = "") -> dict[str, Any]:
    """Accuracy (over ``n``), precision, recall, F1 (positive = yes) and yes-ratio from
    ``{prefix}tp/fp/tn/fn`` counts and ``n``; None where a ratio is 0/0."""
    tp, fp, tn, fn = (c[prefix + k] for k in ("tp", "fp", "tn", "fn"))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    predicted = tp + fp + tn + fn
    return {"accuracy": (tp + tn) / c["n"] if c["n"] else None, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / predicted if predicted else None, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


@register
class POPE(CapabilityBenchmark):
    name = "pope"
    title = "POPE: object hallucination, yes/no questions on COCO val2014 (random / popular / adversarial)"
    source = "https://github.com/RUCAIBox/POPE (output/coco/) + COCO val2014 images; Hugging Face lmms-lab/POPE"
    metric = ("accuracy, precision, recall, F1, yes-ratio per split "
              "(authors' yes/no rule; strict start-of-answer beside)")
    subsets = {"all": 9000, **{s: 3000 for s in SPLITS}}
    default_subset = "all"
    release = tuple(Remote.hf(_HF, _HF_REVISION, f"data/test-{i:05d}-of-00003.parquet") for i in range(3))
    download_size = "lmms-lab/POPE: 3 parquet shards, 85 MB each (255 MB), the 9,000 questions with their images"

    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.subset in (None, "all") else (str(self.subset),)

    def parquet_files(self) -> list[Path]:
        return sorted(self.data_dir().glob("data/test-*.parquet"))

    def question_file(self, split: str) -> Path:
        root = self.data_dir()
        name = f"coco_pope_{split}.json"
        return next((root / d / name for d in _QUESTION_DIRS if (root / d / name).is_file()), root / name)

    def files(self) -> list[Path]:
        return self.parquet_files() or [self.question_file(s) for s in self.splits()]

    # ---- loading -------------------------------------------------------------------
    def load(self) -> Iterator[Sample]:
        return self.listing_missing(self._from_parquet() if self.parquet_files() else self._from_authors_files())

    def _from_authors_files(self) -> Iterator[Sample]:
        # Every split's file is checked before the first question is yielded.
        paths = {split: self.question_file(split) for split in self.splits()}
        for split, path in paths.items():
            if not path.is_file():
                raise LoaderError(f"{path}: POPE question file not found (expected the authors' "
                                  f"coco_pope_{split}.json, or the {_HF} parquet files under data/)")
        for split, path in paths.items():
            with open(path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, start=1):
                    if line.strip():
                        yield self._authors_row(split, line, f"{path}, line {line_no}")

    def _authors_row(self, split: str, line: str, where: str) -> Sample:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            return Sample(f"{split}-bad-{where.rsplit(' ', 1)[-1]}", self.name, "", category=split,
                          error=f"{where}: not valid JSON ({exc.msg})")
        sample = self._sample(split, row, ("question_id", "image", "text", "label"), where)
        if not sample.error:
            attach_image(sample, self.data_dir(), self._image_path(row["image"]), where,
                         missing_note=" (POPE needs the COCO val2014 images: put them in val2014/ under --data)")
        return sample

    def _image_path(self, name: str) -> str:
        root = self.data_dir()
        return next((f"{d}/{name}" for d in IMAGE_DIRS if (root / d / name).is_file()), f"{IMAGE_DIRS[0]}/{name}")

    def _from_parquet(self) -> Iterator[Sample]:
        for path in self.parquet_files():
            for n, row in enumerate(iter_parquet_rows(path), start=1):
                split = str(row.get("category") or "")
                if split not in self.splits():
                    continue
                where = f"{path}, row {n}"
                row = {"question_id": row.get("question_id"), "text": row.get("question"),
                       "label": row.get("answer"), "image": row.get("image_source"), "bytes": row.get("image")}
                sample = self._sample(split, row, ("question_id", "text", "label"), where)
                if not sample.error:
                    stem = safe_name(str(row["image"] or sample.id))
                    attach_embedded_image(sample, row["bytes"], self.workdir / "images" / self.name / stem, where)
                yield sample

    def _sample(self, split: str, row: Any, keys: tuple[str, ...], where: str) -> Sample:
        bad = [k for k in keys if not isinstance(row, dict) or row.get(k) in (None, "")]
        label = str(row.get("label", "")).strip().lower() if isinstance(row, dict) else ""
        if bad or label not in ("yes", "no"):
            why = f"missing {', '.join(bad)}" if bad else f"label must be yes or no, got {label!r}"
            return Sample(f"{split}-bad-{where.rsplit(' ', 1)[-1]}", self.name, "", category=split,
                          error=f"{where}: malformed POPE row ({why})")
        return Sample(f"{split}-{row['question_id']}", self.name, str(row["text"]), category=split,
                      fields={"question_id": row["question_id"], "label": label, "split": split,
                              "image": str(row.get("image") or "")})

    # ---- protocol ------------------------------------------------------------------
    def score(self, sample: Sample, answer: str) -> Judgment:
        prediction, strict = authors_yes_no(answer), parse_yes_no(answer)
        return verdict("answer", prediction == sample.fields["label"], f"authors' rule: {prediction}",
                       prediction=prediction, strict=strict, label=sample.fields["label"])

    def tally(self) -> PopeTally:
        return PopeTally(self)


class PopeTally(AccuracyTally):
    """Confusion counts per split for the authors' rule and the strict reading, in the same pass."""

    def __init__(self, bench: POPE) -> None:
        super().__init__(bench)
        self.cells: dict[str, Counter] = {}

    def count_judgment(self, result: Result, j: Judgment) -> None:
        super().count_judgment(result, j)
        c = self.cells.setdefault(result.sample.category, Counter())
        c["n"] += 1
        if j.label == MISSING:
            c["missing"] += 1
            return
        truth = result.sample.fields["label"]
        c[_cell(j.extra.get("prediction"), truth)] += 1
        strict = j.extra.get("strict")
        c["strict_" + _cell(strict, truth) if strict else "strict_unparsed"] += 1

    def block(self) -> dict[str, Any]:
        out = super().block()
        total = sum(self.cells.values(), Counter())
        out.update(_rule_blocks(total))
        out["by_split"] = {s: {**_rule_blocks(c), "n": c["n"], "missing": c["missing"]}
                           for s, c in self.cells.items()}
        if len(self.cells) > 1:
            splits = [out["by_split"][s] for s in self.cells]
            out["split_mean"] = {k: _mean([s[k] for s in splits]) for k in ("accuracy", "f1")}
        return out


def _rule_blocks(c: Counter) -> dict[str, Any]:
    strict = binary_scores(c, "strict_")
    strict["unparsed"] = c["strict_unparsed"]
    return {**binary_scores(c), "strict": strict}


def _cell(prediction: str | None, truth: str) -> str:
    return ("t" if prediction == truth else "f") + ("p" if prediction == "yes" else "n")


def _mean(values: Iterable[float | None]) -> float | None:
    vals = list(values)
    return None if not vals or any(v is None for v in vals) else sum(vals) / len(vals)
