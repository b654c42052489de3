"""The study config: checks before anything runs, default comparisons, the plan, the HTML hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli
from thinksafe.benchmarks import PRESETS
from thinksafe.errors import UserError
from thinksafe.study import load_study, make_jobs, plan
from thinksafe.study import report as study_report


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


BASIC = """
out: runs
benchmarks: tis-paper
data: data
models:
  - {model: qwen2.5-vl-7b-instruct, base_url: "http://a:8000/v1"}
  - {model: r1-onevision-7b, base_url: "http://b:8000/v1"}
  - {name: r1-tis, model: hf/Fancy-MLLM/R1-Onevision-7B, adapter: lora, generation: {max_tokens: 100}}
  - {name: r1-local, model: r1-onevision-7b}
"""


def test_defaults_preset_paths_and_comparisons(tmp_path):
    cfg = load_study(write(tmp_path, BASIC))
    assert cfg.out == tmp_path / "runs"
    assert [b.name for b in cfg.benchmarks] == list(PRESETS["tis-paper"])
    assert cfg.benchmarks[1].data == tmp_path / "data" / "figstep"
    roles = {m.name: (m.role, m.compare_to) for m in cfg.models}
    # registry kinds give the roles; the reasoning models meet their registry base; the adapter makes a tuned model
    assert roles["qwen2.5-vl-7b-instruct"] == ("base", [])
    assert roles["r1-onevision-7b"] == ("reasoning", ["qwen2.5-vl-7b-instruct"])
    assert roles["r1-local"] == ("reasoning", ["qwen2.5-vl-7b-instruct"])
    # the tuned model meets its untuned twin (same weights, same hf/ backend) and the twin's base
    assert roles["r1-tis"] == ("tuned", ["r1-local", "qwen2.5-vl-7b-instruct"])
    jobs, specs = make_jobs(cfg)
    assert specs == {"qwen2.5-vl-7b-instruct": "openai/Qwen/Qwen2.5-VL-7B-Instruct",
                     "r1-onevision-7b": "openai/Fancy-MLLM/R1-Onevision-7B",
                     "r1-tis": "hf/Fancy-MLLM/R1-Onevision-7B", "r1-local": "hf/Fancy-MLLM/R1-Onevision-7B"}
    assert len(jobs) == 4 * len(PRESETS["tis-paper"])
    tuned = next(j for j in jobs if j.model == "r1-tis" and j.benchmark == "figstep")
    assert tuned.cfg.out == tmp_path / "runs" / "r1-tis" / "figstep" and tuned.cfg.adapter == "lora"
    assert tuned.cfg.settings.max_tokens == 100 and tuned.endpoint == "local"
    reasoning = next(j for j in jobs if j.model == "r1-onevision-7b")
    assert reasoning.cfg.settings.max_tokens == 4096 and reasoning.endpoint == "http://b:8000/v1"


def test_tuned_model_meets_its_untuned_twin_and_the_twins_base(tmp_path):
    cfg = load_study(write(tmp_path, """
out: runs
benchmarks: [figstep]
models:
  - {name: base, model: openai/b, base_url: "http://a/v1", role: base}
  - {name: r1, model: openai/r1, base_url: "http://b/v1", role: reasoning}
  - {name: r1-tis, model: openai/r1, base_url: "http://c/v1", role: tuned}
  - {name: lonely, model: openai/x, base_url: "http://d/v1", role: reasoning, compare_to: r1}
"""))
    assert cfg.model("r1-tis").compare_to == ["r1", "base"]
    assert cfg.model("lonely").compare_to == ["r1"]


@pytest.mark.parametrize("text, message", [
    ("out: r\nbenchmarks: figstep\nmodels: [{model: openai/x, base_url: u, role: base, colour: red}]",
     "models[0]: unknown key 'colour'"),
    ("out: r\nbenchmarks: [figstep, nope]\nmodels: [{model: openai/x, base_url: u, role: base}]",
     "benchmarks[1]: unknown benchmark 'nope'"),
    ("out: r\nbenchmarks: figstep\nmodels: [{model: not-in-registry}]",
     "models[0]: model 'not-in-registry' is not openai/NAME, hf/PATH or a registry name"),
    ("out: r\nbenchmarks: figstep\nmodels: [{model: openai/x, base_url: u}]", "models[0]: role must be one of"),
    ("out: r\nbenchmarks: figstep\nmodels: [{model: openai/x, role: base}, {model: openai/x, role: base}]",
     "two models are named 'x'"),
    ("out: r\nbenchmarks: figstep\nmodels: [{model: openai/x, role: reasoning, compare_to: y}]",
     "x: compare_to 'y' is not another model of the study"),
    ("out: r\nbenchmarks: figstep\ngeneration: {temperature: hot}\nmodels: [{model: openai/x, role: base}]",
     "generation: temperature: expected int or float"),
    ("benchmarks: figstep\nmodels: [{model: openai/x, role: base}]", "'out' is required"),
    ("version: 2\nout: r\nbenchmarks: figstep\nmodels: [{model: openai/x, role: base}]", "version 2 is not supported"),
])
def test_config_errors_name_the_file_and_the_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_study(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_dry_run_plans_without_touching_anything(tmp_path):
    path = write(tmp_path, BASIC)
    p = plan(load_study(path))
    n = 4 * len(PRESETS["tis-paper"])
    assert [j["state"] for j in p["jobs"]] == ["todo"] * n
    assert ("qwen2.5-vl-7b-instruct", "r1-onevision-7b") in p["comparisons"]
    out = cli("study", path, "--dry-run").output
    assert f"0 of {n} runs done; {n} to run." in out
    assert not (tmp_path / "runs").exists()


def test_study_json_is_plain_json(tmp_path):
    """The writer produces a file json can read back, and study.md from the same dict."""
    study = {"schema": "thinksafe.study/1", "config": str(tmp_path / "s.yaml"), "stats": {
        "level": 0.95, "n_resamples": 100, "seed": 0, "scale": "x", "unjudged_policy": "y"},
        "models": [{"name": "m", "role": "base"}], "benchmarks": [
            {"name": "figstep", "family": "jailbreak", "metric": "asr", "goal": "safety", "direction": "lower is safer"}],
        "values": {"m": {"figstep": {"status": "done", "value": 0.25, "ci": [0.1, 0.5]}}},
        "comparisons": [], "failures": [], "warnings": []}
    js, md = study_report.write_study(study, tmp_path)
    assert json.loads(js.read_text()) == study
    assert "| jailbreak | figstep | ASR % (lower is safer) | 25.0 [10.0, 50.0] |" in md.read_text()


def test_adapter_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "runs" / "tis-lora").mkdir(parents=True)
    path = tmp_path / "cfg" / "study.yaml"
    path.write_text("""
version: 1
out: out
benchmarks: figstep
models:
  - {name: local, model: hf/Fancy-MLLM/R1-Onevision-7B, adapter: runs/tis-lora}
  - {name: hub, model: hf/Fancy-MLLM/R1-Onevision-7B, adapter: someone/tis-lora}
  - {name: absolute, model: hf/Fancy-MLLM/R1-Onevision-7B, adapter: /abs/tis-lora}
""")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    adapters = {m.name: m.adapter for m in load_study(path).models}
    assert adapters == {"local": str(tmp_path / "cfg" / "runs" / "tis-lora"), "hub": "someone/tis-lora",
                        "absolute": "/abs/tis-lora"}
