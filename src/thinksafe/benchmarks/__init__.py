"""Benchmark registry. Each module registers its class on import."""

from __future__ import annotations

import importlib

from .base import REGISTRY, Benchmark, LoaderError, Result

# One module per benchmark; imported on first lookup.
_MODULES = ("figstep", "mmsafetybench", "jailbreakv", "hades", "siuo", "mssbench", "mmsafeaware", "mossbench",
            "mis", "probes", "pope", "scienceqa", "mmstar", "mathvista", "shapeprobes")

# Presets run several benchmarks into one run folder (one subfolder each).
PRESETS: dict[str, tuple[str, ...]] = {
    # MOSSBench is the awareness family's over-refusal control (all its queries are benign).
    "tis-paper": ("mmsafetybench", "figstep", "siuo", "mssbench", "mmsafeaware", "mossbench"),
    # General capability: what safety tuning may cost (see docs/benchmarks-capability.md).
    "capability": ("pope", "scienceqa", "mmstar", "mathvista"),
}
# Safety and capability together: the two sides of a tuning run's ledger.
PRESETS["tis-paper+"] = PRESETS["tis-paper"] + PRESETS["capability"]


def _load_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise


def all_benchmarks() -> dict[str, type[Benchmark]]:
    _load_all()
    return dict(REGISTRY)


def get_benchmark(name: str) -> type[Benchmark]:
    if name in _MODULES and name not in REGISTRY:
        importlib.import_module(f"{__name__}.{name}")  # its own module: start-up skips the others
    if name not in REGISTRY:
        _load_all()
    if name not in REGISTRY:
        raise LoaderError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def headline(name: str, family: str | None = None) -> dict[str, str]:
    """Family, metric kind ("asr" | "accuracy"), goal and direction of a benchmark (see ``base.FAMILIES``)."""
    from .base import headline as declared

    _load_all()
    return declared(name, family)


__all__ = ["PRESETS", "Benchmark", "LoaderError", "Result", "all_benchmarks", "get_benchmark", "headline"]
