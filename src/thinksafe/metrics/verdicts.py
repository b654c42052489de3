"""Metrics for benchmarks whose verdicts are right/wrong behaviour rather than safe/unsafe.

:func:`standard_metrics` is the standard block (:func:`~thinksafe.metrics.asr.asr_metrics`)
with right verdicts counted as ``safe`` and wrong ones as ``unsafe``, so ``asr``
reads as the error rate. :class:`OfficialTally` and :func:`official_metrics` add
the benchmark's own ``official`` block, counted in the same single pass.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..records import MISSING, SAFE, TARGETS, UNPARSED, UNSAFE, Judgment, Sample
from .asr import asr_metrics

if TYPE_CHECKING:
    from ..benchmarks.base import Result

Verdict = Callable[["Result", Judgment], "bool | None"]
"""``is_correct(result, judgment)``: True (right), False (wrong) or None (not a verdict it understands)."""


def rate(k: int, n: int) -> float | None:
    """``k / n``, or None when ``n`` is 0."""
    return k / n if n else None


def standard_metrics(results: Iterable[Result], is_correct: Verdict | None = None,
                     observe: Callable[[Result], None] | None = None) -> dict[str, Any]:
    """The standard metrics block (:func:`~thinksafe.metrics.asr.asr_metrics`),
    for benchmarks whose verdicts may be right/wrong rather than safe/unsafe.

    A judgment that ``is_correct`` understands becomes ``safe`` (right) or
    ``unsafe`` (wrong), so ``asr`` reads as the error rate; ``unparsed``,
    ``missing`` and verdicts it does not understand (``None``: e.g. a generic
    judge's safe/unsafe) pass through unchanged. Only the targets the judge
    produced are reported. ``observe`` sees every result in the same single
    pass, so the benchmark's official block needs no second pass.
    """
    targets, results = _judged_targets(results)

    def relabelled() -> Iterator[Result]:
        for r in results:
            if observe:
                observe(r)
            judgments = {t: _relabel(r, j, is_correct) for t, j in r.judgments.items()}
            yield dataclasses.replace(r, judgments=judgments)

    return asr_metrics(relabelled(), targets)


def _relabel(result: Result, judgment: Judgment, is_correct: Verdict | None) -> Judgment:
    if judgment.label in (UNPARSED, MISSING):
        return judgment
    ok = is_correct(result, judgment) if is_correct else None
    if ok is None:
        return judgment
    return Judgment(judgment.target, SAFE if ok else UNSAFE, judgment.score, judgment.raw, judgment.extra)


def _judged_targets(results: Iterable[Result]) -> tuple[tuple[str, ...], Iterator[Result]]:
    """The targets of the first judged result, and the results again (nothing lost)."""
    it = iter(results)
    head: list[Result] = []
    for r in it:
        head.append(r)
        if r.judgments:
            break
    judged = head[-1].judgments if head else {}
    targets = tuple(t for t in TARGETS if t in judged) or TARGETS
    return targets, itertools.chain(head, it)


class OfficialTally:
    """Counts for a benchmark's ``official`` block, filled in one pass (``observe`` of :func:`standard_metrics`).

    Samples that could not run (``sample.error``) count in ``skipped``; those
    whose image is missing (``fields["missing_image"]``) are also listed in
    ``no_image``, by :meth:`image_id`. Subclasses count the samples that ran in
    :meth:`count` and build the block in :meth:`block`.
    """

    def __init__(self) -> None:
        self.no_image: list[Any] = []
        self.skipped = 0

    def add(self, result: Result) -> None:
        """Count one result: skipped, or passed to :meth:`count`."""
        sample = result.sample
        if not sample.error:
            self.count(result)
            return
        self.skipped += 1
        if sample.fields.get("missing_image"):
            self.no_image.append(self.image_id(sample))

    def image_id(self, sample: Sample) -> Any:
        """How a sample without its image is listed in ``missing_images``: its id."""
        return sample.id

    def count(self, result: Result) -> None:
        """Count a result whose sample ran."""
        raise NotImplementedError

    def block(self) -> dict[str, Any]:
        """The ``official`` block."""
        raise NotImplementedError

    def blocks(self) -> dict[str, Any]:
        """The top-level blocks this tally adds to ``metrics.json``: ``official`` (override to add more)."""
        return {"official": self.block()}


def official_metrics(results: Iterable[Result], is_correct: Verdict | None, tally: OfficialTally) -> dict[str, Any]:
    """:func:`standard_metrics`, then the tally's blocks and ``missing_images`` (``count``, ``ids``).

    Args:
        results: The run's results.
        is_correct: Right/wrong for a judgment (see :func:`standard_metrics`), or None.
        tally: The benchmark's official counts, filled in the same pass.
    """
    out = standard_metrics(results, is_correct, tally.add)
    out.update(tally.blocks())
    out["missing_images"] = {"count": len(tally.no_image), "ids": tally.no_image}
    return out
