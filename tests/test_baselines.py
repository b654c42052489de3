"""``thinksafe baselines --stand-in``: the paper's train-on-each-baseline comparison, offline on the tiny model.

Generated slices in the format of VLGuard, SPA-VL, MIS and TiS are built as released, trained with the
same rows and steps, evaluated with the base on the built-in probes, an MIS-test slice and the shape
probes, and compared (results, differences, safety / capability trade-off). A second run reuses it all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from thinksafe.train.baselines import with_sample  # noqa: E402

from helpers import cli  # noqa: E402

SETS = ("vlguard", "spavl", "mis", "tis")


def test_with_sample_replaces_earlier_values():
    assert with_sample("spavl:/d?reference=chosen&sample=9", 4, 1) == "spavl:/d?reference=chosen&sample=4&seed=1"
    assert with_sample("mis:/m.json", 2000, 0) == "mis:/m.json?sample=2000&seed=0"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baselines") / "out"
    cli("baselines", "--stand-in", "--out", out, "--rows", 4, "--steps", 2)
    return out


def test_every_set_as_released_with_the_same_budget(recipe):
    result = json.loads((recipe / "recipe.json").read_text())
    assert result["stand_in"] and "not any dataset's effect" in result["note"]
    assert result["budget"]["rows"] == 4 and result["budget"]["steps"] == 2 and list(result["sources"]) == list(SETS)
    assert "?reference=chosen" in result["sources"]["spavl"]
    rows = {name: json.loads((recipe / "data" / name / "train.json").read_text()) for name in SETS}
    assert {name: len(r) for name, r in rows.items()} == dict.fromkeys(SETS, 4)
    # each set as its release has it: MIS two images and its prose label, TiS its thought, the others an answer
    assert all(r["conversations"][0]["value"].startswith("<image><image>") and len(r["images"]) == 2
               and "<think>" not in r["conversations"][1]["value"] for r in rows["mis"])
    assert all(r["conversations"][1]["value"].startswith("<think>\n") for r in rows["tis"])
    assert all("<think>" not in r["conversations"][1]["value"] and len(r["images"]) == 1
               for name in ("vlguard", "spavl") for r in rows[name])
    configs = {name: yaml.safe_load((recipe / "adapters" / name / "train_config.yaml").read_text()) for name in SETS}
    shared = [{k: v for k, v in c.items() if k not in ("data", "out")} for c in configs.values()]
    assert all(s == shared[0] for s in shared) and shared[0]["max_steps"] == 2  # one budget for all
    for name in SETS:
        summary = json.loads((recipe / "adapters" / name / "train_summary.json").read_text())
        assert summary["steps"] == 2 and summary["data_check"]["rows"] == 4
    assert json.loads((recipe / "adapters" / "mis" / "train_summary.json").read_text())["data_check"]["images"] == 8


def test_the_comparison_table_and_trade_off(recipe):
    study = yaml.safe_load((recipe / "study.yaml").read_text())
    assert [m["name"] for m in study["models"]] == ["base", *SETS]
    assert all(m["adapter"] == str((recipe / "adapters" / m["name"]).resolve()) for m in study["models"][1:])
    md = (recipe / "recipe.md").read_text()
    assert "**4 rows** each (4 asked), **2 optimizer steps** of batch 4" in md
    results = md.split("## Results", 1)[1].split("##", 1)[0]
    assert "| base (base) | vlguard (tuned) | spavl (tuned) | mis (tuned) | tis (tuned) |" in results
    assert all(f"| {b} |" in results for b in ("probes", "mis", "shape-probes"))
    tradeoff = md.split("## Safety / capability trade-off", 1)[1]
    assert all(f"| {name} | base |" in tradeoff for name in SETS)
    data = json.loads((recipe / "study" / "study.json").read_text())
    assert not data["failures"] and len(data["runs"]) == 15
    assert {c["model"] for c in data["comparisons"] if c["tradeoff"]} == set(SETS)
    mis_runs = [r for r in data["runs"] if r["benchmark"] == "mis"]
    samples = [json.loads(line) for line in (recipe / "study" / "tis" / "mis" / "samples.jsonl").open()]
    assert len(mis_runs) == 5 and all(len(s["images"]) == 2 for s in samples)
    assert (recipe / "study" / "report.html").is_file()


def test_second_run_trains_and_evaluates_nothing_again(recipe):
    before = {name: (recipe / "adapters" / name / "adapter_model.safetensors").stat().st_mtime_ns for name in SETS}
    out = cli("baselines", "--stand-in", "--out", recipe, "--rows", 4, "--steps", 2).output
    assert all((recipe / "adapters" / name / "adapter_model.safetensors").stat().st_mtime_ns == before[name]
               for name in SETS)
    assert not any(r["ran"] for r in json.loads((recipe / "study" / "study.json").read_text())["runs"])
    assert "| base (base) | vlguard (tuned)" in out

    # other data under the same train.json path (fewer rows): every set is trained again, on the new data
    import hashlib
    cli("baselines", "--stand-in", "--out", recipe, "--rows", 3, "--steps", 2)
    for name in SETS:
        adapter = recipe / "adapters" / name
        assert (adapter / "adapter_model.safetensors").stat().st_mtime_ns != before[name]
        assert json.loads((adapter / "train_summary.json").read_text())["data_check"]["rows"] == 3
        digest = hashlib.sha256((recipe / "data" / name / "train.json").read_bytes()).hexdigest()
        assert (adapter / "data.sha256").read_text() == digest + "\n"


def test_user_errors_name_the_flag(tmp_path):
    assert "--base, --source, --rows and --steps are required" in cli("baselines", "--out", tmp_path, expect=2).output
    out = cli("baselines", "--out", tmp_path, "--base", "hf/m", "--source", "mis:/x.json", "--rows", 2, "--steps", 1,
              expect=2).output
    assert "must look like NAME=KIND:PATH" in out


def test_equal_budget_cuts_every_set_to_the_smallest(tmp_path):
    from thinksafe.errors import UsageError
    from thinksafe.train.baselines import Recipe, equal_budget

    for name, n in (("a", 6), ("b", 3)):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "tis.json").write_text(json.dumps([{"n": k} for k in range(n)]))
    recipe = Recipe(base="hf/m", out=tmp_path, sources={"a": "x", "b": "y"}, rows=5, steps=1)
    assert equal_budget(recipe, {"a": {"kept": 6}, "b": {"kept": 3}}) == 3
    a = [r["n"] for r in json.loads((tmp_path / "data" / "a" / "train.json").read_text())]
    assert len(a) == 3 and a == sorted(a) and set(a) <= set(range(6))  # a random 3 of 6, in file order
    assert [r["n"] for r in json.loads((tmp_path / "data" / "b" / "train.json").read_text())] == [0, 1, 2]
    with pytest.raises(UsageError, match="no usable rows in b"):
        equal_budget(recipe, {"a": {"kept": 6}, "b": {"kept": 0}})
