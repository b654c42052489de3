"""``thinksafe demo`` end to end, as a user runs it: a fresh process, offline, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str, float]:
    out = tmp_path_factory.mktemp("demo") / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "120"}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", "from thinksafe.cli import main; main()", "demo", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res.stdout, seconds


def test_demo_teaches_the_think_format(demo):
    out, stdout, seconds = demo
    assert seconds < 600
    result = json.loads((out / "comparison.json").read_text())
    think = result["metrics"]["think_format_rate"]
    assert think["before"] <= 0.1 and think["after"] >= 0.8, think
    assert result["training"]["last_loss"] < result["training"]["first_loss"] - 1
    for key in ("refusal_rate_harmful", "over_refusal_rate_benign"):
        assert set(result["metrics"][key]) == {"before", "after", "change"}
    # The printed table carries the same numbers.
    assert "think-format rate" in stdout and f"{100 * think['after']:.0f}%" in stdout
    assert "over-refusal rate on benign controls" in stdout


def test_demo_says_the_model_is_a_random_stand_in(demo):
    out, stdout, _ = demo
    result = json.loads((out / "comparison.json").read_text())
    assert result["random_stand_in"] is True
    assert "randomly initialised stand-in" in result["disclaimer"]
    assert "nothing about the safety of any real model" in result["disclaimer"]
    flat = " ".join(stdout.split())
    assert "randomly initialised stand-in" in flat and "real model" in flat


def test_demo_runs_are_ordinary_run_folders(demo):
    from typer.testing import CliRunner

    from thinksafe.cli.app import app

    out, _, _ = demo
    for name in ("before", "after"):
        folder = out / name
        for file in ("run.json", "metrics.json", "samples.jsonl", "store.sqlite", "report.html"):
            assert (folder / file).is_file(), folder / file
        rows = (folder / "samples.jsonl").read_text().splitlines()
        assert len(rows) == 24
        assert json.loads((folder / "metrics.json").read_text())["benchmark"] == "probes"
    assert json.loads((out / "after" / "run.json").read_text())["config"]["adapter"] == str(out / "adapter")
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    result = CliRunner().invoke(app, ["report", str(out / "after")])
    assert result.exit_code == 0, result.output
    try:
        import thinksafe.report.compare  # noqa: F401
    except ImportError:
        return
    assert (out / "compare.json").is_file() and (out / "compare.md").is_file()


def test_demo_shows_the_stand_ins_safety_capability_tradeoff(demo):
    out, stdout, _ = demo
    for name in ("before-capability", "after-capability"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["benchmark"] == "shape-probes" and metrics["family"] == "capability"
        assert metrics["official"]["n"] + metrics["official"]["errors"] == 16
    tradeoff = json.loads((out / "comparison.json").read_text())["paired"]["tradeoff"]
    assert tradeoff["parts"] == {"safety": ["probes (not benign)"], "over_refusal": ["probes (benign)"],
                                 "capability": ["shape-probes"]}
    (row,) = tradeoff["runs"]
    assert row["run"] == "after" and set(row["capability"]["no_answer"]) == {"base", "run"}
    flat = " ".join(stdout.split())
    assert "trade-off of the tiny random stand-in" in flat
    assert "## Safety / capability trade-off" in (out / "compare.md").read_text()
