"""``--benchmark tis-paper``: the paper's five benchmarks and the MOSSBench over-refusal control into one run folder."""

from __future__ import annotations

import json

from helpers import cli
from thinksafe.benchmarks import PRESETS
from thinksafe.benchmarks.mmsafetybench import SCENARIOS
from scripted_server import Reply, ScriptedServer
from test_mmsafetybench import write_authors_layout
from test_mssbench import make_data


NAMES = ("mmsafetybench", "figstep", "siuo", "mssbench", "mmsafeaware", "mossbench")


def preset_data(bench_dir, tmp_path):
    """One data folder per benchmark of the preset."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("figstep", "siuo", "mmsafeaware", "mossbench"):
        (data / name).symlink_to(bench_dir / name)
    write_authors_layout(data / "mmsafetybench")
    for scenario in SCENARIOS:  # the fixture fills 3 scenarios; the others are empty files
        path = data / "mmsafetybench" / "processed_questions" / f"{scenario}.json"
        if not path.exists():
            path.write_text("{}")
    make_data(data / "mssbench")
    return data


def test_tis_paper_preset_writes_one_folder_per_benchmark_and_a_family_summary(bench_dir, tmp_path):
    data = preset_data(bench_dir, tmp_path)
    with ScriptedServer(lambda req: Reply("<think>Risky.</think>No. I cannot help with that.")) as server:
        result = cli("eval", "--benchmark", "tis-paper", "--data", data, "--model", "openai/x", "--base-url",
                     server.url, "--judge", "refusal", "--limit", "6", "--out", tmp_path / "run", "--quiet", expect=1)
    out = tmp_path / "run"
    for name in NAMES:
        m = json.loads((out / name / "metrics.json").read_text())
        assert m["benchmark"] == name and m["n"] == 6
        assert (out / name / "samples.jsonl").is_file() and (out / name / "store.sqlite").is_file()
    summary = json.loads((out / "summary.json").read_text())["by_family"]
    assert set(summary["jailbreak"]) == {"mmsafetybench", "figstep"}
    assert set(summary["awareness"]) == {"siuo", "mssbench", "mmsafeaware", "mossbench"}
    # every answer refuses: no attack succeeds on the jailbreak benchmarks
    assert summary["jailbreak"]["figstep"]["asr_answer"] == 0.0
    # SIUO's images are not in the shared copy: every sample is a recorded error, none reached the model,
    # and the preset says so and exits 1 after running the others
    siuo = json.loads((out / "siuo" / "metrics.json").read_text())
    assert siuo["errors"] == 6
    assert set(json.loads((out / "summary.json").read_text())["failed"]) == {"siuo"}
    assert f"1 of {len(PRESETS['tis-paper'])} benchmarks failed" in result.output
    assert "siuo: failed: all 6 samples failed" in result.output
    # MMSafeAware ids 1..6 are over-safety items answered "No": all wrong
    assert json.loads((out / "mmsafeaware" / "metrics.json").read_text())["official"]["oversafe_accuracy"] == 0.0
    # MOSSBench ids 1..6 are benign queries the model refused: the refusal judge's "safe" reads as a refusal
    assert summary["awareness"]["mossbench"]["official"]["refusal_rate"] == 1.0
    cli("report", out)


def test_preset_runs_every_benchmark_it_can_and_lists_the_others(bench_dir, tmp_path):
    # only FigStep and MMSafeAware have data; MM-SafetyBench, the preset's first, has none
    preset = PRESETS["tis-paper"]
    data = tmp_path / "data"
    data.mkdir()
    for name in ("figstep", "mmsafeaware"):
        (data / name).symlink_to(bench_dir / name)
    with ScriptedServer(lambda req: Reply("No. I cannot help with that.")) as server:
        result = cli("eval", "--benchmark", "tis-paper", "--data", data, "--model", "openai/x", "--base-url",
                     server.url, "--judge", "refusal", "--limit", "4", "--out", tmp_path / "run", "--quiet", expect=1)
        assert len(server.log) == 8  # 4 FigStep + 4 MMSafeAware requests: nothing else reached the model
    out = tmp_path / "run"
    for name in ("figstep", "mmsafeaware"):
        assert json.loads((out / name / "metrics.json").read_text())["n"] == 4
    failed = json.loads((out / "summary.json").read_text())["failed"]
    assert set(failed) == set(preset) - {"figstep", "mmsafeaware"}
    assert all(why.startswith("failed: ") for why in failed.values())
    assert f"{len(failed)} of {len(preset)} benchmarks failed or are incomplete" in result.output
    for name in failed:
        assert f"  {name}: failed: " in result.output


def test_harmonised_preset_judges_every_benchmark_alike(bench_dir, tmp_path):
    data = preset_data(bench_dir, tmp_path)

    def respond(req):
        if req.body["model"] == "j":
            return Reply("safe" if "one word: safe or unsafe" in req.text else "not the generic rubric")
        return Reply("<think>Risky.</think>No. I cannot help with that.")

    with ScriptedServer(respond) as server:
        cli("eval", "--benchmark", "tis-paper", "--data", data, "--model", "openai/x", "--base-url", server.url,
            "--protocol", "harmonised", "--judge-model", "openai/j", "--judge-base-url", server.url,
            "--limit", "6", "--out", tmp_path / "run", "--quiet", expect=1)  # SIUO has no images here
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["by_family"]
    rows = {**summary["jailbreak"], **summary["awareness"]}
    assert set(rows) == set(NAMES)
    for name, row in rows.items():
        assert (row["protocol"], row["judge"], row["judge_spec"]) == ("harmonised", "llm:safe-unsafe", "llm"), name
        m = json.loads((tmp_path / "run" / name / "metrics.json").read_text())
        assert "official" not in m and m["targets"]["answer"]["unparsed"] == 0, name
        # every answer that reached the model was judged safe by the one generic rubric
        assert row["asr_answer"] == (None if name == "siuo" else 0.0), name
