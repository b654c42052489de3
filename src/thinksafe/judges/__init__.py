"""Judge registry: ``--judge NAME`` -> a Judge.

* ``refusal``: offline rule judge (refusal = safe).
* ``llm``: an LLM judge on ``--judge-model``; under ``--protocol official`` the
  benchmark's official rubric, else the generic one-word safe/unsafe rubric.
* ``llm:trace``, ``llm:policy[@N]``: the reasoning-trace rubric, the 1-5 policy rubric.
* ``guard``: Llama Guard 3 Vision / 4 (``--judge-model``).
* ``ensemble:J1,J2,...``: majority vote (ties are ``unparsed``).
* ``official``: the benchmark's own scoring (its special judge, a rule judge
  where the authors need no model, else its official rubric on ``--judge-model``).
* benchmark-specific names registered by benchmark modules (e.g. ``siuo``).

See docs in README, section Judges.
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


@register_judge("official")
def _official(bench: Any = None, **kw: Any) -> Judge:
    special = bench.official_judge(**kw) if bench is not None else None
    if special is not None:
        return special
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


from .extra import register_all  # noqa: E402 - the modules below import this one

register_all()
