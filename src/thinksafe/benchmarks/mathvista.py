"""MathVista testmini (Lu et al., ICLR 2024; arXiv 2310.02255): mathematical reasoning in visual contexts.

1,000 problems: multiple choice (540) and free-form integer, float and list
answers; five tasks (figure QA, geometry problem solving, math word problem,
textbook QA, visual QA).

Checked against github.com/lupantech/MathVista at commit 53d525874bdde205128e6b160b7357a88277d479:
``evaluation/extract_answer.py``, ``evaluation/prompts/ext_ans.py``,
``evaluation/calculate_score.py``, ``evaluation/generate_response.py``,
``models/gpt.py``, ``data/testmini.json``, ``data/query.json``.

Inputs (``--data``), either layout:

* the Hugging Face release AI4Math/MathVista: ``data/testmini-*.parquet``
  (columns ``pid``, ``question``, ``image``, ``decoded_image``, ``choices``,
  ``unit``, ``precision``, ``answer``, ``question_type``, ``answer_type``,
  ``metadata``, ``query``), images embedded;
* the authors' repository layout: ``testmini.json`` (pid -> problem) and
  ``query.json`` (pid -> query) in ``--data`` or ``--data/data/``, with the
  images (``images/{pid}.jpg``, from the release's ``images.zip``) beside them.

Download (without ``--data``): AI4Math/MathVista at commit
f155273e63944d0d0027c6aacdaa07b2538d92f2,
``data/testmini-00000-of-00001-725687bf7a18d64b.parquet`` (142 MB, as
re-uploaded in 9d44aa5; the first upload, c12acf2, had other bytes), checked
against the sha256 the dataset's page lists for it at that commit (the Git LFS
object id).

The model gets the problem's ``query`` (the authors' zero-shot query: hint,
question, choices) and the image. Sample id = ``pid``; category = the task.

Judge (``--judge official``, the default): the authors' extraction, then
their scoring.

1. Rule first, on the answer with the thinking removed: the authors' rules
   (a multiple-choice answer that is one of the choices; an answer that parses
   as an integer / float for those answer types; their quick rule ``The answer
   is "X".``), then two of ours: for multiple choice the shared reader
   (:func:`thinksafe.benchmarks.answers.extract_choice`: "B", "(B)",
   "Answer: B", an option's text); for numbers, an answer that is one number
   once markdown, ``\\boxed{}``, an "Answer:" label and a final "." are removed.
2. When the rule fails: the authors' LLM extraction, through ``--judge-model``:
   their prompt, verbatim (``ext_ans.py``'s examples, then the query, the
   response and ``Extracted answer: ``), temperature 0, up to 1,024 tokens,
   the reply's own thinking removed. Without ``--judge-model`` the answer is
   ``unparsed`` (a warning says so).
3. Normalisation as ``calculate_score.py``: a letter (or "(X)") names the
   choice; integers ``str(int(float(x)))``; floats
   ``str(round(float(x), precision))``; lists ``str(x)``. Right when the
   normalised prediction equals the answer string.

Labels ``correct`` / ``wrong`` / ``unparsed`` / ``missing``; ``extra``:
``extraction``, ``prediction``, ``how`` (``rule`` / ``llm`` / ``none``).

Metric (``official``): accuracy over every problem that ran (unparsed and
missing answers earn no credit and are counted), by task (``by_task``) and by
question type (``by_question_type``).

Deviations from the authors' code:

* The response read is the answer after the thinking; a reply cut off while
  thinking is ``missing`` and never sent to the extractor.
* Rule: the shared multiple-choice reader and the bare-number rule are ours;
  the quick rule is on (a flag, off by default, in the authors' script).
* Normalisation of a multiple-choice extraction that is neither a letter nor
  a choice: the authors take the choice with the smallest Levenshtein
  distance (any text becomes some option); we use the shared reader and call
  the rest ``unparsed``. An extraction that does not parse as a number is
  ``unparsed`` where the authors' prediction is None (wrong): neither earns credit.
* Extractor model: the user's ``--judge-model`` (theirs: Azure GPT); an
  extractor call that fails is ``unparsed`` with the error and retried on the
  next run (the authors retry up to a million times, then extract "").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..judges import judge_backend
from ..judges.base import Judge
from ..models.base import Backend, BackendError, GenerationSettings, text_messages
from ..reasoning import parse_completion
from ..records import MISSING, UNPARSED, Judgment, Sample
from .answers import clean_markup, extract_choice, letters_for
from .base import LoaderError, Result, register
from .capability import CapabilityBenchmark, verdict
from .download import Remote
from .files import attach_embedded_image, attach_image, iter_parquet_rows, load_json

log = logging.getLogger(__name__)

_HF, _HF_REVISION = "AI4Math/MathVista", "f155273e63944d0d0027c6aacdaa07b2538d92f2"
TASKS = ("figure question answering", "geometry problem solving", "math word problem",
         "textbook question answering", "visual question answering")

# evaluation/prompts/ext_ans.py, demo_prompt, verbatim.
DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""
_QUICK = re.compile(r'The answer is "(.*)"\.')
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_LABEL = re.compile(r"^(?:(?:final\s+)?answer|result)\s*[:：=]\s*", re.IGNORECASE)


def extraction_prompt(query: str, response: str) -> str:
    """``create_test_prompt`` of ``extract_answer.py``."""
    return f"{DEMO_PROMPT.strip()}\n\n{query}\n\n{response}\n\nExtracted answer: "


def rule_extract(fields: dict[str, Any], response: str) -> str | None:
    """The extraction without a model (see the module doc, step 1); None when it fails."""
    choices, kind = fields.get("choices") or [], fields["answer_type"]
    if fields["question_type"] == "multi_choice" and response in choices:
        return response
    for typ, cast in (("integer", int), ("float", float)):
        if kind == typ:
            try:
                return str(cast(response))
            except ValueError:
                pass
    quick = _QUICK.search(response)
    if quick:
        return quick.group(1)
    if fields["question_type"] == "multi_choice":
        choice = extract_choice(response, letters_for(choices))
        return choice.letter if choice else None
    if kind in ("integer", "float"):
        bare = _LABEL.sub("", clean_markup(response)).rstrip(".").strip()
        return bare if _NUMBER.fullmatch(bare) else None
    return None


def normalize(extraction: str, fields: dict[str, Any]) -> str | None:
    """``normalize_extracted_answer`` of ``calculate_score.py`` (multiple choice: the shared reader
    instead of the nearest choice); None when the extraction cannot be read."""
    kind = fields["answer_type"]
    if fields["question_type"] == "multi_choice":
        options = letters_for(fields.get("choices") or [])
        letter = re.findall(r"\(([a-zA-Z])\)", extraction.strip())
        extraction = letter[0].upper() if letter else extraction.strip()
        choice = extract_choice(extraction, options)
        return options[choice.letter] if choice else None
    try:
        if kind == "integer":
            return str(int(float(extraction)))
        if kind == "float":
            return str(round(float(extraction), int(fields.get("precision") or 0)))
    except (TypeError, ValueError):
        return None
    return str(extraction)


def _judgment(fields: dict[str, Any], extraction: str | None, how: str, **extra: Any) -> Judgment:
    if extraction is None:
        return verdict("answer", None, "no answer extracted", how=how, extraction=None, **extra)
    prediction = normalize(extraction, fields)
    correct = None if prediction is None else prediction == fields["answer"]
    return verdict("answer", correct, f"{how}: {extraction!r} -> {prediction!r}", how=how, extraction=extraction,
                   prediction=prediction, answer=fields["answer"], **extra)


class ExtractionJudge(Judge):
    """The authors' answer extraction and scoring: rule first, the LLM prompt when it fails."""

    name = "mathvista-extract"
    version = "1"
    targets = ("answer",)

    def __init__(self, backend: Backend | None = None):
        self.backend = backend
        self.settings = GenerationSettings(max_tokens=1024, temperature=0.0, seed=0)

    def fingerprint_config(self) -> dict[str, Any]:
        model = self.backend.fingerprint_config() if self.backend else None
        return {"name": self.name, "version": self.version, "extractor": model, "settings": self.settings.to_dict()}

    @property
    def concurrency(self) -> int:
        return self.backend.concurrency if self.backend else 64

    async def judge(self, sample: Sample, text: str, target: str) -> Judgment:
        fields = sample.fields
        extraction = rule_extract(fields, text)
        if extraction is not None or self.backend is None:
            return _judgment(fields, extraction, "rule" if extraction is not None else "none")
        try:
            completion = await self.backend.complete(text_messages(extraction_prompt(sample.prompt, text)),
                                                     self.settings)
        except BackendError as exc:  # not a verdict: retried on the next run
            return Judgment(target, UNPARSED, raw="", extra={"how": "llm", "error": str(exc)})
        reply = parse_completion(completion)
        extraction = reply.answer.strip() if not reply.truncated_in_reasoning else ""
        return _judgment(fields, extraction or None, "llm", extractor_reply=completion.content)

    async def aclose(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()


@register
class MathVista(CapabilityBenchmark):
    name = "mathvista"
    title = "MathVista testmini: mathematical reasoning in visual contexts"
    source = "https://github.com/lupantech/MathVista; Hugging Face AI4Math/MathVista (testmini)"
    metric = "accuracy overall and by task (authors' extraction: rule, then their LLM prompt on --judge-model)"
    subsets = {"testmini": 1000}
    default_subset = "testmini"
    groups = ("task", "question_type")
    release = (Remote.hf(_HF, _HF_REVISION, "data/testmini-00000-of-00001-725687bf7a18d64b.parquet",
                         sha256="373f6c0b412a9be2cec36711cee724e03f4c5db6908f3c13db903aa9694d4f2d"),)
    download_size = "AI4Math/MathVista testmini parquet: 142 MB, the 1,000 problems with their images"

    def parquet_files(self) -> list[Path]:
        return sorted(self.data_dir().glob("data/testmini-*.parquet"))

    def json_dir(self) -> Path:
        root = self.data_dir()
        return next((d for d in (root, root / "data") if (d / "testmini.json").is_file()), root)

    def files(self) -> list[Path]:
        return self.parquet_files() or [self.json_dir() / "testmini.json", self.json_dir() / "query.json"]

    def load(self) -> Iterator[Sample]:
        return self.listing_missing(self._from_parquet() if self.parquet_files() else self._from_json())

    def _from_parquet(self) -> Iterator[Sample]:
        for path in self.parquet_files():
            for n, row in enumerate(iter_parquet_rows(path), start=1):
                where = f"{path}, row {n}"
                sample = self._sample(row, row.get("query"), where)
                if not sample.error:
                    attach_embedded_image(sample, row.get("decoded_image"),
                                          self.workdir / "images" / self.name / sample.id, where)
                yield sample

    def _from_json(self) -> Iterator[Sample]:
        folder = self.json_dir()
        if not (folder / "testmini.json").is_file():
            raise LoaderError(f"{self.data_dir()}: no MathVista data (expected data/testmini-*.parquet of {_HF}, "
                              "or the authors' testmini.json and query.json with images/)")
        problems = load_json(folder / "testmini.json", dict, "an object mapping each pid to its problem")
        queries = load_json(folder / "query.json", dict, "an object mapping each pid to its query") \
            if (folder / "query.json").is_file() else {}
        for pid, row in problems.items():
            where = f"{folder / 'testmini.json'}, pid {pid}"
            sample = self._sample({"pid": pid, **row} if isinstance(row, dict) else {"pid": pid},
                                  queries.get(str(pid)), where)
            if not sample.error:
                attach_image(sample, folder, str(row.get("image") or f"images/{pid}.jpg"), where)
            yield sample

    def _sample(self, row: dict[str, Any], query: Any, where: str) -> Sample:
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        sid = str(row.get("pid") or f"row-{where.rsplit(' ', 1)[-1]}")
        need = ("answer", "question_type", "answer_type")
        bad = [k for k in need if not isinstance(row.get(k), str)] + ([] if isinstance(query, str) else ["query"])
        choices = [str(c) for c in row.get("choices") or []]
        if not bad and row["question_type"] == "multi_choice" and row["answer"] not in choices:
            bad.append("answer among choices")
        if bad:
            return Sample(sid, self.name, "", error=f"{where}: malformed MathVista problem ({', '.join(bad)})")
        fields = {"answer": row["answer"], "question_type": row["question_type"], "answer_type": row["answer_type"],
                  "choices": choices, "precision": row.get("precision"), "unit": row.get("unit"),
                  "task": str(meta.get("task") or ""), "category": str(meta.get("category") or ""),
                  "source": str(meta.get("source") or "")}
        return Sample(sid, self.name, query, category=fields["task"], fields=fields)

    # ---- protocol ------------------------------------------------------------------
    def score(self, sample: Sample, answer: str) -> Judgment:
        """The rule alone (no model): what the metrics use when no extraction judgment is stored."""
        extraction = rule_extract(sample.fields, answer)
        return _judgment(sample.fields, extraction, "rule" if extraction is not None else "none")

    def rule_judge(self) -> Judge:
        return ExtractionJudge()

    def official_judge(self, model: str | None = None, base_url: str | None = None,
                       api_key_env: str = "OPENAI_API_KEY", concurrency: int | None = None, **_: Any) -> Judge | None:
        """The extraction with the LLM fallback on ``--judge-model``; without one, None (the rule alone)."""
        if not model:
            log.warning("mathvista: no --judge-model: answers the rule cannot read are unparsed "
                        "(the authors extract them with an LLM)")
            return None
        return ExtractionJudge(judge_backend(model, base_url, api_key_env, concurrency))

    def judgment(self, result: Result) -> Judgment | None:
        """The stored extraction judgment (it may hold the LLM's reading), else the rule's."""
        j = result.judgments.get("answer")
        base = super().judgment(result)
        if base is None or base.label == MISSING or j is None or "how" not in j.extra:
            return base
        return j
