"""``thinksafe study CONFIG.yaml``: the paper's experiment in one command.

Every model of the config runs every benchmark into ``OUT/<model>/<benchmark>``
(an ordinary, resumable run folder), models behind different servers at the
same time; then each model is compared with the models named in its
``compare_to`` and the table is written to ``OUT/study.json`` and
``OUT/study.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluate import EvalConfig
from ..models.base import GenerationSettings
from .config import BenchSpec, ModelSpec, StudyConfig, load_study
from .runner import Job, Outcome, folder_state, run_jobs

_SETTING_KEYS = ("max_tokens", "temperature", "top_p", "seed", "system")


def _settings(*layers: dict[str, Any]) -> GenerationSettings:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    extra = {}
    if merged.get("think_budget") is not None:
        extra["think_budget"] = merged["think_budget"]
    if merged.get("no_think"):
        extra["no_think"] = True
    return GenerationSettings(**{k: merged[k] for k in _SETTING_KEYS if k in merged}, extra=extra)


def model_configs(cfg: StudyConfig) -> dict[str, tuple[str, GenerationSettings, dict | None]]:
    """Each model's backend spec, settings and registry record (registry names resolved)."""
    from ..models.registry import is_spec, load_registry, resolve_model

    registry = load_registry(cfg.registry) if any(not is_spec(m.model) for m in cfg.models) else None
    out = {}
    for m in cfg.models:
        explicit = set(cfg.generation) | set(m.generation) | ({"trust_remote_code"} if m.trust_remote_code else set())
        r = resolve_model(m.model, _settings(cfg.generation, m.generation), explicit=explicit, base_url=m.base_url,
                          registry=registry, served_name=m.served_name)
        cfg.warnings += [n for n in r.notes if n not in cfg.warnings]
        out[m.name] = (r.spec, r.settings, r.record)
    return out


def _job(cfg: StudyConfig, m: ModelSpec, b: BenchSpec, resolved: tuple[str, GenerationSettings, dict | None]) -> Job:
    spec, settings, record = resolved
    j = cfg.judge
    return Job(m.name, b.name, EvalConfig(
        benchmark=b.name, model=spec, out=cfg.out / m.name / b.name, subset=b.subset, data=b.data,
        judge=b.judge or j.spec, judge_model=j.model, judge_base_url=j.base_url, judge_api_key_env=j.api_key_env,
        judge_concurrency=j.concurrency, protocol=cfg.protocol, base_url=m.base_url, api_key_env=m.api_key_env,
        concurrency=m.concurrency, timeout_s=m.timeout, batch_size=m.batch_size, adapter=m.adapter,
        trust_remote_code=m.trust_remote_code, device=m.device, dtype=m.dtype, settings=settings,
        limit=b.limit if b.limit is not None else cfg.limit, registry_entry=record))


def make_jobs(cfg: StudyConfig) -> tuple[list[Job], dict[str, str]]:
    """One job per model x benchmark, in config order, and each model's spec."""
    resolved = model_configs(cfg)
    jobs = [_job(cfg, m, b, resolved[m.name]) for m in cfg.models for b in cfg.benchmarks]
    return jobs, {name: r[0] for name, r in resolved.items()}


def plan(cfg: StudyConfig) -> dict[str, Any]:
    """What a run would do: models, jobs with their folder state, comparisons. Touches nothing."""
    jobs, specs = make_jobs(cfg)
    return {
        "models": [{"name": m.name, "role": m.role, "spec": specs[m.name], "registry": m.registry_name,
                    "endpoint": m.base_url or "local", "adapter": m.adapter, "compare_to": m.compare_to}
                   for m in cfg.models],
        "jobs": [{"model": j.model, "benchmark": j.benchmark, "dir": str(j.cfg.out),
                  **dict(zip(("state", "detail"), folder_state(j.cfg)[:2]))} for j in jobs],
        "comparisons": [(ref, m.name) for m in cfg.models for ref in m.compare_to],
        "warnings": cfg.warnings,
    }


def run_study(cfg: StudyConfig, quiet: bool = False) -> tuple[dict[str, Any], list[Path]]:
    """Run every job, compare, write ``study.json``/``study.md`` and ``report.html``.
    Returns the study and the files written."""
    from .report import build_study, write_html, write_study

    jobs, specs = make_jobs(cfg)
    outcomes: list[Outcome] = run_jobs(jobs, quiet=quiet)
    study = build_study(cfg, outcomes, specs)
    files = list(write_study(study, cfg.out))
    page = write_html(study, cfg.out)
    return study, files + ([page] if page else [])


__all__ = ["StudyConfig", "load_study", "make_jobs", "plan", "run_study"]
