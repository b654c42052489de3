"""The study config: which models, which benchmarks, which judge, where.

A YAML file (schema in ``docs/study.md``)::

    version: 1
    out: runs/study                      # relative paths are relative to this file
    benchmarks: tis-paper                # a preset, one name, or a list (names or {name, subset, data, judge})
    data: data                           # optional: DATA/<benchmark> unless a benchmark names its own
    judge: {spec: llm, model: openai/gpt-4o-mini, base_url: https://api.openai.com/v1}
    generation: {max_tokens: 8192}       # for every model; a model's own `generation` wins
    models:
      - {name: qwen, model: qwen2.5-vl-7b-instruct, base_url: http://gpu1:8000/v1, role: base}
      - {name: r1ov, model: r1-onevision-7b, base_url: http://gpu2:8000/v1, compare_to: qwen}
      - {name: r1ov-tis, model: hf/Fancy-MLLM/R1-Onevision-7B, adapter: runs/tis-lora, role: tuned}

Everything is checked before anything runs; a problem raises
:class:`~thinksafe.errors.UserError` naming the file, the entry and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

VERSION = 1
ROLES = ("base", "reasoning", "tuned")
_TOP_KEYS = ("version", "out", "benchmarks", "data", "judge", "generation", "models", "limit", "protocol",
             "registry", "stats")
_MODEL_KEYS = ("name", "model", "role", "compare_to", "base_url", "served_name", "api_key_env", "concurrency",
               "timeout", "adapter", "batch_size", "device", "dtype", "trust_remote_code", "generation")
_BENCH_KEYS = ("name", "subset", "data", "judge", "limit")
_JUDGE_KEYS = ("spec", "model", "base_url", "api_key_env", "concurrency")
_GEN_KEYS = ("max_tokens", "temperature", "top_p", "seed", "system", "think_budget", "no_think")
_STATS_KEYS = ("resamples", "seed", "alpha")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class ModelSpec:
    """One model of the study; ``name`` is its folder, ``OUT/<name>/<benchmark>``."""

    name: str
    model: str
    """As written: a registry name or an ``openai/``/``hf/`` spec."""
    role: str
    compare_to: list[str] = field(default_factory=list)
    base_url: str | None = None
    served_name: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout: float = 600.0
    adapter: str | None = None
    batch_size: int = 8
    device: str | None = None
    dtype: str | None = None
    trust_remote_code: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    registry_name: str | None = None
    """The registry entry ``model`` names, if any."""
    registry_base: str | None = None
    """That entry's base (a registry name), if any."""
    identity: str = ""
    """The weights it serves: the hub id or path without the backend prefix (finds a tuned model's twin)."""


@dataclass
class BenchSpec:
    name: str
    subset: str | None = None
    data: Path | None = None
    judge: str | None = None
    limit: int | None = None
    """Overrides the study's ``limit`` for this benchmark."""


@dataclass
class JudgeSpec:
    spec: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int | None = None


@dataclass
class StudyConfig:
    path: Path
    out: Path
    models: list[ModelSpec]
    benchmarks: list[BenchSpec]
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    generation: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    protocol: str = "official"
    registry: Path | None = None
    resamples: int = 10_000
    seed: int = 0
    alpha: float = 0.05
    warnings: list[str] = field(default_factory=list)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)


def _mapping(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(allowed)}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(allowed)})")
    return value


def _path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise UserError(f"{where}: expected a path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _adapter(base: Path, value: str) -> str:
    """An adapter folder relative to the config file when one is there; else as
    written (absolute, or a Hub id such as ``user/tis-lora``)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    local = base / p
    return str(local) if local.exists() else value


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{where}: expected {name}, got {value!r}")
    return value


def load_study(path: Path | str) -> StudyConfig:
    """Read and check a study config (nothing runs, nothing is written)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: study config not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    raw = _mapping(raw, str(path), _TOP_KEYS)
    if raw.get("version", VERSION) != VERSION:
        raise UserError(f"{path}: version {raw.get('version')!r} is not supported (this thinksafe reads {VERSION})")
    for key in ("out", "models", "benchmarks"):
        if not raw.get(key):
            raise UserError(f"{path}: '{key}' is required")
    here = path.resolve().parent
    cfg = StudyConfig(path=path, out=_path(here, raw["out"], f"{path}: out"), models=[], benchmarks=[])
    cfg.registry = _path(here, raw["registry"], f"{path}: registry") if raw.get("registry") else None
    cfg.limit = _typed(raw.get("limit"), int, f"{path}: limit")
    cfg.protocol = _typed(raw.get("protocol", "official"), str, f"{path}: protocol")
    cfg.generation = _generation(raw.get("generation"), f"{path}: generation")
    cfg.judge = _judge(raw.get("judge"), f"{path}: judge")
    _stats(cfg, raw.get("stats"), f"{path}: stats")
    data = _path(here, raw["data"], f"{path}: data") if raw.get("data") else None
    cfg.benchmarks = _benchmarks(raw["benchmarks"], data, here, f"{path}: benchmarks")
    cfg.models = _models(raw["models"], cfg, f"{path}: models")
    return cfg


def _generation(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    gen = dict(_mapping(value, where, _GEN_KEYS))
    for key in ("max_tokens", "seed", "think_budget"):
        _typed(gen.get(key), int, f"{where}: {key}")
    for key in ("temperature", "top_p"):
        _typed(gen.get(key), (int, float), f"{where}: {key}")
    _typed(gen.get("system"), str, f"{where}: system")
    _typed(gen.get("no_think"), bool, f"{where}: no_think")
    return gen


def _judge(value: Any, where: str) -> JudgeSpec:
    if value is None:
        return JudgeSpec()
    if isinstance(value, str):
        return JudgeSpec(spec=value)
    d = _mapping(value, where, _JUDGE_KEYS)
    return JudgeSpec(**{k: d[k] for k in d})


def _stats(cfg: StudyConfig, value: Any, where: str) -> None:
    if value is None:
        return
    d = _mapping(value, where, _STATS_KEYS)
    cfg.resamples = _typed(d.get("resamples", cfg.resamples), int, f"{where}: resamples")
    cfg.seed = _typed(d.get("seed", cfg.seed), int, f"{where}: seed")
    cfg.alpha = float(_typed(d.get("alpha", cfg.alpha), (int, float), f"{where}: alpha"))
    if cfg.resamples < 100 or not 0 < cfg.alpha < 0.5:
        raise UserError(f"{where}: resamples must be >= 100 and 0 < alpha < 0.5")


def _benchmarks(value: Any, data: Path | None, here: Path, where: str) -> list[BenchSpec]:
    from ..benchmarks import PRESETS, all_benchmarks

    items = value if isinstance(value, list) else [value]
    known = all_benchmarks()
    out: list[BenchSpec] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        d = {"name": item} if isinstance(item, str) else dict(_mapping(item, at, _BENCH_KEYS))
        name = d.get("name")
        names = PRESETS.get(name, (name,)) if isinstance(name, str) else (name,)
        for bench in names:
            if bench not in known:
                raise UserError(f"{at}: unknown benchmark {bench!r}; known: {', '.join(sorted(known))} "
                                f"and the presets {', '.join(PRESETS)}")
            own = _path(here, d["data"], f"{at}: data") if d.get("data") else None
            out.append(BenchSpec(bench, d.get("subset") if len(names) == 1 else None,
                                 own or (data / bench if data else None), _typed(d.get("judge"), str, f"{at}: judge"),
                                 _typed(d.get("limit"), int, f"{at}: limit")))
    seen = [b.name for b in out]
    dup = next((b for b in seen if seen.count(b) > 1), None)
    if dup:
        raise UserError(f"{where}: benchmark {dup!r} is listed twice")
    return out


def _models(value: Any, cfg: StudyConfig, where: str) -> list[ModelSpec]:
    from ..models.registry import is_spec, load_registry

    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: expected a list of models")
    registry = None
    models = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        d = dict(_mapping(item, at, _MODEL_KEYS))
        if not isinstance(d.get("model"), str):
            raise UserError(f"{at}: 'model' is required (a registry name, openai/NAME or hf/PATH)")
        entry = None
        if not is_spec(d["model"]):
            registry = registry or load_registry(cfg.registry)
            entry = registry.get(d["model"])
            if entry is None:
                raise UserError(f"{at}: model {d['model']!r} is not openai/NAME, hf/PATH or a registry name "
                                "(`thinksafe models` lists them)")
        models.append(_model(d, entry, at, cfg.path.parent))
    names = [m.name for m in models]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UserError(f"{where}: two models are named {dup!r}; give one a different 'name'")
    _default_comparisons(models, cfg)
    for m in models:
        for ref in m.compare_to:
            if ref not in names or ref == m.name:
                raise UserError(f"{where}: {m.name}: compare_to {ref!r} is not another model of the study "
                                f"({', '.join(names)})")
    return models


def _model(d: dict[str, Any], entry: Any, at: str, here: Path) -> ModelSpec:
    name = d.get("name") or (entry.name if entry else d["model"].rstrip("/").rsplit("/", 1)[-1])
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise UserError(f"{at}: name {name!r} must be letters, digits, '.', '_', '-' (it names a folder)")
    role = d.get("role") or ("tuned" if d.get("adapter") else entry["kind"] if entry else None)
    if role not in ROLES:
        raise UserError(f"{at}: role must be one of {', '.join(ROLES)}" + ("" if role else " (required for a spec)"))
    refs = d.get("compare_to") or []
    refs = [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise UserError(f"{at}: compare_to must be a model name or a list of them")
    spec = ModelSpec(name=name, model=d["model"], role=role, compare_to=list(refs),
                     generation=_generation(d.get("generation"), f"{at}: generation"),
                     registry_name=entry.name if entry else None, registry_base=entry["base"] if entry else None,
                     identity=entry.hub_id if entry else d["model"].split("/", 1)[1])
    for key in ("base_url", "served_name", "api_key_env", "adapter", "device", "dtype"):
        if d.get(key) is not None:
            setattr(spec, key, str(_typed(d[key], str, f"{at}: {key}")))
    for key in ("concurrency", "batch_size"):
        if d.get(key) is not None:
            setattr(spec, key, _typed(d[key], int, f"{at}: {key}"))
    if spec.adapter:
        spec.adapter = _adapter(here, spec.adapter)
    if d.get("timeout") is not None:
        spec.timeout = float(_typed(d["timeout"], (int, float), f"{at}: timeout"))
    if d.get("trust_remote_code") is not None:
        spec.trust_remote_code = _typed(d["trust_remote_code"], bool, f"{at}: trust_remote_code")
    return spec


def _default_comparisons(models: list[ModelSpec], cfg: StudyConfig) -> None:
    """Fill in ``compare_to`` where the config leaves it out.

    A reasoning model is compared with the study model that is its registry
    base, else with the study's only base model. A tuned model is compared with
    its untuned twin (the same weights without an adapter, on the same backend
    if there is a choice) and with what the twin is compared with, else with the
    only reasoning model, else the only base.
    """
    by_registry = {m.registry_name: m for m in models if m.registry_name and not m.adapter}
    bases = [m for m in models if m.role == "base"]
    reasoning = [m for m in models if m.role == "reasoning"]
    for m in models:
        if m.compare_to or m.role == "base":
            continue
        if m.role == "reasoning":
            if m.registry_base in by_registry:
                m.compare_to = [by_registry[m.registry_base].name]
            elif len(bases) == 1:
                m.compare_to = [bases[0].name]
    for m in models:
        if m.role == "tuned" and not m.compare_to:
            twin = _twin(m, models)
            if twin is not None:
                m.compare_to = [twin.name, *twin.compare_to]
            elif len(reasoning) == 1:
                m.compare_to = [reasoning[0].name, *reasoning[0].compare_to]
            elif len(bases) == 1:
                m.compare_to = [bases[0].name]
    for m in models:
        if m.role != "base" and not m.compare_to:
            cfg.warnings.append(f"{m.name} is compared with nothing: set its compare_to")


def _twin(m: ModelSpec, models: list[ModelSpec]) -> ModelSpec | None:
    same = [t for t in models if t is not m and t.role != "tuned" and not t.adapter and t.identity == m.identity]
    return next((t for t in same if _backend(t) == _backend(m)), same[0] if same else None)


def _backend(m: ModelSpec) -> str:
    return "openai" if m.model.startswith("openai/") or (m.registry_name and m.base_url) else "hf"
