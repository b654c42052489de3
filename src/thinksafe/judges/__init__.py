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

Which judge a run uses (:func:`run_judge_spec`) depends on ``--protocol``:
``official`` takes ``--judge`` or else the benchmark's ``default_judge``;
``harmonised`` judges every benchmark with the same generic model judge
(``--judge``, default ``llm``: the one-word safe/unsafe rubric) on ``--judge-model``.

See docs in README, section Judges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from .base import Judge, Rubric, neutralize

PROTOCOLS = ("official", "harmonised")
HARMONISED_JUDGE = "llm"
"""The judge of ``--protocol harmonised`` when ``--judge`` is not given."""
_HARMONISED_TOP = ("llm", "guard", "ensemble")
"""Judges ``--protocol harmonised`` accepts: generic, model-based, the same on every benchmark."""
_HARMONISED_MEMBERS = ("llm", "guard", "refusal")

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
        raise UsageError("this judge needs --judge-model (e.g. openai/gpt-4o-mini or hf/PATH)")
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
        raise UsageError(f"unknown judge {spec!r} (--judge); known: {', '.join(sorted(FACTORIES))}")
    if arg:
        options["arg"] = arg
    return FACTORIES[name](bench, **options)


def run_judge_spec(requested: str | None, bench: Any, protocol: str, model: str | None) -> str:
    """The judge spec a run uses on ``bench``.

    Args:
        requested: ``--judge`` (None: not given).
        bench: The benchmark (its ``default_judge`` applies under ``official``).
        protocol: ``official`` or ``harmonised``.
        model: ``--judge-model``.

    Raises:
        UsageError: An unknown protocol; under ``harmonised``, no judge model or
            a judge that is not generic (``official``, ``refusal``, benchmark judges).
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if protocol == "official":
        return requested or bench.default_judge
    spec = requested or HARMONISED_JUDGE
    name, _, arg = spec.partition(":")
    members = [m.split("@")[0].partition(":")[0] for m in arg.split(",")] if name == "ensemble" else []
    if name not in _HARMONISED_TOP or any(m not in _HARMONISED_MEMBERS for m in members):
        raise UsageError(f"--protocol harmonised judges every benchmark with one generic model judge "
                         f"(llm, guard or an ensemble of llm/guard/refusal), not --judge {spec}")
    if not model and name != "ensemble":  # ensemble members may name their own models
        raise UsageError("--protocol harmonised judges every benchmark with one model judge: pass --judge-model "
                         "(e.g. openai/gpt-4o-mini, with --judge-base-url for your own server)")
    return spec


__all__ = ["FACTORIES", "PROTOCOLS", "Judge", "Rubric", "make_judge", "neutralize", "register_judge",
           "run_judge_spec"]


from .extra import register_all  # noqa: E402 - the modules below import this one

register_all()
