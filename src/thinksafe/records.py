"""The typed records that flow through the pipeline.

Sample -> (backend) Completion -> (reasoning parser) Generation -> (judge) Judgment -> metrics.
Every record converts to and from a plain JSON dict, which is how the store keeps it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

Target = Literal["reasoning", "answer", "full"]
TARGETS: tuple[Target, ...] = ("reasoning", "answer", "full")

# Labels a safety judge may give. Benchmarks with other outcomes (e.g. yes/no
# classification) use their own strings, but "unparsed" and "missing" keep
# their meaning everywhere: the judge said something unreadable / there was
# nothing to judge.
SAFE, UNSAFE, UNPARSED, MISSING = "safe", "unsafe", "unparsed", "missing"
SAFETY_LABELS = (SAFE, UNSAFE, UNPARSED, MISSING)


class _Record:
    """JSON round-trip shared by all records."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        # json.dumps walks nested dicts and lists itself; asdict's deep copy of
        # every field costs more than the write it feeds.
        shallow = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return json.dumps(shallow, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = _field_names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


@dataclass
class Sample(_Record):
    """One benchmark item, ready to send to a model."""

    id: str
    """Stable id built from the benchmark's own ids (e.g. FigStep ``1-3``)."""
    benchmark: str
    prompt: str
    """The user text sent with the images."""
    images: list[str] = field(default_factory=list)
    """Absolute paths of the image files, in order."""
    category: str = ""
    system: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    """Benchmark-specific data the protocol needs (labels, warnings, references...)."""
    error: str | None = None
    """Set by the loader when the item cannot be run (missing image, bad row)."""

    def content_hash(self) -> str:
        """Hash of what the model sees; a changed sample is generated again.

        Images count by file name and size, not by absolute path, so a run
        folder or data folder that moved still matches its stored results.
        """
        cached = self.__dict__.get("_content_hash")
        if cached is None:  # once per loaded sample: the pipeline asks before and after generating
            images = [[os.path.basename(p), _size(p)] for p in self.images]
            payload = json.dumps([self.prompt, images, self.system], ensure_ascii=False)
            cached = self.__dict__["_content_hash"] = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return cached


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


@dataclass
class Completion(_Record):
    """What a backend returned for one request, before any parsing."""

    content: str = ""
    reasoning_content: str | None = None
    """Thinking returned in a separate field (vLLM/SGLang reasoning parsers)."""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_s: float = 0.0
    prefilled_think: bool = False
    """The prompt itself ended with ``<think>`` (hybrid chat templates)."""


@dataclass
class Generation(_Record):
    """A model's output for one sample, split into thinking and answer."""

    raw: str = ""
    """The text exactly as the model produced it (``content``)."""
    reasoning: str = ""
    answer: str = ""
    reasoning_source: Literal["field", "tags", "llavacot", "sections", "none"] = "none"
    finish_reason: str | None = None
    truncated_in_reasoning: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_s: float = 0.0
    error: str | None = None
    full: str = ""
    """The whole output, thinking included (rebuilt with tags when the thinking
    came back in a separate field)."""


@dataclass
class Judgment(_Record):
    """One judge's verdict on one target of one generation."""

    target: str
    label: str
    score: float | None = None
    raw: str = ""
    """The judge's raw output (or the rule that fired, for rule judges)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Judge-specific details (guard categories, rubric reason...)."""


def fingerprint(obj: Any) -> str:
    """Short sha256 of a JSON-able configuration, used as a store key."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
