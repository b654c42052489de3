"""The model registry: its file's schema, user files merged over it, ``thinksafe models``,
and ``--model NAME`` on ``thinksafe eval`` (card settings applied, explicit flags win)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from helpers import cli
from scripted_server import Reply, ScriptedServer
from thinksafe.cli.app import app
from thinksafe.errors import UserError
from thinksafe.models.base import GenerationSettings
from thinksafe.models.registry import (FIELDS, KINDS, OUTPUT_FORMATS, SAMPLING_KEYS, SOURCED, VLLM_KEYS,
                                       builtin_path, load_registry, resolve_model)

# The reasoning models a study of the period needs, with the base each is compared with.
PAIRS = {
    "r1-onevision-7b": "qwen2.5-vl-7b-instruct", "mm-eureka-qwen-7b": "qwen2.5-vl-7b-instruct",
    "vision-r1-7b": "qwen2.5-vl-7b-instruct", "openvlthinker-7b": "qwen2.5-vl-7b-instruct",
    "vl-rethinker-7b": "qwen2.5-vl-7b-instruct", "thinklite-vl-7b": "qwen2.5-vl-7b-instruct",
    "vlaa-thinker-qwen2.5vl-7b": "qwen2.5-vl-7b-instruct", "llava-cot": "llama-3.2-11b-vision-instruct",
    "llamav-o1": "llama-3.2-11b-vision-instruct", "mulberry-llama-11b": "llama-3.2-11b-vision-instruct",
    "mulberry-qwen2-vl-7b": "qwen2-vl-7b-instruct", "qvq-72b-preview": "qwen2-vl-72b-instruct",
    "kimi-vl-a3b-thinking": "kimi-vl-a3b-instruct", "glm-4.1v-9b-thinking": "glm-4.1v-9b-base",
    "qwen3-vl-8b-thinking": "qwen3-vl-8b-instruct",
}


def _urls(src) -> list:
    return [src] if isinstance(src, str) else src


def test_registry_file_schema_every_fact_sourced_every_base_known():
    """Checks the shipped YAML directly, without the loader's own validation."""
    raw = yaml.safe_load(builtin_path().read_text(encoding="utf-8"))
    assert raw["schema"] == 1
    models = raw["models"]
    for name, e in models.items():
        assert set(e) <= set(FIELDS), name
        assert e["kind"] in KINDS and "/" in e["hub_id"], name
        assert e.get("output_format") is None or e["output_format"] in OUTPUT_FORMATS, name
        assert set(e.get("sampling") or {}) <= set(SAMPLING_KEYS), name
        assert set(e.get("vllm") or {}) <= set(VLLM_KEYS), name
        sources = e["sources"]
        assert "hub_id" in sources, f"{name}: no source at all"
        for fact in SOURCED:
            if e.get(fact) is not None:
                assert fact in sources, f"{name}: {fact} has no source"
        for fact, src in sources.items():
            assert fact in SOURCED, name
            assert _urls(src) and all(u.startswith("https://") and " " not in u for u in _urls(src)), name
        for q in e.get("quirks") or []:
            assert q["text"].strip() and q["source"].startswith("https://"), name
        if e.get("base") is not None:
            assert e["base"] in models or e.get("base_external"), f"{name}: unknown base {e['base']}"
            assert e["base_relation"] in ("trained_from", "same_family", "sibling_edition"), name
    for reasoning, base in PAIRS.items():
        assert models[reasoning]["kind"] == "reasoning" and models[reasoning]["base"] == base
        assert models[base]["kind"] == "base"
    assert len(load_registry().entries) == len(models)  # the loader's validation agrees


def test_bad_user_registry_lists_every_problem_with_file_and_entry(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text(yaml.safe_dump({"models": {
        "new-model": {"kind": "reasoning", "hub_id": "me/new", "base": "not-there", "base_relation": "trained_from",
                      "temprature": 0.5, "system_prompt": "Think.", "sources": {"hub_id": "http://insecure"}},
        "Bad Name": {"kind": "thinker", "hub_id": "nohub", "output_format": "xml", "sampling": {"temperature": "hot"},
                     "sources": {"hub_id": "https://x.org/a"}},
    }}))
    with pytest.raises(UserError) as err:
        load_registry(bad)
    msg = str(err.value)
    for problem in (f"{bad}: model new-model: unknown field 'temprature'",
                    "model new-model: base 'not-there' is not a registry entry",
                    "model new-model: sources: hub_id must be an https URL",
                    "model new-model: system_prompt is set but has no source",
                    "model Bad Name: names are lower-case", "model Bad Name: kind must be one of base, reasoning",
                    "model Bad Name: hub_id must be an OWNER/NAME hub id",
                    "model Bad Name: output_format must be one of",
                    "model Bad Name: sampling: temperature must be a number"):
        assert problem in msg, problem


def test_user_registry_merges_over_the_builtin_one(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"models": {
        "r1-onevision-7b": {"sampling": {"max_tokens": 8192, "temperature": 0.7},
                            "sources": {"sampling": "https://example.org/our-protocol"}},
        "my-thinker": {"kind": "reasoning", "hub_id": "lab/my-thinker", "base": "org/closed-base",
                       "base_external": True, "base_relation": "trained_from", "output_format": "think_tags",
                       "sources": {"hub_id": "https://example.org/my-thinker",
                                   "output_format": "https://example.org/my-thinker#format"}},
    }}))
    reg = load_registry(mine)
    r1 = reg.require("r1-onevision-7b")
    assert r1["sampling"] == {"max_tokens": 8192, "temperature": 0.7}
    assert r1.source("sampling") == ["https://example.org/our-protocol"]
    assert r1["base"] == "qwen2.5-vl-7b-instruct" and r1.source("base")  # untouched fields and sources stay
    assert reg.require("LAB/My-Thinker").name == "my-thinker"  # by hub id, any case
    listing = cli("models", "--registry", mine)
    assert "my-thinker" in listing.output and "r1-onevision-7b" in listing.output
    shown = cli("models", "show", "my-thinker", "--registry", mine).output
    assert "org/closed-base (external)" in shown and "https://example.org/my-thinker#format" in shown


def test_models_show_works_offline_and_imports_no_ml_library():
    code = ("import sys; from typer.testing import CliRunner; from thinksafe.cli.app import app; "
            "r = CliRunner().invoke(app, ['models', 'show', 'r1-onevision-7b']); print(r.output); "
            "print('EXIT', r.exit_code, 'HEAVY', sorted(m for m in ('torch', 'transformers', 'huggingface_hub') "
            "if m in sys.modules))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "no_proxy": "*", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "EXIT 0 HEAVY []" in out
    lines = out.splitlines()
    assert lines[0] == "r1-onevision-7b - R1-Onevision-7B (reasoning)"
    assert "  hub id             Fancy-MLLM/R1-Onevision-7B" in lines
    assert "  base               qwen2.5-vl-7b-instruct: trained from this checkpoint (the source says so)" in lines
    assert "                       source: https://huggingface.co/Fancy-MLLM/R1-OneVision-7B" in lines
    assert "  system prompt      not stated on the card" in lines
    assert "  sampling           max_tokens=4096" in lines
    assert "  serve:  vllm serve Fancy-MLLM/R1-Onevision-7B" in lines


def test_models_show_builds_the_vllm_command_and_names_unknown_models():
    shown = cli("models", "show", "vision-r1-7b").output
    assert "vllm serve Osilly/Vision-R1-7B --dtype bfloat16 --limit-mm-per-prompt image=5" in shown
    result = CliRunner().invoke(app, ["models", "show", "no-such-model"])
    assert result.exit_code != 0
    message = str(result.exception) if isinstance(result.exception, UserError) else result.output
    assert "unknown model 'no-such-model'" in message


def test_resolve_spec_passes_through_and_hf_notes_remote_code():
    s = GenerationSettings()
    assert resolve_model("openai/x", s, explicit=set(), base_url="http://h/v1").record is None
    r = resolve_model("kimi-vl-a3b-instruct", s, explicit=set(), base_url=None)
    assert r.spec == "hf/moonshotai/Kimi-VL-A3B-Instruct"
    assert r.notes and "trust_remote_code=True" in r.notes[0]
    assert not resolve_model("kimi-vl-a3b-instruct", s, explicit={"trust_remote_code"}, base_url=None).notes
    r = resolve_model("qwen3-vl-8b-thinking", s, explicit=set(), base_url=None)
    assert r.record["not_applied"].keys() == {"top_k", "repetition_penalty", "presence_penalty"}


def _run(figstep_dir, out, *args):
    bodies = []

    def respond(req):
        bodies.append(req.body)
        return Reply("<think>Hm.</think>I cannot help with that.")

    with ScriptedServer(respond) as server:
        cli("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--limit", "2",
            "--base-url", server.url, "--judge", "refusal", "--out", out, "--quiet", *args)
    return bodies, json.loads((out / "run.json").read_text())


def test_eval_model_name_applies_card_settings_and_explicit_flags_win(figstep_dir, tmp_path):
    bodies, run = _run(figstep_dir, tmp_path / "a", "--model", "vision-r1-7b", "--temperature", "0.2")
    assert len(bodies) == 2
    for body in bodies:
        assert body["model"] == "Osilly/Vision-R1-7B"
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.2, 0.95, 4096)
        assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    entry = run["config"]["registry_entry"]
    assert run["model"] == "openai/Osilly/Vision-R1-7B"
    assert entry["applied"] == {"system": "You are a helpful assistant.", "top_p": 0.95, "max_tokens": 4096}
    assert entry["overridden_by_flags"] == {"temperature": 0.6}
    assert entry["sources"]["top_p"] == [
        "https://github.com/Osilly/Vision-R1/blob/c0616815edeec449c6e42de4300b875d608230c5/README.md#L206-L211"]
    # a flag given with its default value is still the user's choice
    bodies, run = _run(figstep_dir, tmp_path / "b", "--model", "qwen3-vl-8b-thinking", "--max-tokens", "4096",
                       "--system", "Be careful.")
    body = bodies[0]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.6, 0.95, 4096, 1234)
    assert (body["top_k"], body["repetition_penalty"], body["presence_penalty"]) == (20, 1.0, 0.0)
    assert body["messages"][0]["content"] == "Be careful."
    assert run["config"]["registry_entry"]["overridden_by_flags"] == {"max_tokens": 40960}


def test_eval_rejects_unknown_model_names(figstep_dir, tmp_path):
    result = CliRunner().invoke(app, ["eval", "--benchmark", "figstep", "--model", "no-such-model",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and not (tmp_path / "x").exists()
    message = str(result.exception) if isinstance(result.exception, UserError) else result.output
    assert "unknown model 'no-such-model'" in message
