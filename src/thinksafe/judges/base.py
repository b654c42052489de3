"""Judges: give each target (reasoning / answer / full) of a generation a label.

A judge never sees more than the text of the target it judges (plus, for
image-aware protocols, the sample). Targets with no text are ``missing`` and
are never sent to a judge; that rule lives in the runner, not in each judge.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from ..models.base import Message
from ..records import TARGETS, Judgment, Sample, fingerprint


class Judge(ABC):
    """Labels one target text of one sample."""

    name: str
    targets: tuple[str, ...] = TARGETS
    local: bool = False
    """True for a judge whose verdict depends on its arguments alone, computed
    here (rules; no model, no file, no state): a run may judge with a copy of it
    in a worker process (:mod:`thinksafe.judges.process`)."""

    def fingerprint_config(self) -> dict[str, Any]:
        """Everything that changes the verdicts (prompt version, judge model...)."""
        return {"name": self.name}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.fingerprint_config())

    @property
    def concurrency(self) -> int:
        return 16

    @abstractmethod
    async def judge(self, sample: Sample, text: str, target: str) -> Judgment:
        """Judge ``text`` (never empty) for ``target``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the judge model's resources."""


class RuleJudge(Judge):
    """A benchmark's own scoring rule (no model) as a judge of the answer only:
    ``score(sample, answer) -> Judgment`` on each non-empty answer."""

    targets = ("answer",)

    def __init__(self, name: str, version: str, score: Callable[[Sample, str], Judgment]):
        self.name, self.version, self.score = name, version, score

    def fingerprint_config(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @property
    def concurrency(self) -> int:
        return 64

    async def judge(self, sample: Sample, text: str, target: str) -> Judgment:
        return self.score(sample, text)


class Rubric(Protocol):
    """An LLM-judge protocol: how to ask, and how to read the reply.

    Benchmarks ship their official rubric; :class:`~thinksafe.judges.llm.LLMJudge`
    runs any rubric against any judge model.
    """

    name: str
    version: str

    def messages(self, sample: Sample, text: str, target: str) -> list[Message]:
        """The judge request."""
        ...

    def parse(self, output: str, target: str) -> Judgment:
        """Read the judge's reply; anything unexpected is ``unparsed``."""
        ...


_DELIMS = re.compile(r"\[/?(?:BEGIN|END)[ _A-Z]*\]", re.IGNORECASE)


def neutralize(text: str) -> str:
    """Defuse fake ``[BEGIN ...]``/``[END ...]`` markers a jailbroken output may
    contain, so it cannot close the block the judge reads it in."""
    return _DELIMS.sub(lambda m: m.group(0).replace("[", "(").replace("]", ")"), text)
