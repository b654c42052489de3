"""``thinksafe demo``: the whole evaluate -> fine-tune -> re-evaluate loop, offline.

1. build the tiny random VLM (:mod:`thinksafe.models.tiny`);
2. evaluate it on the built-in ``probes`` benchmark (``OUT/before``);
3. LoRA-fine-tune it on the built-in TiS-style set
   (``resources/demo/tis_demo.jsonl``, images rendered at run time) through the
   same code path as ``thinksafe train`` (``OUT/adapter``);
4. evaluate model + adapter again (``OUT/after``);
5. compare: think-format rate, refusal on harmful probes, over-refusal on
   benign controls (``OUT/comparison.json``, plus ``compare.json``/``compare.md``
   from ``thinksafe compare`` when that module is installed), and the
   safety / capability trade-off, with the built-in ``shape-probes``
   (POPE-style yes/no questions on generated shapes, ``OUT/before-capability``
   and ``OUT/after-capability``) as the stand-in's capability side.

The model is random: the numbers show the mechanism, not anyone's safety.
"""

from __future__ import annotations

import gc
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from .config import TrainConfig

DISCLAIMER = (
    "The model in this demo is a tiny randomly initialised stand-in (about 0.2 M parameters, built offline in a "
    "second). The numbers show that the evaluate -> fine-tune -> re-evaluate mechanism works end to end; they say "
    "nothing about the safety of any real model."
)
METRICS = (
    ("think_format_rate", "think-format rate (outputs opening with <think>)"),
    ("refusal_rate_harmful", "refusal rate on harmful probes"),
    ("over_refusal_rate_benign", "over-refusal rate on benign controls"),
    ("answered_rate", "outputs with an answer after the thinking"),
    ("accuracy", "right behaviour (refuse harmful, answer benign)"),
)

# Tuned on 2 CPU cores. lr 1e-2 with batch 4: 60 steps already lift P(<think> first)
# from ~0 to 0.8-0.93 on every probe (seeds 0-3); 120 steps (10-20 s) also teach
# the model to close some thoughts and answer, so the refusal numbers move too.
# Think-format rate after 120 steps was 100% for seeds 0-4. lr 2e-2 stalls at a
# unigram solution (loss ~4); lr 5e-3 needs about twice the steps.
DEFAULTS = {"steps": 120, "lr": 1e-2, "batch_size": 4, "max_tokens": 96}


def demo_rows() -> list[dict[str, Any]]:
    """The built-in TiS-style training rows (text only; images are rendered)."""
    text = resources.files("thinksafe").joinpath("resources/demo/tis_demo.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Why the demo answers read "<think>...</think> answer" with no newlines, unlike the
# released TiS file ("<think>\n...\n</think>\n"): the 2-layer random model first
# learns which token follows which. With newlines inside the answers, the "\n" that
# ends the prompt has many successors and 60 steps leave P(<think> first) near 0.15;
# without them "<think>" is the only thing a trained "\n" is followed by.


def write_demo_data(folder: Path) -> Path:
    """Render the demo images and write the set as a ShareGPT file (the TiS layout).

    Returns:
        The data file, with image paths relative to its folder.
    """
    from ..benchmarks.typography import figstep_text, render_text_image

    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for row in demo_rows():
        image = Path("images") / f"{row['id']}.png"
        if not (folder / image).exists():
            render_text_image(figstep_text(row["image_text"]), folder / image)
        records.append({"id": row["id"], "harmful": row["harmful"], "images": [str(image)],
                        "conversations": [{"from": "human", "value": "<image>" + row["question"]},
                                          {"from": "gpt", "value": row["response"]}]})
    path = folder / "tis_demo.json"
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def evaluate(model_dir: Path, out: Path, adapter: Path | None, max_tokens: int,
             benchmark: str = "probes") -> dict[str, Any]:
    """One ordinary run folder of a built-in benchmark (greedy decoding)."""
    from ..evaluate import EvalConfig, run_eval
    from ..models.base import GenerationSettings
    from ..report.html import write_html

    cfg = EvalConfig(benchmark=benchmark, model=f"hf/{model_dir}", out=out, judge="official", batch_size=8,
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
    return TrainConfig(data=str(data), model=f"hf/{model_dir}", out=str(out), method="lora", lora_r=8,
                       lora_alpha=16, lora_dropout=0.0, modules_to_save=["lm_head"], max_steps=steps, lr=lr,
                       batch_size=batch_size, grad_accum=1, max_length=512, warmup_ratio=0.0,
                       logging_steps=max(1, steps // 8), save_steps=None, seed=seed, cache_images=64)


def _examples(before: Path, after: Path, n: int = 2) -> list[dict[str, Any]]:
    """The first harmful and benign outputs before and after, side by side."""
    def rows(path: Path) -> dict[str, dict[str, Any]]:
        lines = (path / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        return {r["id"]: r for r in map(json.loads, lines)}

    b, a = rows(before), rows(after)
    picks = [i for i in b if i.startswith("harmful")][:n] + [i for i in b if i.startswith("benign")][:n]
    return [{"id": i, "before": (b[i].get("raw") or "")[:300], "after": (a.get(i, {}).get("raw") or "")[:300]}
            for i in picks]


def evaluate_capability(model_dir: Path, out: Path, adapter: Path | None, max_tokens: int) -> dict[str, Any]:
    """The stand-in's capability probe: the built-in ``shape-probes`` into ``out``."""
    return evaluate(model_dir, out, adapter, max_tokens, benchmark="shape-probes")


def _paired(before: Path, after: Path, out: Path) -> dict[str, Any] | None:
    """Paired statistics from ``thinksafe compare`` (``compare.json``/``compare.md``), when installed;
    the capability probe's runs (``before-capability``, ``after-capability``) join their model's run."""
    try:
        from ..report.compare import compare_runs, write_compare
    except ImportError:
        return None
    try:
        groups = [[run, run.with_name(f"{run.name}-capability")] for run in (before, after)]
        result = compare_runs([[p for p in g if p.is_dir()] for g in groups], n_resamples=2000)
        write_compare(result, out)
        bench = result["benchmarks"]["probes"]
        c = bench["comparisons"][0]
    except Exception as exc:  # noqa: BLE001 - an optional extra must not sink the demo
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"metric": bench["metric"], "before": bench["runs"][0]["value"], "after": bench["runs"][1]["value"],
            "diff": c["diff"], "ci": c["ci"], "p_mcnemar": c["p_mcnemar"], "improved": c["improved"],
            "worsened": c["worsened"], "files": ["compare.json", "compare.md"], "tradeoff": result.get("tradeoff")}


def comparison(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{metric: {before, after, change}}`` from the two runs' official blocks."""
    out = {}
    for key, _ in METRICS:
        b, a = before["official"].get(key), after["official"].get(key)
        out[key] = {"before": b, "after": a, "change": (a - b) if a is not None and b is not None else None}
    return out


class _Clock:
    """Wall time per stage of the demo."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = round(now - self.last, 1), now

    def seconds(self) -> dict[str, float]:
        return {**self.laps, "total": round(time.perf_counter() - self.start, 1)}


def run_demo(out: Path | str, seed: int = 0, steps: int | None = None, lr: float | None = None,
             echo=print) -> dict[str, Any]:
    """Run the demo into ``out`` and return the ``comparison.json`` body.

    Args:
        out: Folder for everything (model, data, adapter, run folders, comparison).
        seed: Seed of the tiny model's weights and of training.
        steps: LoRA optimizer steps (default tuned for 2 CPU cores).
        lr: LoRA learning rate.
        echo: Where progress lines go.
    """
    from ..models.tiny import build_tiny_model
    from .sft import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps, lr = steps or DEFAULTS["steps"], lr or DEFAULTS["lr"]
    clock = _Clock()
    echo("1/4 building the tiny random VLM (a stand-in: its weights are random)")
    model_dir = build_tiny_model(out / "model", seed=seed)
    data = write_demo_data(out / "data")
    clock.lap("build")
    echo("2/4 evaluating it on the built-in probes -> before/ (capability probe -> before-capability/)")
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
    result["seconds"] = clock.seconds()
    (out / "comparison.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result


def _result(out: Path, model_dir: Path, seed: int, lr: float, before: dict[str, Any], after: dict[str, Any],
            summary: dict[str, Any]) -> dict[str, Any]:
    """The ``comparison.json`` body (without timings)."""
    training = {k: summary[k] for k in ("steps", "first_loss", "last_loss", "seconds", "train_samples_per_second")}
    result = {
        "disclaimer": DISCLAIMER, "random_stand_in": True, "seed": seed,
        "model": f"hf/{model_dir}", "adapter": str(out / "adapter"), "benchmark": "probes",
        "before_run": str(out / "before"), "after_run": str(out / "after"), "max_tokens": DEFAULTS["max_tokens"],
        "metrics": comparison(before, after),
        "training": {**training, "rows": summary["data_check"]["rows"], "lr": lr, "method": "lora"},
        "examples": _examples(out / "before", out / "after"),
        "paired": _paired(out / "before", out / "after", out),
    }
    result["notes"] = notes(result)
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
    refusal, over = m["refusal_rate_harmful"]["after"], m["over_refusal_rate_benign"]["after"]
    if refusal is not None and over is not None and refusal > 0 and over >= refusal * 0.5:
        out.append("refusals after training hit benign controls too: a 56-pixel random vision tower cannot read "
                   "the typographic image, so the stand-in cannot tell harmful from benign requests.")
    return out


def print_comparison(result: dict[str, Any], console=None) -> None:
    """The before/after table, the training line, two example outputs and the disclaimer."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    console = console or Console()
    table = Table(title="thinksafe demo: tiny random VLM on the built-in probes, before vs after LoRA")
    for col in ("metric", "before", "after", "change"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in METRICS:
        m = result["metrics"][key]
        table.add_row(label, _pct(m["before"]), _pct(m["after"]), _pct(m["change"], signed=True))
    console.print(table)
    t = result["training"]
    console.print(f"training: {t['rows']} rows, {t['steps']} steps, loss {t['first_loss']:.2f} -> {t['last_loss']:.2f} "
                  f"in {t['seconds']:.0f}s; whole demo {result['seconds']['total']:.0f}s")
    for note in result.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    _print_tradeoff((result.get("paired") or {}).get("tradeoff"), console)
    for ex in result["examples"][::2]:
        console.print(f"[dim]{ex['id']} before:[/dim] {ex['before'][:100]!r}")
        console.print(f"[dim]{ex['id']} after: [/dim] {ex['after'][:100]!r}")
    console.print(Panel(DISCLAIMER, title="read this", border_style="yellow"))


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
