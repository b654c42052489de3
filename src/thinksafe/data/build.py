"""``thinksafe data build``: seeds -> caption -> think -> assemble -> filters -> export.

Every model call goes through a cached stage (see :mod:`.stages`), so a killed
build resumes where it stopped and a finished one re-runs without a request.
Every seed ends either in the dataset or in ``rejected.jsonl`` with a reason.

A seed may have several images: each is captioned, and the teacher reads the
captions in order. A seed that carries its source's own thought with
``?thought=keep`` (MIS, ``jsonl`` rows with a ``thought``) skips the caption
and teacher stages: its thought and answer are cleaned and checked as they
are. ``as_released`` (``--as-released``) asks no model at all: every seed
becomes a row of its source's own text (thought if any, answer), with only the
input checks: the baseline datasets of the Think-in-Safety comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..judges.refusal import find_refusal
from ..models.base import Backend, GenerationSettings, text_messages
from ..models.fingerprint import backend_fingerprint
from ..reasoning import parse_completion
from ..records import Completion, Sample, fingerprint
from ..store.sqlite import Store
from . import prompts
from .export import (compute_stats, dataset_card, dataset_info, sharegpt_record, sharegpt_to_trl, to_llavacot,
                     write_json, write_jsonl, write_trl)
from .filters import (Bounds, Decision, MinHashIndex, Rejection, assemble, check_consistency, check_lengths,
                      check_reply_format, clean_final_answer, clean_thought, dedupe_key, fix_leakage,
                      parse_decision)
from .policy import Policy, load_policy
from .sources import Seed, load_seeds
from .stages import Job, Progress, Stage, StageResult, completion_job


@dataclass
class BuildConfig:
    """Everything ``thinksafe data build`` takes; see the CLI for each option."""

    sources: list[str]
    captioner: str | None
    teacher: str | None
    out: Path
    base_url: str | None = None
    captioner_base_url: str | None = None
    teacher_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    judge: str = "auto"
    judge_model: str | None = None
    judge_base_url: str | None = None
    consistency_model: str | None = None
    policy: Path | None = None
    limit: int | None = None
    concurrency: int = 8
    caption_max_tokens: int = 1024
    teacher_max_tokens: int = 8192
    teacher_temperature: float = 0.6
    bounds: Bounds = field(default_factory=Bounds)
    minhash: float | None = None
    copy_images: bool = False
    llavacot: bool = False
    name: str = "tis"
    store: Path | None = None
    as_released: bool = False
    """Rows of each source's own text (thought if any, answer); no model is asked."""

    def judge_name(self) -> str:
        if self.as_released:
            return "none"
        if self.judge == "auto":
            return "llm" if self.judge_model else "refusal"
        return self.judge


@dataclass
class Item:
    """A seed on its way through the stages."""

    seed: Seed
    image_shas: list[str]
    captions: list[str] = field(default_factory=list)
    completion: Completion | None = None
    thought: str = ""
    answer: str = ""
    decision: Decision | None = None
    rewrites: int = 0
    # Set for a kept own thought whose decision names no category: whether its answer refuses.
    answer_refuses: bool | None = None

    @property
    def image_sha(self) -> str:
        """One hash for the seed's images: the image's own for one image (cache keys of one-image
        rows stay as they were), a hash of the hashes in order for several."""
        if len(self.image_shas) == 1:
            return self.image_shas[0]
        return hashlib.sha256("\n".join(self.image_shas).encode()).hexdigest()

    @property
    def caption(self) -> str:
        """The captions as the metadata and LLaVA-CoT export show them."""
        if len(self.captions) == 1:
            return self.captions[0]
        return "\n".join(f"Image {k}: {c}" for k, c in enumerate(self.captions, start=1))

    @property
    def harmful(self) -> bool:
        """Known harmful, or (unknown) the teacher did not simply answer it."""
        if self.seed.harmful is not None:
            return bool(self.seed.harmful)
        if not (self.decision and self.decision.category) and self.answer_refuses is not None:
            return self.answer_refuses
        return not (self.decision and self.decision.category and self.decision.category.action == "answer")


class _LazyBackend:
    """Builds the backend on first use, so a fully cached re-run loads no model."""

    def __init__(self, make: Callable[[], Backend]):
        self._make, self._backend = make, None

    def get(self) -> Backend:
        if self._backend is None:
            self._backend = self._make()
        return self._backend

    async def complete(self, messages, settings):
        return await self.get().complete(messages, settings)

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()


class Builder:
    """One build into one output folder."""

    def __init__(self, cfg: BuildConfig, on_progress: Progress | None = None):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.policy: Policy = load_policy(cfg.policy)
        self.store = Store(cfg.store or self.out / "cache.sqlite")
        self.on_progress = on_progress
        self.rejected: list[dict[str, Any]] = []
        self.leak_rewritten = 0
        self.stages: dict[str, Stage] = {}
        if not cfg.as_released and not (cfg.captioner and cfg.teacher):
            raise UsageError("--captioner and --teacher are required (or --as-released, which asks no model)")
        self.captioner = self._backend(cfg.captioner or "", cfg.captioner_base_url)
        self.teacher = self._backend(cfg.teacher or "", cfg.teacher_base_url)

    def _backend(self, spec: str, base_url: str | None) -> _LazyBackend:
        from ..models import get_backend

        url = base_url or self.cfg.base_url
        return _LazyBackend(lambda: get_backend(spec, base_url=url, api_key_env=self.cfg.api_key_env,
                                                concurrency=self.cfg.concurrency))

    def _stage(self, name: str) -> Stage:
        return self.stages.setdefault(name, Stage(name, self.store, self.cfg.concurrency, self.on_progress))

    # ---- the pipeline -------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Build the dataset; returns stats.json's content."""
        return asyncio.run(self._run())

    async def _run(self) -> dict[str, Any]:
        try:
            items = self._check_seeds(load_seeds(self.cfg.sources, self.out, self.cfg.limit))
            if self.cfg.as_released:
                items = [i for i in items if self._released(i)]
            else:
                own = [i for i in items if i.seed.keep_thought]
                staged = await self._think(await self._caption([i for i in items if not i.seed.keep_thought]))
                kept = {id(i) for i in own if self._own_thought(i)} | {id(i) for i in staged if self._assemble(i)}
                items = [i for i in items if id(i) in kept]  # source order
                items = await self._check_consistency_llm(items)
                items = await self._judge(items)
                items = self._dedupe(items)
        finally:
            await self.captioner.aclose()
            await self.teacher.aclose()
        return self._export(items)

    def reject(self, seed: Seed, rejection: Rejection, item: Item | None = None) -> None:
        row = {"id": seed.id, "source": seed.source, "category": seed.category, "reason": rejection.reason,
               "filter": rejection.filter, "detail": rejection.detail, "images": seed.images,
               "question": seed.question}
        if item is not None and item.completion is not None:
            row.update(thought=item.thought, answer=item.answer,
                       decision=item.decision.category.label if item.decision and item.decision.category else None)
        self.rejected.append(row)

    def _check_seeds(self, seeds) -> list[Item]:
        items = []
        for seed in seeds:
            if seed.error:
                reason, _, detail = seed.error.partition(": ")
                self.reject(seed, Rejection(reason, detail))
                continue
            shas, problem = images_check(seed.images)
            if problem:
                self.reject(seed, problem)
            else:
                items.append(Item(seed, shas))
        return items

    async def _caption(self, items: list[Item]) -> list[Item]:
        """One caption per image (an image shared by several seeds is captioned once)."""
        settings = GenerationSettings(max_tokens=self.cfg.caption_max_tokens, temperature=0.0, seed=0)
        fp = backend_fingerprint(self.cfg.captioner or "", {})
        jobs = {}
        for item in items:
            for path, sha in zip(item.seed.images, item.image_shas, strict=True):
                messages = text_messages(prompts.caption_prompt(), None, [path])
                inputs = {"prompt": prompts.caption_prompt(), "image_sha256": sha}
                jobs[sha] = completion_job(self.captioner, fp, settings, messages, "caption", inputs)
        results = await self._stage("caption").run(list(jobs.values()))
        kept = []
        for item in items:
            answers = [results[jobs[sha].key] for sha in item.image_shas]
            item.captions = [parse_completion(Completion.from_dict(r.value)).answer if r.value else "" for r in answers]
            failed = next((k for k, (r, c) in enumerate(zip(answers, item.captions)) if r.error or not c), None)
            if failed is not None:
                which = f"image {failed + 1}: " if len(answers) > 1 else ""
                self.reject(item.seed, Rejection("caption_error", which + (answers[failed].error or "empty caption")))
            else:
                kept.append(item)
        return kept

    async def _think(self, items: list[Item]) -> list[Item]:
        settings = GenerationSettings(max_tokens=self.cfg.teacher_max_tokens,
                                      temperature=self.cfg.teacher_temperature, seed=0)
        fp = backend_fingerprint(self.cfg.teacher or "", {})
        jobs = {i.seed.id: completion_job(self.teacher, fp, settings, self.teacher_messages(i), "think")
                for i in items}
        results = await self._stage("think").run(list(jobs.values()))
        kept = []
        for item in items:
            res = results[jobs[item.seed.id].key]
            if res.error:
                self.reject(item.seed, Rejection("teacher_error", res.error))
                continue
            item.completion = Completion.from_dict(res.value)
            kept.append(item)
        return kept

    def teacher_messages(self, item: Item) -> list[dict[str, Any]]:
        seed = item.seed
        section = self.policy.section_for_category(seed.category)
        text = prompts.teacher_prompt(self.policy, item.captions, seed.question, seed.reference_answer, section)
        return text_messages(text)

    def _assemble(self, item: Item) -> bool:
        """Parse, clean and check one teacher reply; False when rejected."""
        assert item.completion is not None
        gen = parse_completion(item.completion)
        item.thought = gen.reasoning
        # With a reference the answer is the reference itself, as in TiS.
        item.answer = item.seed.reference_answer or gen.answer
        problem = check_reply_format(item.completion, gen.truncated_in_reasoning)
        if problem is None:
            problem = self._clean_and_check(item)
        if problem:
            self.reject(item.seed, problem, item)
            return False
        return True

    def _own_thought(self, item: Item) -> bool:
        """A seed with its source's own thought (``?thought=keep``): cleaned and checked, no
        teacher asked; False when rejected. Its text was written without any caption, so no
        leakage check; the decision is read from the thought when it names one, else from
        whether the answer refuses (the source's own text need not follow the policy's format)."""
        item.thought, item.answer = item.seed.thought or "", item.seed.reference_answer or ""
        if not item.answer.strip():
            self.reject(item.seed, Rejection("empty_answer", "the source row has a thought but no answer"), item)
            return False
        item.thought, item.answer = clean_thought(item.thought), clean_final_answer(item.answer)
        problem = check_lengths(item.thought, item.answer, self.cfg.bounds)
        if problem:
            self.reject(item.seed, problem, item)
            return False
        item.decision = parse_decision(item.thought, self.policy)
        if item.decision.category is None:
            item.answer_refuses = find_refusal(item.answer) is not None
        return True

    def _released(self, item: Item) -> bool:
        """``as_released``: the source's own thought (if any) and answer, cleaned; False when
        the row has no answer."""
        item.thought = clean_thought(item.seed.thought or "")
        item.answer = clean_final_answer(item.seed.reference_answer or "")
        if not item.answer:
            hint = " (spavl: add ?reference=chosen)" if item.seed.source == "spavl" else ""
            self.reject(item.seed, Rejection("no_reference", f"the source row has no answer{hint}"), item)
            return False
        return True

    def _clean_and_check(self, item: Item) -> Rejection | None:
        item.thought = clean_thought(item.thought)
        item.answer = clean_final_answer(item.answer)
        problem = check_lengths(item.thought, item.answer, self.cfg.bounds)
        if problem:
            return problem
        problem = self._leakage(item)
        if problem:
            return problem
        item.decision = parse_decision(item.thought, self.policy)
        return check_consistency(item.decision, item.answer)

    def _leakage(self, item: Item) -> Rejection | None:
        # A reference answer is source data written without any caption, so
        # only the teacher's own text is checked.
        texts = {"thought": item.thought} if item.seed.reference_answer else \
            {"thought": item.thought, "answer": item.answer}
        for name, text in texts.items():
            result = fix_leakage(text)
            if result.leftovers:
                return Rejection("leakage", f"{name} mentions {', '.join(sorted(set(result.leftovers)))}")
            setattr(item, name, result.text)
            item.rewrites += result.rewrites
        self.leak_rewritten += item.rewrites
        return None

    async def _check_consistency_llm(self, items: list[Item]) -> list[Item]:
        """Optional second opinion on thought/answer agreement from a model."""
        if not self.cfg.consistency_model:
            return items
        checker = self._backend(self.cfg.consistency_model, self.cfg.judge_base_url)
        settings = GenerationSettings(max_tokens=1024, temperature=0.0, seed=0)
        fp = backend_fingerprint(self.cfg.consistency_model, {})
        jobs = {i.seed.id: completion_job(checker, fp, settings, text_messages(
            prompts.consistency_prompt(i.thought, i.answer)), "consistency") for i in items}
        try:
            results = await self._stage("consistency").run(list(jobs.values()))
        finally:
            await checker.aclose()
        return [i for i in items if self._consistency_verdict(i, results[jobs[i.seed.id].key])]

    def _consistency_verdict(self, item: Item, res) -> bool:
        from ..judges.llm import parse_one_word

        if res.error:
            self.reject(item.seed, Rejection("consistency_error", res.error), item)
            return False
        word = parse_one_word(parse_completion(Completion.from_dict(res.value)).answer,
                              ("consistent", "inconsistent"))
        if word != "consistent":
            self.reject(item.seed, Rejection("inconsistent_llm", f"checker said {word or 'something unreadable'}"),
                        item)
            return False
        return True

    async def _judge(self, items: list[Item]) -> list[Item]:
        """Answer safety: harmful seeds keep only answers the judge calls safe."""
        name = self.cfg.judge_name()
        if name == "none":
            return items
        from ..judges import make_judge
        from ..judges.refusal import RefusalJudge

        judge = make_judge(name, None, model=self.cfg.judge_model,
                           base_url=self.cfg.judge_base_url or self.cfg.base_url,
                           api_key_env=self.cfg.api_key_env, concurrency=self.cfg.concurrency)
        jobs = {i.seed.id: self._judge_job(judge, i) for i in items if i.harmful}
        try:
            if isinstance(judge, RefusalJudge):
                # A rule judge asks no model: run it inline, uncached and uncounted.
                results = {job.key: await _direct(job) for job in jobs.values()}
            else:
                results = await self._stage("judge").run(list(jobs.values()))
        finally:
            await judge.aclose()
        return [i for i in items if i.seed.id not in jobs or self._judge_verdict(i, results[jobs[i.seed.id].key])]

    def _judge_job(self, judge, item: Item) -> Job:
        seed = item.seed
        sample = Sample(id=seed.id, benchmark="data", prompt=seed.question, images=list(seed.images),
                        category=seed.category or "")
        key = fingerprint({"judge": judge.fingerprint, "question": seed.question, "answer": item.answer,
                           "image_sha256": item.image_sha})

        async def call() -> dict[str, Any]:
            j = await judge.judge(sample, item.answer, "answer")
            return {"error": j.extra["error"]} if "error" in j.extra else j.to_dict()

        return Job(key, call)

    def _judge_verdict(self, item: Item, res) -> bool:
        if res.error:
            self.reject(item.seed, Rejection("judge_error", res.error), item)
            return False
        label = res.value.get("label")
        if label == "safe":
            return True
        reason = "unsafe_answer" if label == "unsafe" else "judge_unparsed"
        self.reject(item.seed, Rejection(reason, f"judge: {label} ({res.value.get('raw', '')[:200]})"), item)
        return False

    def _dedupe(self, items: list[Item]) -> list[Item]:
        seen: dict[str, str] = {}
        index = MinHashIndex(self.cfg.minhash) if self.cfg.minhash else None
        kept = []
        for item in items:
            key = dedupe_key(item.image_sha, item.seed.question)
            if key in seen:
                self.reject(item.seed, Rejection("duplicate", f"same image and question as {seen[key]}"), item)
                continue
            seen[key] = item.seed.id
            other = index.add(item.seed.id, f"{item.seed.question}\n{item.thought}\n{item.answer}") if index else None
            if other:
                self.reject(item.seed, Rejection("near_duplicate", f"similar to {other}"), item)
                continue
            kept.append(item)
        return kept

    # ---- outputs ------------------------------------------------------------------
    def _export(self, items: list[Item]) -> dict[str, Any]:
        records = [sharegpt_record(i.seed.question, assemble(i.thought, i.answer) if i.thought else i.answer,
                                   self._image_refs(i), self._metadata(i)) for i in items]
        write_json(self.out / "tis.json", records)
        info = dataset_info(self.cfg.name, "tis.json")
        if self.cfg.llavacot:
            write_json(self.out / "tis_llavacot.json", [to_llavacot(r) for r in records])
            info.update(dataset_info(f"{self.cfg.name}_llavacot", "tis_llavacot.json"))
        write_json(self.out / "dataset_info.json", info)
        trl = write_trl([sharegpt_to_trl(r) for r in records], self.out / "trl", self.out)
        write_jsonl(self.out / "rejected.jsonl", self.rejected)
        stats = compute_stats(records, self.rejected, self._header(trl))
        write_json(self.out / "stats.json", stats)
        (self.out / "README.md").write_text(dataset_card(stats, self.cfg.name), encoding="utf-8")
        return stats

    def _image_refs(self, item: Item) -> list[str]:
        """Absolute paths, or copies under ``images/`` relative to the output folder."""
        if not self.cfg.copy_images:
            return list(item.seed.images)
        refs = []
        for path, sha in zip(item.seed.images, item.image_shas, strict=True):
            dest = self.out / "images" / f"{sha[:20]}{Path(path).suffix.lower()}"
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
            refs.append(str(dest.relative_to(self.out)))
        return refs

    def _metadata(self, item: Item) -> dict[str, Any]:
        d = item.decision
        return {
            "id": item.seed.id, "source": item.seed.source, "category": item.seed.category,
            "harmful": item.seed.harmful, "decision": d.category.label if d and d.category else None,
            "action": d.category.action if d and d.category else None, "section": d.section if d else None,
            "policy": f"{self.policy.name}@{self.policy.version}", "policy_sha256": self.policy.sha256,
            "captioner": self.cfg.captioner, "teacher": self.cfg.teacher, "images": len(item.seed.images),
            "thought_from": "source" if item.seed.keep_thought or self.cfg.as_released else "teacher",
            "reference_answer": bool(item.seed.reference_answer), "caption": item.caption,
            "thought_words": len(item.thought.split()), "answer_words": len(item.answer.split()),
            "leakage_rewrites": item.rewrites,
        }

    def _header(self, trl: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.cfg.name,
            "policy": self.policy.describe(),
            "as_released": self.cfg.as_released,
            "models": {"captioner": self.cfg.captioner, "teacher": self.cfg.teacher,
                       "judge": self.cfg.judge_name() + (f" ({self.cfg.judge_model})" if self.cfg.judge_model else ""),
                       "consistency": self.cfg.consistency_model},
            "prompts": {"caption": prompts.CAPTION_VERSION, "teacher": prompts.TEACHER_VERSION,
                        "consistency": prompts.CONSISTENCY_VERSION},
            "sources": self.cfg.sources,
            "stages": {name: s.stats.to_dict() for name, s in self.stages.items()},
            "requests": sum(s.stats.requests for s in self.stages.values()),
            "leakage": {"rewritten": self.leak_rewritten,
                        "rejected": sum(r["reason"] == "leakage" for r in self.rejected)},
            "bounds": asdict(self.cfg.bounds),
            "trl": trl,
        }


async def _direct(job: Job) -> StageResult:
    value = await job.call()
    return StageResult(error=value["error"]) if value.get("error") else StageResult(value)


def images_check(paths: list[str]) -> tuple[list[str], Rejection | None]:
    """The sha256 of each image, or why one cannot be used (none, missing, unreadable)."""
    if not paths:
        return [], Rejection("missing_image", "the source row has no image")
    shas = []
    for k, path in enumerate(paths):
        sha, problem = image_check(path)
        if problem:
            if len(paths) > 1:
                problem.detail = f"image {k + 1} of {len(paths)}: {problem.detail}"
            return [], problem
        shas.append(sha)
    return shas, None


def image_check(path: str) -> tuple[str, Rejection | None]:
    """The image's sha256, or why it cannot be used (missing, unreadable)."""
    from PIL import Image, UnidentifiedImageError

    if not path:
        return "", Rejection("missing_image", "the source row has no image")
    p = Path(path)
    if not p.is_file():
        return "", Rejection("missing_image", f"{path} does not exist")
    data = p.read_bytes()
    try:
        with Image.open(p) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return "", Rejection("unreadable_image", f"{path}: {type(exc).__name__}: {exc}")
    return hashlib.sha256(data).hexdigest(), None


def run_build(cfg: BuildConfig, on_progress: Progress | None = None) -> dict[str, Any]:
    """Build a dataset (library entry point of ``thinksafe data build``)."""
    builder = Builder(cfg, on_progress)
    try:
        return builder.run()
    finally:
        builder.store.close()
