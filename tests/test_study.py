"""``thinksafe study`` end to end: three scripted models on three loopback servers,
one model whose server is down, one benchmark without data.

Every cell of study.md is checked against values computed here from the known
behaviours: Wilson intervals with scipy, McNemar p-values with scipy's binomial
test, bootstrap intervals by resampling the known paired outcomes with the
documented seed (``[seed, crc32(benchmark)]``).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from helpers import cli, figstep_tiny_keys
from scripted_server import Reply, ScriptedServer
from thinksafe.benchmarks import get_benchmark
from thinksafe.metrics.stats import bootstrap_diffs, percentile_ci

REFUSE = "I'm sorry, I cannot help with that."
COMPLY = "Sure: 1. first 2. second 3. third"
N_FIG, N_AWARE, RESAMPLES = 50, 20, 2000

# Known behaviours: which FigStep-tiny samples each model refuses (= safe), and which of the first 20
# MMSafeAware items (all over-safety items: the right answer is "Yes") it answers "Yes".
REFUSES = {"base": set(range(40)), "reasoning": set(range(25)), "tuned": set(range(48))}
SAYS_YES = {"base": set(range(14)), "reasoning": set(range(12)), "tuned": set(range(20))}
THINKS = {"base": False, "reasoning": True, "tuned": True}


def responder(model: str, fig_index: dict[str, int], aware_index: dict[str, int]):
    def reply(req):
        think = "<think>Let me see.</think>" if THINKS[model] else ""
        if req.key in fig_index:
            return Reply(think + (REFUSE if fig_index[req.key] in REFUSES[model] else COMPLY))
        yes = aware_index[req.text] in SAYS_YES[model]
        return Reply(think + ("Yes, it is safe." if yes else "No."))
    return reply


def write_config(path: Path, urls: dict[str, str], figstep_dir: Path, aware_dir: Path) -> None:
    path.write_text(f"""
version: 1
out: out
stats: {{resamples: {RESAMPLES}, seed: 0}}
generation: {{temperature: 0}}
benchmarks:
  - {{name: figstep, subset: tiny, data: {figstep_dir}}}
  - {{name: mmsafeaware, data: {aware_dir}, limit: {N_AWARE}}}
  - {{name: hades, data: {path.parent / 'no-such-folder'}}}
models:
  - {{name: base, model: openai/base-m, base_url: "{urls['base']}", role: base, concurrency: 4}}
  - {{name: reasoning, model: r1-onevision-7b, base_url: "{urls['reasoning']}", concurrency: 4}}
  - {{name: tuned, model: openai/tuned-m, base_url: "{urls['tuned']}", role: tuned, concurrency: 4,
     compare_to: [reasoning, base]}}
  - {{name: down, model: openai/down-m, base_url: "http://127.0.0.1:9/v1", role: reasoning}}
""")


# ---- expected values, computed from the behaviours ----------------------------------------

def safe_vectors(bench: str) -> dict[str, np.ndarray]:
    """Per-sample right/safe indicator of each model, for the samples that reached the model."""
    good, n = (REFUSES, N_FIG) if bench == "figstep" else (SAYS_YES, N_AWARE)
    return {m: np.array([float(i in good[m]) for i in range(n) if i not in _BAD[bench]]) for m in good}


def pct(x: float, signed: bool = False) -> str:
    v = round(100 * x, 1) + 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def value_cell(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{pct(k / n)} [{pct(ci.low)}, {pct(ci.high)}]"


def expected_values() -> dict[tuple[str, str], str]:
    out = {}
    for m in REFUSES:
        fig, aware = safe_vectors("figstep")[m], safe_vectors("mmsafeaware")[m]
        out[("figstep", m)] = value_cell(int((fig == 0).sum()), fig.size)  # ASR: complied / judged
        out[("mmsafeaware", m)] = value_cell(int(aware.sum()), aware.size)  # accuracy: right / judged
    return out


def expected_diff(bench: str, ref: str, model: str) -> list[str]:
    """Δ, Δ CI, improved / worsened, McNemar p, pairs (dropped), flag for one pair."""
    v = safe_vectors(bench)
    a, b = v[ref], v[model]
    # pairs are taken in sorted sample-id order (ids sort as strings)
    ids = [sid for i, sid in enumerate(_IDS[bench]) if i not in _BAD[bench]]
    order = sorted(range(len(a)), key=lambda i: ids[i])
    a, b = a[order], b[order]
    dropped = len(_BAD[bench])
    point, reps = bootstrap_diffs(a, b, RESAMPLES, [0, zlib.crc32(bench.encode())])
    lo, hi = percentile_ci(reps, 0.95)
    improved, worsened = int(((a == 0) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())
    p = binomtest(min(improved, worsened), improved + worsened, 0.5).pvalue if improved + worsened else 1.0
    flag = "DEGRADED" if hi < 0 else "improved" if lo > 0 else ""
    return [pct(point, True), f"[{pct(lo, True)}, {pct(hi, True)}]", f"{improved} / {worsened}",
            f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}", f"{len(a)} ({dropped})", flag]


_IDS: dict[str, list[str]] = {}
_BAD: dict[str, set[int]] = {}
"""Samples the loader marks bad (e.g. an image missing from the shared copy): never sent, never paired."""


def md_rows(md: str, heading: str) -> list[list[str]]:
    """The body rows of the table under a '## heading'."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


# ---- the test -------------------------------------------------------------------------------

@pytest.fixture()
def study(tmp_path, figstep_dir, bench_dir):
    aware_dir = bench_dir / "mmsafeaware"
    fig_keys = figstep_tiny_keys(figstep_dir)
    fig_index = {key: i for i, (_, key) in enumerate(fig_keys)}
    aware = list(get_benchmark("mmsafeaware")(data=aware_dir, limit=N_AWARE).samples())
    aware_index = {s.prompt: i for i, s in enumerate(aware)}
    _IDS["figstep"] = [sid for sid, _ in fig_keys]
    _IDS["mmsafeaware"] = [s.id for s in aware]
    _BAD["figstep"] = set()
    _BAD["mmsafeaware"] = {i for i, s in enumerate(aware) if s.error}
    servers = {m: ScriptedServer(responder(m, fig_index, aware_index), latency=0.02) for m in REFUSES}
    for s in servers.values():
        s.__enter__()
    config = tmp_path / "study.yaml"
    write_config(config, {m: s.url for m, s in servers.items()}, figstep_dir, aware_dir)
    yield config, servers
    for s in servers.values():
        s.__exit__(None, None, None)


def test_study_runs_compares_and_resumes(study):
    config, servers = study
    out = config.parent / "out"
    first = cli("study", config, "--quiet", expect=1)
    assert "6 run(s) failed or are incomplete" in first.output
    assert "down x figstep: failed: endpoint http://127.0.0.1:9/v1 is unreachable" in first.output
    md = (out / "study.md").read_text()
    result = json.loads((out / "study.json").read_text())
    assert result["schema"] == "thinksafe.study/1"

    # every model x benchmark is an ordinary run folder
    for m in ("base", "reasoning", "tuned"):
        for bench, n in (("figstep", N_FIG), ("mmsafeaware", N_AWARE)):
            metrics = json.loads((out / m / bench / "metrics.json").read_text())
            assert metrics["n"] == n and metrics["errors"] == len(_BAD[bench])
    assert sum(len(s.log) for s in servers.values()) == 3 * (N_FIG + N_AWARE - len(_BAD["mmsafeaware"]))

    # the results table: every cell
    values = expected_values()
    rows = md_rows(md, "Results")
    assert [r[:3] for r in rows] == [
        ["awareness", "mmsafeaware", "accuracy % (higher is safer)"],
        ["jailbreak", "figstep", "ASR % (lower is safer)"],
        ["jailbreak", "hades", "ASR % (lower is safer)"]]
    for row in rows[:2]:
        assert row[3:] == [values[(row[1], m)] for m in ("base", "reasoning", "tuned")] + ["failed"]
    assert rows[2][3:] == ["failed"] * 4
    assert "| family | benchmark | metric | base (base) | reasoning (reasoning) | tuned (tuned) | down (reasoning) |" in md

    # the differences table: every cell, including a degradation that fires and one that must not
    diffs = md_rows(md, "Differences")
    expected = []
    for model, ref in (("reasoning", "base"), ("tuned", "reasoning"), ("tuned", "base")):
        fig, aware = expected_diff("figstep", ref, model), expected_diff("mmsafeaware", ref, model)
        expected += [[model, ref, "jailbreak", "figstep", *fig], [model, ref, "awareness", "mmsafeaware", *aware],
                     [model, ref, "awareness", "mean of mmsafeaware", *aware],
                     [model, ref, "jailbreak", "mean of figstep", *fig]]
    expected.append(["down", "base", "", "", "-", "-", "-", "-", "-", "not compared: down has no finished benchmark"])
    assert diffs == expected
    assert diffs[0][-1] == "DEGRADED"      # reasoning vs base on FigStep: 15 worsened, none improved
    assert diffs[1][-1] == ""              # reasoning vs base on MMSafeAware: 2 worsened, CI reaches 0
    assert diffs[0][4] == "-30.0" and diffs[0][6] == "0 / 15"
    assert diffs[8][4] == "+16.0" and diffs[8][-1] == "improved"  # tuned vs base on FigStep

    # the trade-off: MMSafeAware's over-safety prompts are the over-refusal side; no capability benchmark ran
    tradeoff = md_rows(md, "Safety / capability trade-off")
    assert [r[:2] for r in tradeoff] == [["reasoning", "base"], ["tuned", "reasoning"], ["tuned", "base"]]
    assert all(r[4] == "-" for r in tradeoff)  # capability column

    # failures are listed with their reason
    fails = {(f["model"], f["benchmark"]): f for f in result["failures"]}
    assert set(fails) == {("down", "figstep"), ("down", "mmsafeaware"), ("down", "hades"),
                          ("base", "hades"), ("reasoning", "hades"), ("tuned", "hades")}
    assert "No such file or directory" in fails[("base", "hades")]["error"]
    assert "unreachable" in fails[("down", "figstep")]["error"]

    # one HTML page for the whole study: the models that ran, bases first, with the comparison
    page = (out / "report.html").read_text()
    data = json.loads(page.split("<script type='application/json' id='ts-data'>", 1)[1].split("</script>", 1)[0])
    assert data["runs"] == ["base", "reasoning", "tuned"]
    # `thinksafe report` on the study folder reads the study.json the study wrote: the same runs
    cli("report", out, "--html", config.parent / "again.html")
    again = (config.parent / "again.html").read_text()
    data = json.loads(again.split("<script type='application/json' id='ts-data'>", 1)[1].split("</script>", 1)[0])
    assert data["runs"] == ["base", "reasoning", "tuned"]

    # a rerun makes no request at all and writes the same tables
    before = [len(s.log) for s in servers.values()]
    cli("study", config, "--quiet", expect=1)
    assert [len(s.log) for s in servers.values()] == before
    assert (out / "study.md").read_text() == md
    ran = {(r["model"], r["benchmark"]): r["ran"] for r in json.loads((out / "study.json").read_text())["runs"]}
    assert not any(ran[(m, b)] for m in ("base", "reasoning", "tuned") for b in ("figstep", "mmsafeaware"))

    # the dry run says what is done
    plan = cli("study", config, "--dry-run")
    assert "6 of 12 runs done; 6 to run." in plan.output


def test_registry_name_settings_reach_the_server_and_run_json(study):
    config, servers = study
    out = config.parent / "out"
    cli("study", config, "--quiet", expect=1)
    run = json.loads((out / "reasoning" / "figstep" / "run.json").read_text())
    assert run["model"] == "openai/Fancy-MLLM/R1-Onevision-7B"
    entry = run["config"]["registry_entry"]
    assert entry["name"] == "r1-onevision-7b" and entry["applied"] == {"max_tokens": 4096}
    assert run["config"]["settings"]["max_tokens"] == 4096
    assert {r["model"] for r in servers["reasoning"].log} == {"Fancy-MLLM/R1-Onevision-7B"}
    assert json.loads((out / "base" / "figstep" / "run.json").read_text())["config"]["registry_entry"] is None


def test_servers_ran_at_the_same_time(study):
    config, servers = study
    cli("study", config, "--quiet", expect=1)
    spans = [(min(r["start"] for r in s.log), max(r["end"] for r in s.log)) for s in servers.values()]
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_endpoint_check_probes_each_url_of_a_fleet():
    """A fleet's comma-joined --base-url is split: the group is down only if every URL is."""
    import http.server
    import threading

    from thinksafe.study.runner import check_endpoint

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        good = f"http://127.0.0.1:{server.server_port}/v1"
        assert check_endpoint(f"http://127.0.0.1:9/v1,{good}") is None
        assert check_endpoint("http://127.0.0.1:9/v1, http://127.0.0.1:7/v1/") == (
            "endpoint http://127.0.0.1:9/v1 is unreachable ([Errno 111] Connection refused); "
            "endpoint http://127.0.0.1:7/v1 is unreachable ([Errno 111] Connection refused)")
    finally:
        server.shutdown()
        server.server_close()
