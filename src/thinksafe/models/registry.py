"""The model registry: reasoning VLMs, the models they are compared with, and
what their cards say about running them.

The data lives in ``resources/models/registry.yaml`` (schema in
``docs/models.md``); a user file given with ``--registry FILE`` is merged over
it, field by field. Every stated fact carries the URL it comes from; a field
left null means no checked source states it.

``--model NAME`` on ``thinksafe eval`` (and a study's ``model:``) may be a
registry name: :func:`resolve_model` turns it into a backend spec and applies
the card's system prompt and sampling settings, except where the user set the
same setting explicitly. What was applied, and what was not and why, is
returned as a record that goes into ``run.json``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import GenerationSettings

SCHEMA = 1
KINDS = ("base", "reasoning")
BASE_RELATIONS = {
    "trained_from": "trained from this checkpoint (the source says so)",
    "same_family": "same architecture and size; the sources checked do not name the starting checkpoint",
    "sibling_edition": "the non-thinking edition released alongside it",
}
OUTPUT_FORMATS = {
    "think_tags": "<think>reasoning</think> answer",
    "think_close": "reasoning</think> answer (the template opens <think> in the prompt)",
    "think_answer_tags": "<think>reasoning</think> <answer>answer</answer>",
    "llavacot": "<SUMMARY>/<CAPTION>/<REASONING> then <CONCLUSION>answer</CONCLUSION>",
    "reasoning_field": "the server returns the thinking in reasoning_content (needs a reasoning parser)",
    "sections": "'### ...' sections ending with '### The final answer is:'",
    "plain": "no thinking markup: the whole output is the answer",
}
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "presence_penalty", "max_tokens", "seed")
VLLM_KEYS = ("reasoning_parser", "max_model_len", "limit_mm_per_prompt", "dtype", "extra_args")
SOURCED = ("hub_id", "base", "architecture", "output_format", "system_prompt", "sampling", "vllm",
           "trust_remote_code")
"""Fields that state a fact and so need an entry in ``sources`` when set."""
FIELDS = ("title", "kind", "hub_id", "base", "base_relation", "base_external", "architecture", "output_format",
          "system_prompt", "sampling", "vllm", "trust_remote_code", "quirks", "sources")
NOT_STATED = "not stated on the card"

# GenerationSettings fields the registry may set, and the sampling key each comes from.
_SETTINGS_FROM = {"system": "system_prompt", "temperature": "temperature", "top_p": "top_p",
                  "max_tokens": "max_tokens", "seed": "seed"}
# Sampling keys with no thinksafe flag: sent as extra request fields to OpenAI-compatible servers.
_EXTRA_BODY_KEYS = ("top_k", "repetition_penalty", "presence_penalty")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry; ``data`` holds the fields of ``FIELDS``."""

    name: str
    data: dict[str, Any]
    origin: str
    """The file the entry (or its last override) came from."""

    def __getitem__(self, key: str) -> Any:
        return self.data.get(key)

    @property
    def hub_id(self) -> str:
        return self.data["hub_id"]

    def source(self, fact: str) -> list[str]:
        src = (self.data.get("sources") or {}).get(fact)
        return [] if src is None else [src] if isinstance(src, str) else list(src)


@dataclass
class Registry:
    entries: dict[str, ModelEntry]
    files: list[str] = field(default_factory=list)

    def get(self, name: str) -> ModelEntry | None:
        """An entry by name (case-insensitive) or by hub id."""
        key = name.lower()
        if key in self.entries:
            return self.entries[key]
        return next((e for e in self.entries.values() if e.hub_id.lower() == key), None)

    def require(self, name: str) -> ModelEntry:
        entry = self.get(name)
        if entry is None:
            raise UserError(f"unknown model {name!r}: give openai/NAME or hf/PATH, or a registry name or hub id "
                            f"(`thinksafe models` lists {len(self.entries)} of them)")
        return entry


# ---- loading and validation -----------------------------------------------------------

def builtin_path() -> Path:
    return Path(str(resources.files("thinksafe") / "resources" / "models" / "registry.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: registry file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise UserError(f"{path}: a registry file is a mapping with a 'models:' mapping of name -> entry")
    if data.get("schema", SCHEMA) != SCHEMA:
        raise UserError(f"{path}: registry schema {data.get('schema')!r} is not supported (this thinksafe reads {SCHEMA})")
    return data


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A user entry over a built-in one: fields replace fields; sources merge per fact."""
    merged = {**old, **new}
    merged["sources"] = {**(old.get("sources") or {}), **(new.get("sources") or {})}
    return merged


def load_registry(extra: Path | str | None = None) -> Registry:
    """The built-in registry, with ``extra`` (a user file) merged over it.

    Raises:
        UserError: A file is missing or malformed, or an entry breaks the schema
            (every problem is listed, each naming the file, entry and field).
    """
    paths = [builtin_path()] + ([Path(extra)] if extra else [])
    raw: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for path in paths:
        for name, entry in _read_yaml(path)["models"].items():
            name = str(name)
            if not isinstance(entry, dict):
                raise UserError(f"{path}: model {name}: an entry is a mapping of fields")
            raw[name] = _merge(raw[name], entry) if name in raw else dict(entry)
            origin[name] = str(path)
    problems = validate_entries(raw, origin)
    if problems:
        raise UserError("invalid model registry:\n  " + "\n  ".join(problems))
    return Registry({n: ModelEntry(n, d, origin[n]) for n, d in raw.items()}, [str(p) for p in paths])


def validate_entries(models: dict[str, dict[str, Any]], origin: dict[str, str] | None = None) -> list[str]:
    """Every schema problem of a set of entries, one message each (empty: valid)."""
    problems = []
    for name, entry in models.items():
        where = f"{(origin or {}).get(name, '<registry>')}: model {name}"
        problems += [f"{where}: {p}" for p in _entry_problems(name, entry, models)]
    return problems


def _entry_problems(name: str, e: dict[str, Any], models: dict[str, Any]) -> list[str]:
    out = []
    if not _NAME_RE.match(name):
        out.append("names are lower-case letters, digits, '.', '_' and '-'")
    out += [f"unknown field {k!r} (fields: {', '.join(FIELDS)})" for k in e if k not in FIELDS]
    if e.get("kind") not in KINDS:
        out.append(f"kind must be one of {', '.join(KINDS)}, not {e.get('kind')!r}")
    if not isinstance(e.get("hub_id"), str) or "/" not in e["hub_id"]:
        out.append("hub_id must be an OWNER/NAME hub id")
    out += _base_problems(e, models)
    if e.get("output_format") is not None and e["output_format"] not in OUTPUT_FORMATS:
        out.append(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}")
    out += _mapping_problems(e, "sampling", SAMPLING_KEYS, numeric=True)
    out += _mapping_problems(e, "vllm", VLLM_KEYS, numeric=False)
    if e.get("trust_remote_code") not in (None, True, False):
        out.append("trust_remote_code must be true, false or null")
    if e.get("system_prompt") is not None and not isinstance(e["system_prompt"], str):
        out.append("system_prompt must be text or null")
    return out + _quirk_problems(e) + _source_problems(e)


def _base_problems(e: dict[str, Any], models: dict[str, Any]) -> list[str]:
    base = e.get("base")
    if base is None:
        return []
    out = []
    if e.get("base_relation") not in BASE_RELATIONS:
        out.append(f"base_relation must be one of {', '.join(BASE_RELATIONS)}")
    if e.get("base_external"):
        if not isinstance(base, str) or "/" not in base:
            out.append("an external base is named by its OWNER/NAME hub id")
    elif base not in models:
        out.append(f"base {base!r} is not a registry entry (add it, or set base_external: true and give its hub id)")
    return out


def _mapping_problems(e: dict[str, Any], key: str, allowed: tuple[str, ...], numeric: bool) -> list[str]:
    value = e.get(key)
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f"{key} must be a mapping"]
    out = [f"{key}: unknown key {k!r} (keys: {', '.join(allowed)})" for k in value if k not in allowed]
    if numeric:
        out += [f"{key}: {k} must be a number" for k, v in value.items()
                if k in allowed and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    return out


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("https://") and " " not in value


def _quirk_problems(e: dict[str, Any]) -> list[str]:
    quirks = e.get("quirks") or []
    if not isinstance(quirks, list):
        return ["quirks must be a list of {text, source}"]
    return [f"quirk {i + 1} needs a 'text' and an https 'source'" for i, q in enumerate(quirks)
            if not (isinstance(q, dict) and isinstance(q.get("text"), str) and _is_url(q.get("source")))]


def _source_problems(e: dict[str, Any]) -> list[str]:
    sources = e.get("sources")
    if not isinstance(sources, dict) or not sources:
        return ["sources must map each stated fact to the URL it comes from"]
    out = [f"sources: {k!r} is not a fact field (facts: {', '.join(SOURCED)})" for k in sources if k not in SOURCED]
    for fact, src in sources.items():
        urls = [src] if isinstance(src, str) else src
        if not isinstance(urls, list) or not urls or not all(_is_url(u) for u in urls):
            out.append(f"sources: {fact} must be an https URL or a list of them")
    out += [f"{fact} is set but has no source" for fact in SOURCED
            if e.get(fact) is not None and fact not in sources and not (fact == "base" and e.get("base_external"))]
    return out


# ---- resolution -------------------------------------------------------------------------

def is_spec(model: str) -> bool:
    """``openai/NAME`` or ``hf/PATH``: a backend spec, not a registry name."""
    return model.startswith(("openai/", "hf/"))


@dataclass
class Resolved:
    spec: str
    settings: GenerationSettings
    record: dict[str, Any] | None = None
    """What the registry applied (``None`` for a plain spec); saved in ``run.json``."""
    notes: list[str] = field(default_factory=list)


def explicit_params(ctx: Any) -> set[str]:
    """Names of the command's parameters the user set (command line or environment).

    Compared by name: typer ships its own copy of click, so its ``ParameterSource``
    is not ``click.core.ParameterSource``.
    """
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, src in sources.items() if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")}


def resolve_model(model: str, settings: GenerationSettings, *, explicit: set[str], base_url: str | None,
                  registry: Registry | None = None, registry_file: Path | str | None = None,
                  served_name: str | None = None) -> Resolved:
    """Turn ``--model`` into a backend spec and settings.

    A spec (``openai/...``, ``hf/...``) passes through untouched. A registry
    name becomes ``openai/HUB_ID`` when a server URL is given (vLLM serves a
    model under its hub id unless ``--served-model-name`` says otherwise: pass
    ``served_name`` then), else ``hf/HUB_ID``; the card's system prompt and
    sampling settings replace thinksafe's defaults, except for the settings
    named in ``explicit`` (the user's own flags win).
    """
    if is_spec(model):
        return Resolved(model, settings)
    registry = registry or load_registry(registry_file)
    entry = registry.require(model)
    spec = f"openai/{served_name or entry.hub_id}" if base_url else f"hf/{entry.hub_id}"
    applied, kept, skipped = {}, {}, {}
    values = {"system_prompt": entry["system_prompt"], **(entry["sampling"] or {})}
    changes: dict[str, Any] = {}
    for attr, key in _SETTINGS_FROM.items():
        if values.get(key) is None:
            continue
        target = kept if attr in explicit else applied
        target[attr] = values[key]
        if attr not in explicit:
            changes[attr] = values[key]
    extra = dict(settings.extra)
    for key in _EXTRA_BODY_KEYS:
        if values.get(key) is None:
            continue
        if spec.startswith("openai/"):
            extra["extra_body"] = {key: values[key], **(extra.get("extra_body") or {})}
            applied[key] = values[key]
        else:
            skipped[key] = "hf/ models take it from the model's own generation_config"
    resolved = dataclasses.replace(settings, **changes, extra=extra)
    record = {"name": entry.name, "hub_id": entry.hub_id, "spec": spec, "registry_files": registry.files,
              "applied": applied, "overridden_by_flags": kept, "not_applied": skipped,
              "sources": {k: entry.source("system_prompt" if k == "system" else "sampling") for k in applied}}
    notes = []
    if spec.startswith("hf/") and entry["trust_remote_code"] and "trust_remote_code" not in explicit:
        notes.append(f"{entry.name}: the card loads this model with trust_remote_code=True; "
                     "pass --trust-remote-code if you trust its code")
    return Resolved(spec, resolved, record, notes)
