"""Judge registry: ``--judge NAME`` -> a Judge.

* ``refusal``: offline rule judge (refusal = safe).
* ``llm``: an LLM judge on ``--judge-model``; under ``--protocol official`` the
  benchmark's official rubric, else the generic one-word safe/unsafe rubric.
* ``official``: the benchmark's own scoring (a rule judge where the authors
  need no model, else its official rubric on ``--judge-model``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Judge, Rubric, neutralize

JudgeFactory = Callable[..., Judge]
FACTORIES: dict[str, JudgeFactory] = {}


def register_judge(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    def deco(fn: JudgeFactory) -> JudgeFactory:
        FACTORIES[name] = fn
        return fn
    return deco


def judge_backend(model: str | None, base_url: str | None, api_key_env: str, concurrency: int | None):
    from ..models import get_backend

    if not model:
        raise ValueError("this judge needs --judge-model (e.g. openai/gpt-4o-mini or hf/PATH)")
    return get_backend(model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency or 16)


@register_judge("refusal")
def _refusal(bench: Any = None, **_: Any) -> Judge:
    from .refusal import RefusalJudge

    return RefusalJudge()


@register_judge("llm")
def _llm(bench: Any = None, model: str | None = None, base_url: str | None = None,
         api_key_env: str = "OPENAI_API_KEY", concurrency: int | None = None, protocol: str = "official",
         **_: Any) -> Judge:
    from .llm import LLMJudge

    rubric = bench.rubric("llm") if bench is not None and protocol == "official" else None
    return LLMJudge(judge_backend(model, base_url, api_key_env, concurrency), rubric)


@register_judge("official")
def _official(bench: Any = None, **kw: Any) -> Judge:
    rule = bench.rule_judge() if bench is not None else None
    if rule is not None:
        return rule
    return FACTORIES["llm"](bench, **{**kw, "protocol": "official"})


def make_judge(spec: str, bench: Any = None, **options: Any) -> Judge:
    """Build the judge named by ``spec`` for ``bench``."""
    name, _, arg = spec.partition(":")
    if name not in FACTORIES:
        raise ValueError(f"unknown judge {spec!r}; known: {', '.join(sorted(FACTORIES))}")
    if arg:
        options["arg"] = arg
    return FACTORIES[name](bench, **options)


__all__ = ["FACTORIES", "Judge", "Rubric", "make_judge", "neutralize", "register_judge"]
