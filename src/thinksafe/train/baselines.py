"""The paper's baseline comparison (``thinksafe baselines``): one base reasoning model fine-tuned on
each of VLGuard, SPA-VL, MIS and TiS with the same budget, every model evaluated, one comparison.

Think in Safety compares a reasoning model fine-tuned on TiS with the same model fine-tuned on the
earlier safety sets. The recipe, each step an ordinary thinksafe command whose files stay in ``OUT``:

1. **data** - ``thinksafe data build --as-released`` of each source with ``?sample=ROWS&seed=SEED``:
   each set as its authors released it (VLGuard's and SPA-VL's answers, MIS's labels, TiS's
   thought and answer), ROWS rows drawn at random -> ``OUT/data/NAME/tis.json``.
2. **budget** - every set trains on the same number of rows (ROWS, or the smallest set's size when
   a source has fewer usable rows; ``OUT/data/NAME/train.json`` holds that many) for the same
   number of optimizer steps with the same settings; ``OUT/recipe.json`` states it.
3. **train** - ``thinksafe train`` per set -> ``OUT/adapters/NAME`` (skipped when that folder
   already holds a finished run with the same settings).
4. **evaluate and compare** - ``OUT/study.yaml``, a ``thinksafe study`` config: the base model and
   each tuned adapter, each compared with the base -> ``OUT/study/study.md`` (results, paired
   differences, safety / capability trade-off), ``study.json``, ``report.html``.
5. ``OUT/recipe.md``: the budget and the study's tables.

``--stand-in`` runs it offline on the tiny random model with generated slices of each source's
format (:mod:`.standin`) and the built-in ``probes`` / ``shape-probes`` plus an MIS-test slice as
benchmarks: it shows the mechanism, not any dataset's effect.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import UsageError
from .config import TrainConfig, build_config, read_yaml

SOURCES = ("vlguard", "spavl", "mis", "tis")
"""The sets of the paper's comparison, in its order; any names may be used."""
STANDIN_NOTE = ("stand-in run: a tiny random model trained on generated slices in each source's format; the "
                "numbers show that the recipe runs, not any dataset's effect")


@dataclass
class Recipe:
    """What ``thinksafe baselines`` runs (see the module docstring)."""

    base: str
    """``hf/PATH_OR_HUB_ID`` of the base reasoning model (trained and evaluated locally)."""
    out: Path
    sources: dict[str, str]
    """Set name -> ``KIND:PATH[?opts]`` (a ``thinksafe data build`` source)."""
    rows: int
    steps: int
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig keys shared by every run (method, lr, batch_size, lora_r...)."""
    benchmarks: list[Any] = field(default_factory=lambda: ["tis-paper", "mis", "capability"])
    """The study's ``benchmarks`` (names, presets or ``{name, subset, data, ...}``)."""
    study: dict[str, Any] = field(default_factory=dict)
    """Other study keys: ``data``, ``judge``, ``generation``, ``limit``."""
    model_keys: dict[str, Any] = field(default_factory=dict)
    """Keys of every study model entry (``device``, ``dtype``, ``batch_size``)."""
    stand_in: bool = False


def with_sample(spec: str, rows: int, seed: int) -> str:
    """``spec`` with ``sample=rows`` and ``seed`` (any earlier values replaced)."""
    head, _, query = spec.partition("?")
    options = dict(parse_qsl(query))
    options.update(sample=str(rows), seed=str(seed))
    return f"{head}?{urlencode(options)}"


def build_sets(recipe: Recipe, echo) -> dict[str, dict[str, Any]]:
    """As-released builds of every source; returns each set's build stats (counts, rejections)."""
    from ..data.build import BuildConfig, run_build

    built = {}
    for name, spec in recipe.sources.items():
        stats = run_build(BuildConfig(sources=[with_sample(spec, recipe.rows, recipe.seed)], captioner=None,
                                      teacher=None, out=recipe.out / "data" / name, as_released=True, name=name))
        built[name] = {"kept": stats["counts"]["kept"], "rejected": stats["counts"]["rejected"],
                       "rejected_by_reason": stats["rejected_by_reason"]}
        echo(f"  {name}: {stats['counts']['kept']} rows as released ({stats['counts']['rejected']} rejected)")
    return built


def equal_budget(recipe: Recipe, built: dict[str, dict[str, Any]]) -> int:
    """Write ``train.json`` of every set with the same number of rows; returns that number.

    Raises:
        UsageError: A set has no usable row.
    """
    empty = [name for name, b in built.items() if not b["kept"]]
    if empty:
        raise UsageError(f"no usable rows in {', '.join(empty)} (see OUT/data/NAME/rejected.jsonl)")
    rows = min(recipe.rows, *(b["kept"] for b in built.values()))
    for name in built:
        folder = recipe.out / "data" / name
        records = json.loads((folder / "tis.json").read_text(encoding="utf-8"))
        if len(records) > rows:  # a random subset again (the first rows would favour the file's start)
            keep = sorted(random.Random(recipe.seed).sample(range(len(records)), rows))
            records = [records[k] for k in keep]
        (folder / "train.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return rows


def train_config(recipe: Recipe, name: str) -> TrainConfig:
    """The run of one set: the shared settings, its data, the fixed number of steps."""
    return build_config(None, **{**recipe.train, "data": recipe.out / "data" / name / "train.json",
                                 "model": recipe.base, "out": recipe.out / "adapters" / name,
                                 "max_steps": recipe.steps, "seed": recipe.seed, "save_steps": 0})


DATA_HASH = "data.sha256"
"""Beside a trained adapter: the sha256 of the ``train.json`` it was trained on."""


def data_sha256(cfg: TrainConfig) -> str:
    return hashlib.sha256(Path(cfg.data).read_bytes()).hexdigest()


def trained(cfg: TrainConfig) -> bool:
    """A finished run of the same configuration on the same data is already in ``cfg.out``
    (``train.json`` keeps its path when ``--rows`` or a source changes: its sha256 decides)."""
    out = Path(cfg.out)
    return (out / "train_summary.json").is_file() and (out / "train_config.yaml").is_file() \
        and read_yaml(out / "train_config.yaml") == cfg.to_dict() \
        and (out / DATA_HASH).is_file() and (out / DATA_HASH).read_text().strip() == data_sha256(cfg)


def train_all(recipe: Recipe, echo) -> dict[str, dict[str, Any]]:
    """``thinksafe train`` of every set; returns each run's summary (loss, steps, seconds)."""
    from .sft import train

    summaries = {}
    for name in recipe.sources:
        cfg = train_config(recipe, name)
        if trained(cfg):
            echo(f"  {name}: already trained with these settings ({cfg.out})")
        else:
            echo(f"  {name}: {recipe.steps} steps -> {cfg.out}")
            digest = data_sha256(cfg)  # of the data this run reads
            (Path(cfg.out) / DATA_HASH).unlink(missing_ok=True)
            train(cfg, echo=lambda line: echo("    " + line))
            (Path(cfg.out) / DATA_HASH).write_text(digest + "\n")
            gc.collect()  # the trainer holds reference cycles; free its model before the next one
        summary = json.loads((Path(cfg.out) / "train_summary.json").read_text(encoding="utf-8"))
        summaries[name] = {k: summary.get(k) for k in ("steps", "first_loss", "last_loss", "seconds")}
    return summaries


def study_config(recipe: Recipe) -> dict[str, Any]:
    """The ``thinksafe study`` config: the base and one tuned model per set, each compared with the base."""
    keys = dict(recipe.model_keys)
    # The untuned model is the study's reference ("base" role: first in the report, compared against).
    models = [{"name": "base", "model": recipe.base, "role": "base", **keys}]
    models += [{"name": name, "model": recipe.base, "adapter": str((recipe.out / "adapters" / name).resolve()),
                "role": "tuned", "compare_to": "base", **keys} for name in recipe.sources]
    return {"version": 1, "out": "study", "benchmarks": recipe.benchmarks, **recipe.study, "models": models}


def write_study_config(recipe: Recipe) -> Path:
    import yaml

    path = recipe.out / "study.yaml"
    header = ("# Written by `thinksafe baselines`: the base model and one LoRA adapter per baseline set, each\n"
              "# trained with the same rows and steps (recipe.json), compared with the base.\n"
              "# Run again with: thinksafe study study.yaml  (see docs/study.md)\n")
    path.write_text(header + yaml.safe_dump(study_config(recipe), sort_keys=False), encoding="utf-8")
    return path


def run_recipe(recipe: Recipe, echo=print, quiet: bool = True) -> dict[str, Any]:
    """Build, train, evaluate and compare; writes ``recipe.json``/``recipe.md`` and returns the former."""
    from ..study import load_study, run_study
    from ..study.report import render_study

    if not recipe.sources:
        raise UsageError("give at least one --source NAME=KIND:PATH (e.g. mis=mis:mis_train.json)")
    recipe.out.mkdir(parents=True, exist_ok=True)
    echo(f"1/4 data: each source as released, {recipe.rows} rows drawn (seed {recipe.seed})")
    built = build_sets(recipe, echo)
    rows = equal_budget(recipe, built)
    echo(f"2/4 budget: {rows} rows and {recipe.steps} steps for every set")
    echo("3/4 training")
    training = train_all(recipe, echo)
    echo("4/4 evaluating the base and every tuned model, comparing")
    study, files = run_study(load_study(write_study_config(recipe)), quiet=quiet)
    result = {"base": recipe.base, "sources": recipe.sources, "seed": recipe.seed, "stand_in": recipe.stand_in,
              "budget": {"rows": rows, "rows_asked": recipe.rows, "steps": recipe.steps,
                         "train": train_config(recipe, next(iter(recipe.sources))).to_dict() | {"data": None,
                                                                                                 "out": None}},
              "data": built, "training": training, "study": str(recipe.out / "study" / "study.md"),
              "files": [str(f) for f in files], "failures": study["failures"]}
    if recipe.stand_in:
        result["note"] = STANDIN_NOTE
    (recipe.out / "recipe.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (recipe.out / "recipe.md").write_text(render_recipe(result, render_study(study)), encoding="utf-8")
    return result


def render_recipe(result: dict[str, Any], study_md: str) -> str:
    """``recipe.md``: what was trained with which budget, then the study's tables."""
    b, t = result["budget"], result["budget"]["train"]
    lines = ["# Baseline comparison", ""]
    if result.get("note"):
        lines += [f"**{result['note']}.**", ""]
    lines += [f"Base model `{result['base']}`, fine-tuned ({t['method']}) once per set with the same budget: "
              f"**{b['rows']} rows** each ({b['rows_asked']} asked), **{b['steps']} optimizer steps** of batch "
              f"{t['batch_size']} x {t['grad_accum']} gradient accumulation, lr {t['lr'] or 'default'}, seed "
              f"{result['seed']}.", "", "| set | source | rows as released (rejected) | loss first -> last |",
              "|---|---|---|---|"]
    for name, spec in result["sources"].items():
        d, tr = result["data"][name], result["training"][name]
        loss = f"{tr['first_loss']:.3f} -> {tr['last_loss']:.3f}" if tr.get("first_loss") is not None else "-"
        lines.append(f"| {name} | `{spec}` | {d['kept']} ({d['rejected']}) | {loss} |")
    body = study_md.split("\n", 1)[1] if study_md.startswith("# ") else study_md
    return "\n".join(lines) + "\n" + body


STANDIN_TRAIN = {"method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "modules_to_save": ["lm_head"],
                 "lr": 1e-2, "batch_size": 4, "grad_accum": 1, "max_length": 512, "warmup_ratio": 0.0,
                 "logging_steps": 1, "cache_images": 64}
"""The stand-in's shared training settings (``modules_to_save``: a random tiny model's logits barely
move with LoRA alone, see docs/training.md)."""


def stand_in(out: Path, rows: int = 8, steps: int = 8, seed: int = 0, max_tokens: int = 32) -> Recipe:
    """The offline recipe: the tiny random model, generated slices of each source's format, the
    built-in probes and shape probes and an MIS-test slice as benchmarks."""
    from ..models.tiny import build_tiny_model
    from .standin import write_all

    out = Path(out)
    model = build_tiny_model(out / "model", seed=seed)
    sources = write_all(out / "stand-in-data")
    benchmarks = ["probes", {"name": "mis", "subset": "easy", "data": str((out / "stand-in-data" / "mis_test").resolve())},
                  "shape-probes"]
    return Recipe(base=f"hf/{model}", out=out, sources=sources, rows=rows, steps=steps, seed=seed,
                  train=dict(STANDIN_TRAIN), benchmarks=benchmarks, stand_in=True,
                  study={"generation": {"max_tokens": max_tokens, "temperature": 0.0}},
                  model_keys={"device": "cpu", "batch_size": 8})
