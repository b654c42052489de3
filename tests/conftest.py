"""Shared fixtures: the real benchmark files in ../shared and the tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("THINKSAFE_SHARED", ROOT.parent / "shared")).resolve()
BENCH = SHARED / "benchmarks"

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The tiny models are dominated by per-op overhead: one thread is as fast and
# does not collapse when the other core is busy.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    if not BENCH.is_dir():
        pytest.fail(f"shared benchmark files not found at {BENCH} (set THINKSAFE_SHARED)")
    return BENCH


@pytest.fixture(scope="session")
def figstep_dir(bench_dir: Path) -> Path:
    return bench_dir / "figstep"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The project's tiny random VLM, built offline once per test session."""
    from thinksafe.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (skipped, with the reason, where none is installed)."""
    from browser import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        where = (f"THINKSAFE_CHROMIUM={os.environ['THINKSAFE_CHROMIUM']} is not a file"
                 if os.environ.get("THINKSAFE_CHROMIUM") else "Chromium is not installed (Debian: apt-get install chromium)")
        pytest.skip(f"{where}: the real-browser checks of the HTML report did not run")
    b = Browser(executable)
    yield b
    b.close()


@pytest.fixture(scope="session")
def arch_dirs(tmp_path_factory) -> dict[str, Path]:
    """A tiny random model of every architecture (``thinksafe tiny-model --arch``), built once per session."""
    from thinksafe.models.tiny import ARCHES, build_tiny_model

    root = tmp_path_factory.mktemp("arches")
    return {name: build_tiny_model(root / name, arch_name=name) for name in ARCHES}
