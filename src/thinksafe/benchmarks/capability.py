"""What the general-capability benchmarks share: a scoring rule read as a judge,
right/wrong outcomes, and accuracy counted the same way for all of them.

A capability benchmark scores the ANSWER (thinking removed; an answer cut off
while thinking is ``missing`` and never reaches the rule). Its judgment labels
are ``correct`` / ``wrong`` / ``unparsed`` (the answer could not be read) /
``missing``. Accuracy counts every question that ran: ``accuracy = correct /
n``, where an unparsed or missing answer earns no credit and is counted beside
(``unparsed``, ``missing``); ``accuracy_parsed = correct / (correct + wrong)``
is reported too. Failed generations (``errors``) and samples that could not
run (``skipped``, e.g. an image that is not there) are left out of ``n``.

Without ``--data``, each benchmark downloads the parquet files of its Hugging
Face release (:attr:`CapabilityBenchmark.release`, a pinned commit) into the
cache, as the safety benchmarks do.

The rule needs no model, so the metrics re-read every stored answer with it:
whichever ``--judge`` ran, the numbers are the rule's (MathVista excepted: its
stored extraction, which may be the authors' LLM reading on ``--judge-model``,
is what it scores). Higher accuracy is
better; ``thinksafe compare`` signs differences so that "+" means better.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from ..judges.base import Judge, RuleJudge
from ..metrics.verdicts import OfficialTally, official_metrics, rate
from ..reasoning import target_text
from ..records import MISSING, UNPARSED, Judgment, Sample
from .answers import extract_choice
from .base import Benchmark, Result
from .download import Remote, download_release

CORRECT, WRONG = "correct", "wrong"

Score = Callable[[Sample, str], Judgment]
"""``score(sample, answer) -> Judgment``: a benchmark's rule on one non-empty answer."""


def verdict(target: str, correct: bool | None, raw: str, **extra: Any) -> Judgment:
    """``correct`` / ``wrong``, or ``unparsed`` when ``correct`` is None."""
    label = UNPARSED if correct is None else CORRECT if correct else WRONG
    return Judgment(target, label, None if correct is None else float(correct), raw=raw, extra=extra)


def score_choice(sample: Sample, answer: str) -> Judgment:
    """Multiple choice: :func:`~thinksafe.benchmarks.answers.extract_choice` against
    ``fields["options"]`` (letter -> text), right when it reads ``fields["answer"]`` (a letter)."""
    choice = extract_choice(answer, sample.fields["options"])
    if choice is None:
        return verdict("answer", None, "no option read", answer=sample.fields["answer"])
    return verdict("answer", choice.letter == sample.fields["answer"], f"{choice.how}: {choice.letter}",
                   prediction=choice.letter, how=choice.how, answer=sample.fields["answer"])


class CapabilityBenchmark(Benchmark):
    """Base of the capability benchmarks: subclasses set the class attributes and :meth:`score`."""

    family = "capability"
    default_judge = "official"
    headline_metric: ClassVar[str] = "accuracy"
    """Higher is better (compare and study sign differences with it)."""
    rule_version: ClassVar[str] = "1"
    groups: ClassVar[tuple[str, ...]] = ()
    """``Sample.fields`` keys accuracy is also reported by (``by_<key>`` in the official block)."""
    release: ClassVar[tuple[Remote, ...]] = ()
    """The files of the public release :meth:`download` fetches, at a pinned revision."""

    def download(self) -> Path:
        """Fetch :attr:`release` into ``$THINKSAFE_CACHE/NAME/REVISION`` (streamed, resumable,
        checked; see :mod:`.download`), a layout the loader reads."""
        root, self.downloads = download_release(self.name, self.release[0].revision[:12], self.release)
        return root

    def listing_missing(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        """``samples``, noting the ids of those without their image in ``self.missing_images``."""
        self.missing_images: list[str] = []
        for sample in samples:
            if sample.fields.get("missing_image"):
                self.missing_images.append(sample.id)
            yield sample

    def score(self, sample: Sample, answer: str) -> Judgment:
        """The rule on one non-empty answer: ``correct`` / ``wrong`` / ``unparsed``."""
        raise NotImplementedError

    def rule_judge(self) -> Judge:
        return RuleJudge(f"{self.name}-rule", self.rule_version, self.score)

    def judgment(self, result: Result) -> Judgment | None:
        """The answer's verdict by the rule, from the stored answer; ``missing`` when there is
        no answer; None when the sample did not run or its generation failed."""
        gen = result.generation
        if result.sample.error or gen is None or gen.error:
            return None
        text = target_text(gen, "answer")
        return self.score(result.sample, text) if text.strip() else Judgment("answer", MISSING)

    def outcome(self, result: Result) -> str | None:
        j = self.judgment(result)
        return {CORRECT: "safe", WRONG: "unsafe"}.get(j.label) if j is not None else None

    def metrics(self, results: Iterable[Result]) -> dict[str, Any]:
        return official_metrics(results, is_correct, self.tally())

    def tally(self) -> AccuracyTally:
        return AccuracyTally(self)


def is_correct(result: Result, judgment: Judgment) -> bool | None:
    """Right/wrong for the standard block: ``correct`` / ``wrong`` labels, else None."""
    return {CORRECT: True, WRONG: False}.get(judgment.label)


def accuracy_block(c: Counter) -> dict[str, Any]:
    """``accuracy`` (correct / n), ``accuracy_parsed`` (correct / (correct + wrong)) and the counts."""
    return {"accuracy": rate(c[CORRECT], c["n"]), "accuracy_parsed": rate(c[CORRECT], c[CORRECT] + c[WRONG]),
            "n": c["n"], "correct": c[CORRECT], "wrong": c[WRONG], "unparsed": c[UNPARSED], "missing": c[MISSING]}


class AccuracyTally(OfficialTally):
    """Accuracy overall and per value of each of the benchmark's ``groups``, in one pass."""

    def __init__(self, bench: CapabilityBenchmark) -> None:
        super().__init__()
        self.bench = bench
        self.total: Counter = Counter()
        self.by: dict[str, dict[str, Counter]] = {g: {} for g in bench.groups}

    def add(self, result: Result) -> None:
        self.total["prompts"] += 1
        super().add(result)

    def count(self, result: Result) -> None:
        j = self.bench.judgment(result)
        if j is None:
            self.total["errors"] += 1
            return
        self.count_judgment(result, j)

    def count_judgment(self, result: Result, j: Judgment) -> None:
        label = j.label if j.label in (CORRECT, WRONG, UNPARSED, MISSING) else UNPARSED
        for c in (self.total, *(self.by[g].setdefault(str(result.sample.fields.get(g)), Counter())
                                for g in self.by)):
            c.update({"n": 1, label: 1})

    def block(self) -> dict[str, Any]:
        out = accuracy_block(self.total)
        out.update(errors=self.total["errors"], skipped=self.skipped, prompts=self.total["prompts"],
                   skipped_without_image=len(self.no_image))
        for g, values in self.by.items():
            out[f"by_{g}"] = {v: {k: accuracy_block(c)[k] for k in ("accuracy", "n", "correct", "unparsed",
                                                                   "missing")}
                              for v, c in sorted(values.items())}
        return out
