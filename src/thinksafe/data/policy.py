"""The safety policy the teacher reasons against, loaded from a data file.

The policy is data, not code: a versioned YAML file (the default ships in
``thinksafe/resources/policy/``) or a Markdown file, swapped with
``--policy FILE``. Its sha256 goes into every output so a dataset always says
which policy text produced it.

YAML layout (see the shipped file for a full example)::

    name: tis-policy
    version: "1"
    title: Safety Regulations
    preamble: ...
    sections: [{id, title, aliases, definition, disallowed: [..], allowed: [..]}, ...]
    request_categories: [{id, label, title, action, description}, ...]

A Markdown policy is sent to the teacher as written. Its ``## `` headings are
the section titles, and optional YAML front matter (between ``---`` lines)
gives ``name``, ``version`` and ``request_categories``; without them the
default Allowed / Disallowed / Safe Completion categorisation is used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

DEFAULT_POLICY = "tis-policy-v1.yaml"
ACTIONS = ("answer", "refuse", "safe_complete")


class PolicyError(UserError, ValueError):
    """The policy file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Section:
    """One policy section: what it covers, what is disallowed and allowed."""

    id: str
    title: str
    aliases: tuple[str, ...] = ()
    definition: str = ""
    disallowed: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestCategory:
    """A request class (e.g. Safe Completion) and what the assistant does with it."""

    id: str
    label: str
    title: str
    action: str
    description: str = ""


_DEFAULT_CATEGORIES = (
    RequestCategory("allowed", "Allowed", "Allowed Requests", "answer",
                    "Safe requests: answer directly and helpfully."),
    RequestCategory("disallowed", "Disallowed", "Disallowed Requests", "refuse",
                    "Harmful requests: refuse, explain briefly, give no exploitable detail."),
    RequestCategory("safe_completion", "Safe Completion", "Safe Completion Requests", "safe_complete",
                    "Ambiguous or risky requests: answer only the safe part, with safeguards."),
)


@dataclass
class Policy:
    """A loaded policy; ``text()`` is what the teacher reads."""

    name: str
    version: str
    sha256: str
    path: str
    title: str = "Safety Regulations"
    preamble: str = ""
    sections: list[Section] = field(default_factory=list)
    categories: list[RequestCategory] = field(default_factory=lambda: list(_DEFAULT_CATEGORIES))
    body: str | None = None
    """The Markdown text, for Markdown policies (sent as is)."""

    def describe(self) -> dict[str, Any]:
        """Identity of the policy, recorded in stats.json and the dataset card."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "path": self.path}

    def text(self) -> str:
        """The policy rendered for the teacher prompt."""
        if self.body is not None:
            # The teacher must always see the categorisation it is asked to use.
            has_it = "categori" in self.body.lower()
            return self.body.strip() + ("" if has_it else "\n\n" + self.categorisation_text())
        parts = [f"# {self.title}", self.preamble.strip()]
        parts += [_render_section(s) for s in self.sections]
        parts.append(self.categorisation_text())
        return "\n\n".join(p for p in parts if p)

    def categorisation_text(self) -> str:
        lines = ["## User Requests Categorization"]
        lines += [f"- **{c.title}** ({c.label}): {c.description.strip()}" for c in self.categories]
        return "\n".join(lines)

    def labels(self) -> list[str]:
        return [c.label for c in self.categories]

    def category(self, label_or_id: str) -> RequestCategory | None:
        """The request category named by a label or id (case-insensitive)."""
        key = _norm(label_or_id)
        for c in self.categories:
            if key in (_norm(c.label), _norm(c.id), _norm(c.title)):
                return c
        return None

    def find_section(self, text: str) -> Section | None:
        """The section a free-text reference (title, id or alias) points to."""
        key = _norm(text)
        if not key:
            return None
        for s in self.sections:
            if key in (_norm(s.title), _norm(s.id)) or _norm(s.title) in key:
                return s
        for s in self.sections:
            if any(_norm(a) and (_norm(a) == key or re.search(rf"\b{re.escape(_norm(a))}\b", key))
                   for a in s.aliases):
                return s
        return None

    def section_for_category(self, category: str | None) -> Section | None:
        """The section a dataset category (``a/b/c``) maps to, most specific part first."""
        if not category:
            return None
        for part in reversed(re.split(r"[/>|]", category)):
            section = self.find_section(part)
            if section:
                return section
        return None


def _render_section(s: Section) -> str:
    lines = [f"## {s.title}"]
    if s.definition:
        lines.append(s.definition.strip())
    if s.disallowed:
        lines.append("Disallowed Content:")
        lines += [f"- {x}" for x in s.disallowed]
    if s.allowed:
        lines.append("Allowed Content:")
        lines += [f"- {x}" for x in s.allowed]
    return "\n".join(lines)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[_\-/*:]+", " ", str(text)).lower().split())


def default_policy_path() -> Path:
    """The policy shipped with the package."""
    return Path(str(resources.files("thinksafe").joinpath("resources", "policy", DEFAULT_POLICY)))


def load_policy(path: Path | str | None = None) -> Policy:
    """Load a YAML or Markdown policy (the shipped default when ``path`` is None).

    Raises:
        PolicyError: the file is missing or malformed.
    """
    path = Path(path) if path else default_policy_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    sha = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8")
    if path.suffix.lower() in (".md", ".markdown", ".txt"):
        return _markdown_policy(text, path, sha)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path} must be a YAML mapping")
    return _yaml_policy(data, path, sha)


def _yaml_policy(data: dict[str, Any], path: Path, sha: str) -> Policy:
    for key in ("name", "version", "sections"):
        if key not in data:
            raise PolicyError(f"policy {path} has no {key!r}")
    sections = [_section(s, path) for s in data["sections"] or []]
    if not sections:
        raise PolicyError(f"policy {path} has no sections")
    return Policy(name=str(data["name"]), version=str(data["version"]), sha256=sha, path=str(path),
                  title=str(data.get("title") or "Safety Regulations"), preamble=str(data.get("preamble") or ""),
                  sections=sections, categories=_categories(data.get("request_categories"), path))


def _section(s: Any, path: Path) -> Section:
    if not isinstance(s, dict) or not s.get("id") or not s.get("title"):
        raise PolicyError(f"policy {path}: every section needs an id and a title (got {s!r:.80})")
    return Section(id=str(s["id"]), title=str(s["title"]), aliases=tuple(map(str, s.get("aliases") or ())),
                   definition=str(s.get("definition") or ""), disallowed=tuple(map(str, s.get("disallowed") or ())),
                   allowed=tuple(map(str, s.get("allowed") or ())))


def _categories(items: Any, path: Path) -> list[RequestCategory]:
    if not items:
        return list(_DEFAULT_CATEGORIES)
    out = []
    for c in items:
        if not isinstance(c, dict) or not c.get("label") or c.get("action") not in ACTIONS:
            raise PolicyError(f"policy {path}: each request category needs a label and an action in {ACTIONS}")
        out.append(RequestCategory(id=str(c.get("id") or c["label"]), label=str(c["label"]),
                                   title=str(c.get("title") or f"{c['label']} Requests"), action=c["action"],
                                   description=str(c.get("description") or "")))
    return out


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)


def _markdown_policy(text: str, path: Path, sha: str) -> Policy:
    meta: dict[str, Any] = {}
    m = _FRONT.match(text)
    if m:
        meta = yaml.safe_load(m.group(1)) or {}
        text = text[m.end():]
    titles = re.findall(r"^##\s+(.+?)\s*$", text, re.MULTILINE)
    sections = [Section(id=_norm(t).replace(" ", "_"), title=t) for t in titles]
    return Policy(name=str(meta.get("name") or path.stem), version=str(meta.get("version") or "unversioned"),
                  sha256=sha, path=str(path), sections=sections,
                  categories=_categories(meta.get("request_categories"), path), body=text)
