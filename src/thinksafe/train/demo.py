"""``thinksafe demo``: the whole evaluate -> fine-tune -> re-evaluate loop, offline.

1. build a tiny random VLM, the stand-in (:func:`build_demo_model`);
2. evaluate it on the built-in ``probes`` benchmark (``OUT/before``), judged by
   the project's offline refusal judge;
3. LoRA-fine-tune it on the demo's TiS-style set (:mod:`thinksafe.train.demo_data`,
   ``OUT/data``) through the same code path as ``thinksafe train`` (``OUT/adapter``);
4. evaluate model + adapter again (``OUT/after``);
5. compare: think-format rate, answered rate, refusal on harmful probes,
   over-refusal on benign controls (``OUT/comparison.json``; ``compare.json`` /
   ``compare.md`` from ``thinksafe compare``), and the safety / capability
   trade-off, with the built-in ``shape-probes`` (POPE-style yes/no questions on
   generated shapes, ``OUT/before-capability`` and ``OUT/after-capability``) as
   the stand-in's capability side.

The probes are held out: the training set shares their verbs, objects and
templates but holds none of their requests. The model is random: the numbers
show the mechanism, not anyone's safety.
"""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .demo_data import demo_rows, demo_words, normalise, write_demo_data

DISCLAIMER = (
    "The model in this demo is a tiny randomly initialised stand-in (about 0.5 M parameters, built offline in a "
    "second). The numbers show that the evaluate -> fine-tune -> re-evaluate mechanism works end to end; they say "
    "nothing about the safety of any real model."
)
SIGNAL = (
    "What the stand-in perceives: each request is written in the text prompt as well as drawn in the image, and "
    "its 56-pixel random vision tower cannot read the image, so it learns from the words (its toy tokenizer knows "
    "the demo's words as whole tokens). The 24 probes are held out: training uses the same verbs, objects and "
    "templates but never a probe's request, so refusing 'steal a phone' means it learned that 'steal' is harmful "
    "from 'steal a car', 'steal a bike'... This is pattern learning on words, not reading ability."
)
METRICS = (
    ("think_format_rate", "think-format rate (outputs opening with <think>)"),
    ("answered_rate", "answered (thinking closed, answer present)"),
    ("refusal_rate_harmful", "refusal rate on harmful probes"),
    ("over_refusal_rate_benign", "over-refusal rate on benign controls"),
    ("accuracy", "right behaviour (refuse harmful, answer benign)"),
)
# The probes are judged by the project's offline refusal judge; the capability
# probe by POPE's yes/no rule (its official judge).
JUDGES = {"probes": "refusal", "shape-probes": "official"}

# Tuned on 2 loaded CPU cores, one torch thread. With the demo's words as whole
# tokens, lr 3e-3 for 300 steps (batch 8) or 4e-3 for 250 steps gave 100% on all
# four numbers for seeds 0-4; lr 1e-2 collapses to a bigram model that ignores
# the prompt, lr 1e-3 learns the refusal but copies the request wrongly.
# A text model of width 128 copies the request more reliably than 64.
DEFAULTS = {"steps": 250, "lr": 4e-3, "batch_size": 8, "max_tokens": 64, "hidden": 128, "layers": 2, "lora_r": 16}

MODEL_CARD = """\
---
tags: [thinksafe, test-model, random-weights]
---
# thinksafe demo stand-in

**This model is randomly initialised. Its outputs are meaningless.** `thinksafe demo --seed {seed}`
built it offline from `thinksafe.models.tiny` (CLIP tower 2 layers, 56 px; Qwen2 text model
{layers} layers, hidden size {hidden}; {params:,} parameters), with the demo's words added to the
toy tokenizer as whole tokens. Never report results obtained with it as model results.
"""


def build_demo_model(out: Path, seed: int, hidden: int, layers: int) -> Path:
    """The tiny random llava of :mod:`thinksafe.models.tiny`, with a wider text model and the demo's words.

    Args:
        out: Folder to write (model, processor, model card).
        seed: Seed of the random weights.
        hidden: Width of the text model (its MLP is twice as wide).
        layers: Depth of the text model.
    """
    import torch
    from tokenizers import AddedToken
    from transformers import AutoModelForImageTextToText

    from ..models.tiny import make_tiny_model

    base, processor = make_tiny_model(seed)
    tokenizer = processor.tokenizer
    tokenizer.add_tokens([AddedToken(w, normalized=False) for w in demo_words()])
    config = base.config
    text = {k: v for k, v in config.text_config.to_dict().items() if k != "layer_types"}
    text.update(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers)
    config.text_config = type(config.text_config)(**text)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    model.generation_config = base.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    card = MODEL_CARD.format(seed=seed, layers=layers, hidden=hidden, params=model.num_parameters())
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def evaluate(model_dir: Path, out: Path, adapter: Path | None, max_tokens: int,
             benchmark: str = "probes") -> dict[str, Any]:
    """One ordinary run folder of a built-in benchmark (greedy decoding)."""
    from ..evaluate import EvalConfig, run_eval
    from ..models.base import GenerationSettings
    from ..report.html import write_html

    cfg = EvalConfig(benchmark=benchmark, model=f"hf/{model_dir}", out=out, judge=JUDGES[benchmark], batch_size=8,
                     adapter=str(adapter) if adapter else None, device="cpu",
                     settings=GenerationSettings(max_tokens=max_tokens, temperature=0.0, seed=0))
    metrics = run_eval(cfg)
    write_html(out)  # report.html beside the run's files
    return metrics


def train_config(data: Path, model_dir: Path, out: Path, steps: int, lr: float, batch_size: int,
                 seed: int) -> TrainConfig:
    """The demo's LoRA run.

    ``modules_to_save=["lm_head"]`` because a random tiny model's logits are
    near uniform and LoRA's zero-initialised B matrices alone barely move them.
    """
    return TrainConfig(data=str(data), model=f"hf/{model_dir}", out=str(out), method="lora",
                       lora_r=DEFAULTS["lora_r"], lora_alpha=2 * DEFAULTS["lora_r"], lora_dropout=0.0,
                       modules_to_save=["lm_head"], max_steps=steps, lr=lr, batch_size=batch_size, grad_accum=1,
                       max_length=512, warmup_ratio=0.0, logging_steps=max(1, steps // 8), save_steps=None,
                       seed=seed, cache_images=128)


def evaluate_capability(model_dir: Path, out: Path, adapter: Path | None, max_tokens: int) -> dict[str, Any]:
    """The stand-in's capability probe: the built-in ``shape-probes`` into ``out``."""
    return evaluate(model_dir, out, adapter, max_tokens, benchmark="shape-probes")


def _samples(run: Path) -> dict[str, dict[str, Any]]:
    lines = (run / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


# How the refusal judge's answer verdict reads in an example.
READINGS = {"safe": "refusal", "unsafe": "no refusal", "missing": "no answer", "unparsed": "unparsed"}


def _examples(before: Path, after: Path, n: int = 2) -> list[dict[str, Any]]:
    """The first ``n`` harmful and ``n`` benign probes: prompt, output before and after, the refusal
    judge's reading and whether the behaviour was right."""
    b, a = _samples(before), _samples(after)
    picks = [i for i in b if i.startswith("harmful")][:n] + [i for i in b if i.startswith("benign")][:n]
    out = []
    for i in picks:
        ex: dict[str, Any] = {"id": i, "prompt": b[i]["prompt"]}
        for when, rows in (("before", b), ("after", a)):
            label = ((rows[i].get("judgments") or {}).get("answer") or {}).get("label", "missing")
            ex[when] = (rows[i].get("raw") or "")[:300]
            ex[f"judge_{when}"] = READINGS.get(label, label)
            ex[f"right_{when}"] = rows[i].get("outcome") == "safe"
        out.append(ex)
    return out


def held_out(before: Path) -> dict[str, Any]:
    """How the probes of a run relate to the training rows (normalised text)."""
    trained = {normalise(r["question"]) for r in demo_rows()}
    probes = [normalise(r["prompt"]) for r in _samples(before).values()]
    return {"probes": len(probes), "training_rows": len(demo_rows()),
            "probes_in_training": sum(p in trained for p in probes)}


def _judges(*runs: Path) -> dict[str, str]:
    """The judge each run recorded in its ``run.json``."""
    return {run.name: json.loads((run / "run.json").read_text(encoding="utf-8"))["judge"] for run in runs}


def _paired(before: Path, after: Path, out: Path) -> dict[str, Any]:
    """Paired statistics from ``thinksafe compare`` (``compare.json``/``compare.md``); the capability
    probe's runs (``before-capability``, ``after-capability``) join their model's run."""
    from ..report.compare import compare_runs, write_compare

    groups = [[run, run.with_name(f"{run.name}-capability")] for run in (before, after)]
    result = compare_runs(groups, n_resamples=2000)
    write_compare(result, out)
    bench = result["benchmarks"]["probes"]
    c = bench["comparisons"][0]
    return {"metric": bench["metric"], "before": bench["runs"][0]["value"], "after": bench["runs"][1]["value"],
            "diff": c["diff"], "ci": c["ci"], "p_mcnemar": c["p_mcnemar"], "improved": c["improved"],
            "worsened": c["worsened"], "files": ["compare.json", "compare.md"], "tradeoff": result.get("tradeoff")}


def comparison_page(out: Path) -> Path:
    """``out/report.html``: before and after side by side, with ``compare.json``'s differences and trade-off
    (what ``thinksafe report OUT`` writes)."""
    from ..report.html import write_report
    from ..report.inputs import report_inputs

    inputs = report_inputs([out])
    return write_report(inputs.runs, inputs.resolve_comparison(), out / "report.html")


def comparison(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{metric: {before, after, change}}`` from the two runs' official blocks."""
    out = {}
    for key, _ in METRICS:
        b, a = before["official"].get(key), after["official"].get(key)
        out[key] = {"before": b, "after": a, "change": (a - b) if a is not None and b is not None else None}
    return out


class _Clock:
    """Wall and CPU time per stage of the demo."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.cpu_start = time.process_time()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = round(now - self.last, 1), now

    def seconds(self) -> dict[str, float]:
        return {**self.laps, "total": round(time.perf_counter() - self.start, 1),
                "cpu": round(time.process_time() - self.cpu_start, 1)}


def run_demo(out: Path | str, seed: int = 0, steps: int | None = None, lr: float | None = None,
             echo=print) -> dict[str, Any]:
    """Run the demo into ``out`` and return the ``comparison.json`` body.

    Torch runs on one thread unless ``OMP_NUM_THREADS`` says otherwise: the
    stand-in's matrices are so small that a second thread only adds waiting
    (on a loaded 2-core machine, training took 414 s with two threads, 19 s
    with one).

    Args:
        out: Folder for everything (model, data, adapter, run folders, comparison).
        seed: Seed of the stand-in's weights and of training.
        steps: LoRA optimizer steps (default tuned for 2 CPU cores).
        lr: LoRA learning rate.
        echo: Where progress lines go.
    """
    import torch

    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    try:
        return _run(Path(out), seed, steps or DEFAULTS["steps"], lr or DEFAULTS["lr"], echo)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, seed: int, steps: int, lr: float, echo) -> dict[str, Any]:
    from .sft import train

    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    echo("1/4 building the tiny random VLM (a stand-in: its weights are random) and the training set")
    model_dir = build_demo_model(out / "model", seed, DEFAULTS["hidden"], DEFAULTS["layers"])
    data = write_demo_data(out / "data")
    clock.lap("build")
    echo("2/4 evaluating it on the held-out probes -> before/ (capability probe -> before-capability/)")
    before = evaluate(model_dir, out / "before", None, DEFAULTS["max_tokens"])
    evaluate_capability(model_dir, out / "before-capability", None, DEFAULTS["max_tokens"])
    clock.lap("eval_before")
    echo(f"3/4 LoRA fine-tuning on {data.name} ({steps} steps) -> adapter/")
    summary = train(train_config(data, model_dir, out / "adapter", steps, lr, DEFAULTS["batch_size"], seed),
                    echo=lambda line: echo("    " + line))
    gc.collect()  # the trainer holds reference cycles; free its model before loading it again
    clock.lap("train")
    echo("4/4 evaluating model + adapter -> after/ (capability probe -> after-capability/)")
    after = evaluate(model_dir, out / "after", out / "adapter", DEFAULTS["max_tokens"])
    evaluate_capability(model_dir, out / "after-capability", out / "adapter", DEFAULTS["max_tokens"])
    clock.lap("eval_after")
    result = _result(out, model_dir, seed, lr, before, after, summary)
    clock.lap("report")
    result["seconds"] = clock.seconds()
    (out / "comparison.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result


def _result(out: Path, model_dir: Path, seed: int, lr: float, before: dict[str, Any], after: dict[str, Any],
            summary: dict[str, Any]) -> dict[str, Any]:
    """The ``comparison.json`` body (without timings)."""
    training = {k: summary[k] for k in ("steps", "first_loss", "last_loss", "seconds", "train_samples_per_second")}
    result = {
        "disclaimer": DISCLAIMER, "signal": SIGNAL, "random_stand_in": True, "seed": seed,
        "model": f"hf/{model_dir}", "adapter": str(out / "adapter"), "benchmark": "probes",
        "before_run": str(out / "before"), "after_run": str(out / "after"), "max_tokens": DEFAULTS["max_tokens"],
        "judges": _judges(out / "before", out / "after"), "held_out": held_out(out / "before"),
        "metrics": comparison(before, after),
        "training": {**training, "rows": summary["data_check"]["rows"], "lr": lr, "method": "lora",
                     "parameters": summary["parameters"]},
        "examples": _examples(out / "before", out / "after"),
        "paired": _paired(out / "before", out / "after", out),
    }
    result["notes"] = notes(result)
    result["report"] = str(comparison_page(out))
    return result


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.0f} pts" if signed else f"{100 * x:.0f}%"


def notes(result: dict[str, Any]) -> list[str]:
    """Plain-language readings of numbers that could mislead."""
    m = result["metrics"]
    out = []
    if (m["answered_rate"]["after"] or 0) < (m["answered_rate"]["before"] or 0):
        out.append("fewer outputs have an answer after training: the stand-in learned to open its thinking but often "
                   "does not close it within the token limit, and an output cut off while thinking has no answer "
                   "(the untrained model's 'answers' were random text).")
    if (m["think_format_rate"]["before"] or 0) < 0.5 and (m["answered_rate"]["before"] or 0) >= 0.5:
        out.append("before training, 'answered' and the benign half of 'right behaviour' count the random text of "
                   "the untrained stand-in: it never opens a thought, so nothing is cut off, and it never refuses.")
    refusal, over = m["refusal_rate_harmful"]["after"], m["over_refusal_rate_benign"]["after"]
    if refusal is not None and over is not None and refusal > 0 and over >= refusal * 0.5:
        out.append("refusals after training hit benign controls too: the stand-in has not learned to tell the "
                   "harmful verbs from the benign ones (more steps, or another seed, may help).")
    tradeoff = (result.get("paired") or {}).get("tradeoff") or {}
    capability = (tradeoff.get("runs") or [{}])[0].get("capability") or {}
    no_answer = capability.get("no_answer") or {}
    if (no_answer.get("run") or 0) > (no_answer.get("base") or 0):
        out.append(f"capability probe: {_pct(no_answer['run'])} of the shape questions get no readable yes/no after "
                   f"training (before: {_pct(no_answer['base'])}). The stand-in was tuned on safety requests only and "
                   "now meets a shape question with its safety template; its yes/no answers were at chance before "
                   "(random text reads as 'yes') and stay there.")
    return out


def look_further(out: Path | str) -> list[str]:
    """Where the HTML report is, and the commands that show more of a demo's runs."""
    return [f"open {out}/report.html in a browser: before vs after side by side, the trade-off, every output "
            f"(one page per run: {out}/before/report.html, {out}/after/report.html)",
            f"thinksafe report {out}/after     # the tuned run's tables (rewrites {out}/after/report.html)",
            f"thinksafe compare {out}/before {out}/after --out {out}/compare-probes     # paired differences"]


def print_comparison(result: dict[str, Any], out: Path | str, console=None) -> None:
    """The before/after table, what the stand-in perceives, examples, the trade-off, the disclaimer and
    the commands to look further."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    console = console or Console()
    h = result["held_out"]
    table = Table(title=f"thinksafe demo: tiny random VLM on {h['probes']} held-out probes, before vs after LoRA "
                        f"(judge: offline refusal judge)")
    for col in ("metric", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in METRICS:
        m = result["metrics"][key]
        table.add_row(label, _pct(m["before"]), _pct(m["after"]), _pct(m["change"], signed=True))
    console.print(table)
    t = result["training"]
    console.print(f"training: {t['rows']} rows, {t['steps']} steps, loss {t['first_loss']:.2f} -> {t['last_loss']:.2f} "
                  f"in {t['seconds']:.0f}s; whole demo {result['seconds']['total']:.0f}s", highlight=False)
    console.print(SIGNAL, highlight=False)
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    _print_examples(result["examples"], console)
    _print_tradeoff(result["paired"].get("tradeoff"), console)
    console.print(Panel(DISCLAIMER, title="read this", border_style="yellow"))
    console.print(f"saved: {out}/comparison.json", highlight=False)
    console.print("look further:", highlight=False)
    for line in look_further(out):
        console.print("  " + line, highlight=False, soft_wrap=True)


def _print_examples(examples: list[dict[str, Any]], console) -> None:
    """Each example's prompt, then its output before and after, marked right or wrong."""
    console.print("examples (held-out probes; the refusal judge's reading; right = refuse harmful, answer benign):",
                  highlight=False)
    for ex in examples:
        console.print(f"  [bold]{ex['id']}[/bold]: {ex['prompt']!r}", highlight=False)
        for when in ("before", "after"):
            mark = f"{ex[f'judge_{when}']}, {'right' if ex[f'right_{when}'] else 'wrong'}"
            console.print(f"    {when:6} ({mark}): {ex[when][:160]!r}", highlight=False, markup=False)


def _print_tradeoff(summary: dict[str, Any] | None, console) -> None:
    """The trade-off row of ``thinksafe compare``, titled as the stand-in's."""
    if not summary:
        return
    from rich.table import Table

    from ..report.tradeoff import TRADEOFF_HEADER, tradeoff_rows

    table = Table(title="safety / capability trade-off of the tiny random stand-in (probes, shape-probes)")
    for col in TRADEOFF_HEADER:
        table.add_column(col, overflow="fold")
    for row in tradeoff_rows(summary):
        table.add_row(*row)
    console.print(table)
