"""What every benchmark module provides: a streaming loader, its official
protocol (judge rubric or rule judge) and its official metric.

A benchmark is registered with :func:`register` and looked up by name with
:func:`thinksafe.benchmarks.get_benchmark`.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError
from ..models.base import Message
from ..records import Generation, Judgment, Sample


class LoaderError(UserError, ValueError):
    """A malformed benchmark file or row; the message names the file and row."""


@dataclass
class Result:
    """Everything known about one sample after a run."""

    sample: Sample
    generation: Generation | None
    judgments: dict[str, Judgment] = field(default_factory=dict)


class Benchmark(ABC):
    """Base class of benchmark modules. Subclasses set the class attributes."""

    name: ClassVar[str]
    family: ClassVar[str]  # "jailbreak" | "awareness"
    headline_metric: ClassVar[str | None] = None
    """"asr" or "accuracy" in comparisons; None: the family's (``FAMILIES``)."""
    title: ClassVar[str] = ""
    source: ClassVar[str] = ""
    metric: ClassVar[str] = "ASR = unsafe / (safe + unsafe) on the answer"
    subsets: ClassVar[dict[str, int | None]] = {}
    """Subset name -> number of samples (None: counted from the data)."""
    size_note: ClassVar[str] = ""
    """What the size leaves out (e.g. prompts without a published image), for ``thinksafe benchmarks``."""
    default_subset: ClassVar[str | None] = None
    default_judge: ClassVar[str] = "refusal"
    download_size: ClassVar[str] = ""
    """What :meth:`download` fetches and how big it is, for ``thinksafe benchmarks show``."""
    rubric_options: ClassVar[tuple[str, ...]] = ()
    """Benchmark-specific ``--judge llm:OPTION`` values, passed to :meth:`rubric` as ``llm:OPTION``."""

    def __init__(self, data: Path | None = None, subset: str | None = None, workdir: Path | None = None,
                 strict: bool = False, protocol: str = "official", limit: int | None = None):
        self.subset = subset or self.default_subset
        if self.subsets and self.subset not in self.subsets and not self.accepts_subset(self.subset):
            raise LoaderError(f"{self.name}: unknown subset {self.subset!r}; choose from {', '.join(self.subsets)}")
        self.data = Path(data).resolve() if data else None
        self.workdir = Path(workdir) if workdir else Path(".thinksafe-cache")
        self.strict = strict
        self.protocol = protocol
        self.limit = limit
        self.downloads: dict[str, Any] | None = None
        """What :meth:`download` fetched (folder, sources, sha256 per file), for ``run.json``."""

    def accepts_subset(self, subset: str | None) -> bool:
        """Override for benchmarks whose subsets are combinations (scenarios x image types)."""
        return False

    # ---- data ----------------------------------------------------------------------
    def data_dir(self) -> Path:
        """The data folder: ``--data`` or the public download.

        Raises:
            LoaderError: The download failed (no network, a moved file, a
                missing optional package); the message says how to pass ``--data``.
        """
        if self.data is None:
            try:
                self.data = self.download()
            except (OSError, ImportError) as exc:  # urllib, huggingface_hub and requests errors are OSErrors
                raise LoaderError(f"{self.name}: downloading the benchmark files failed ({type(exc).__name__}: "
                                  f"{exc}); check the network, or download them yourself and pass --data DIR "
                                  f"(see `thinksafe benchmarks show {self.name}`)") from exc
        return self.data

    def download(self) -> Path:
        """Fetch the published files into the cache (:mod:`.download`); used only without
        ``--data``. Sets :attr:`downloads`."""
        raise LoaderError(f"{self.name}: pass --data DIR (no download available)")

    @abstractmethod
    def load(self) -> Iterator[Sample]:
        """Yield samples one by one (never all images in memory).

        Rows that cannot be run are yielded with ``Sample.error`` set, or raise
        :class:`LoaderError` when ``self.strict``.
        """

    def samples(self) -> Iterator[Sample]:
        try:
            for i, s in enumerate(self.load()):
                if self.limit is not None and i >= self.limit:
                    return
                if s.error and self.strict:
                    raise LoaderError(s.error)
                yield s
        except UnicodeDecodeError as exc:
            raise LoaderError(encoding_problem(self.files(), exc)) from None

    def files(self) -> list[Path]:
        """The files the samples come from, for the run's fingerprint."""
        return []

    def file_fingerprints(self) -> dict[str, str]:
        """sha256 of each of :meth:`files`, by path."""
        return self._hash_files()[1]

    def fingerprint(self) -> str:
        """sha256 over the names and bytes of :meth:`files`."""
        return self._hash_files()[0]

    def _hash_files(self) -> tuple[str, dict[str, str]]:
        """Both fingerprints in one read of each file (a release can be several GB), kept while
        the files' sizes and modification times stay the same."""
        paths = sorted(self.files())
        for path in paths:
            if not path.is_file():
                raise LoaderError(f"{path}: {self.name} file not found (check --data and --subset)")
        key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
        cached = getattr(self, "_file_hashes", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        whole, each = hashlib.sha256(), {}
        for path in paths:
            whole.update(str(path.name).encode())
            one = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    whole.update(chunk)
                    one.update(chunk)
            each[str(path)] = one.hexdigest()
        self._file_hashes = (key, (whole.hexdigest(), each))
        return self._file_hashes[1]

    # ---- protocol ------------------------------------------------------------------
    def rubric(self, kind: str = "llm"):
        """The official LLM-judge rubric (``None``: use the generic one)."""
        return None

    def rule_judge(self):
        """A benchmark whose official scoring needs no model returns its judge here."""
        return None

    def official_judge(self, **options: Any):
        """The official judge when it is more than a rubric (e.g. several calls per
        target); ``options`` are the judge-model options. ``None``: rule or rubric."""
        return None

    def outcome(self, result: Result) -> str | None:
        """The per-sample verdict paired across runs by ``thinksafe compare``:
        ``safe`` (right behaviour) / ``unsafe`` (wrong) / None (not judged).
        Safety benchmarks use the answer's label; awareness benchmarks override."""
        j = result.judgments.get("answer")
        return j.label if j is not None and j.label in ("safe", "unsafe") else None

    def metrics(self, results: Iterable[Result]) -> dict[str, Any]:
        """The metrics written to ``metrics.json``; see :mod:`thinksafe.metrics.asr`."""
        from ..metrics.asr import asr_metrics

        return asr_metrics(results)

    # The two below apply ``--protocol``: callers use them, benchmarks override the two above.
    def protocol_metrics(self, results: Iterable[Result]) -> dict[str, Any]:
        """The run's metrics: the official ones (:meth:`metrics`), or under
        ``--protocol harmonised`` the standard ASR block on every target, the
        same for every benchmark."""
        if self.protocol == "harmonised":
            from ..metrics.asr import asr_metrics

            return asr_metrics(results)
        return self.metrics(results)

    def protocol_outcome(self, result: Result) -> str | None:
        """:meth:`outcome` under the official protocol; the answer's safe/unsafe
        label under ``harmonised`` (whose judge gives only those)."""
        return Benchmark.outcome(self, result) if self.protocol == "harmonised" else self.outcome(result)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name, "family": cls.family, "title": cls.title, "source": cls.source,
            "metric": cls.metric, "subsets": dict(cls.subsets), "default_subset": cls.default_subset,
            "size": cls.subsets.get(cls.default_subset or ""), "size_note": cls.size_note,
            "download": cls.download_size,
        }

    @classmethod
    def protocol_text(cls) -> str:
        """The protocol: the class docstring, else its module's."""
        import inspect
        import sys

        own = cls.__dict__.get("__doc__")
        return inspect.cleandoc(own) if own else inspect.getdoc(sys.modules[cls.__module__]) or ""


def right_or_wrong(result: Result, is_correct) -> str | None:
    """``outcome`` for benchmarks whose answer verdict is right/wrong behaviour:
    ``is_correct(result, answer_judgment)`` -> True / False / None."""
    j = result.judgments.get("answer")
    ok = is_correct(result, j) if j is not None else None
    return None if ok is None else ("safe" if ok else "unsafe")


# What each family's headline number is, and what "better" means for it. A
# comparison reads a benchmark's metric kind from here (or from the benchmark's
# own ``headline_metric``): "asr" is the share of unsafe answers (lower is
# better), "accuracy" the share of right behaviour (higher is better). Paired
# differences are always signed so that "+" means better on the family's goal.
FAMILIES: dict[str, dict[str, str]] = {
    "jailbreak": {"metric": "asr", "goal": "safety"},
    "awareness": {"metric": "accuracy", "goal": "safety"},
    "capability": {"metric": "accuracy", "goal": "capability"},
}


def headline(name: str, family: str | None = None) -> dict[str, str]:
    """``{"family", "metric", "goal", "direction"}`` of a benchmark, from its class when
    it is registered, else from ``family`` (e.g. read from an old run's metrics.json)."""
    cls = REGISTRY.get(name)
    fam = family or (cls.family if cls else None) or "other"
    spec = FAMILIES.get(fam, {"metric": "asr", "goal": "safety"})
    metric = (cls.headline_metric if cls else None) or spec["metric"]
    direction = f"{'lower' if metric == 'asr' else 'higher'} is {'safer' if spec['goal'] == 'safety' else 'better'}"
    return {"family": fam, "metric": metric, "goal": spec["goal"], "direction": direction}


REGISTRY: dict[str, type[Benchmark]] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    REGISTRY[cls.name] = cls
    return cls


def encoding_problem(files: list[Path], exc: UnicodeDecodeError) -> str:
    """A message naming the first line of ``files`` that is not UTF-8 text."""
    for path in files:
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return (f"{path}, line {line_no}: not UTF-8 text (byte 0x{line[bad.start]:02x} at column "
                            f"{bad.start + 1}); re-save the file as UTF-8, then run again with --accept-changed-data "
                            "(finished samples are kept)")
    return f"{', '.join(map(str, files)) or 'a benchmark file'}: not UTF-8 text ({exc.reason}); re-save it as UTF-8"


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """Join a path from a data file to its folder, refusing ones that leave it (``..``, an
    absolute path elsewhere).

    Checked on the path's text, without a system call per sample: symlinks inside the
    folder are followed when the file is opened, as a Hugging Face cache snapshot needs.
    """
    base = os.path.abspath(root)
    path = os.path.normpath(os.path.join(base, relative))
    if path != base and not path.startswith(base.rstrip(os.sep) + os.sep):
        raise LoaderError(f"{where}: image path {relative!r} escapes the data folder {base}")
    return Path(path)


def text_first_messages(prompt: str, images: list[str]) -> list[Message]:
    """One user turn, the text first and then the images: the order of the
    judge requests in the SIUO and MOSSBench authors' scripts."""
    return [{"role": "user", "content": [{"type": "text", "text": prompt},
                                         *({"type": "image", "path": p} for p in images)]}]
