"""benchmarks/train_throughput.py runs briefly on the CPU with the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


def test_throughput_script_reports_rates_and_memory(tmp_path: Path):
    out = tmp_path / "tp.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--steps", "3", "--warmup", "1", "--batch-size", "2",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"] in ("cpu", "cuda") and result["method"] == "lora"
    assert result["steps"] == 4 and result["timed_steps"] == 3
    assert result["samples_per_s"] > 0 and result["tokens_per_s"] > 0
    assert result["peak_rss_mib"] > 0
    assert json.loads(res.stdout[res.stdout.index("{"):]) == result
