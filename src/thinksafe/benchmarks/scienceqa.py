"""ScienceQA-IMG (Lu et al., NeurIPS 2022; arXiv 2209.09513): science questions with an image, multiple choice.

The test split's questions that come with an image: 2,017 of 4,241, grades 1-12,
natural, social and language science, 2 to 5 options.

Checked against github.com/lupantech/ScienceQA at commit 2cbf8318e07b9ece895bb2ae605e71e38d623264:
``models/base_prompt.py`` (the prompt), ``models/run_gpt3.py`` (answer
extraction), ``tools/evaluate_acc.py`` (the scores), ``tools/download.sh`` and
``data/scienceqa/pid_splits.json`` (the layout).

Inputs (``--data``), any of:

* lmms-lab/ScienceQA, config ScienceQA-IMG: ``ScienceQA-IMG/test-*.parquet``
  (2,017 rows, all with an image);
* derek-thomas/ScienceQA: ``data/test-*.parquet`` (4,241 rows; the rows
  without an image are left out);
* the authors' layout: ``problems.json`` (pid -> problem, ``split`` "test")
  with the images in ``images/test/{pid}/image.png`` (``tools/download.sh``)
  or ``test/{pid}/image.png``.

Download (without ``--data``): lmms-lab/ScienceQA at commit
69dd4d6b67373d38f96a5badd5d24d0eb5bcdc50, ``ScienceQA-IMG/test-00000-of-00001.parquet``
(130 MB, uploaded in df59f11), checked against the sha256 the dataset's page
lists for it at that commit (the Git LFS object id).

Columns used: ``image``, ``question``, ``choices``, ``answer`` (index of the
right choice), ``hint``, ``subject``, ``grade``, ``topic``. Sample id: the pid
(authors' layout), else the question's position among the test questions with
an image, in file order (``1``...); runs on different layouts do not pair.

Prompt: the authors' ``create_one_example`` for the default format ``CQM-A``
as the test example, zero-shot, without a caption (the model sees the image):
``Context: {hint or N/A}\\nQuestion: {question}\\nOptions: (A) ... (B) ...\\nAnswer:``.

Judge (``--judge official``, the default; no model): the shared multiple-choice
reader (:func:`thinksafe.benchmarks.answers.extract_choice`: a letter, "(B)",
"Answer: B", "The answer is B.", the option's own text) on the answer with the
thinking removed. Labels ``correct`` / ``wrong`` / ``unparsed`` / ``missing``.

Metric (``official``): accuracy over every question that ran (unparsed and
missing answers earn no credit and are counted), by subject (``by_subject``),
grade band (``by_grades``: 1-6, 7-12, as ``acc_grade_1_6`` / ``acc_grade_7_12``)
and grade (``by_grade``).

Deviations from the authors' code:

* Zero-shot with the image, where the paper's GPT-3 runs were few-shot on
  text with a generated caption (the prompt template is theirs).
* Extraction: the authors accept only "The answer is X." and, failing that,
  pick a random option (``get_pred_idx``), so an unreadable answer is right by
  luck one time in two to five; we read more forms and count an unreadable
  answer as ``unparsed`` (no credit).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Judgment, Sample
from .answers import letters_for
from .base import LoaderError, register
from .capability import CapabilityBenchmark, score_choice
from .download import Remote
from .files import attach_embedded_image, attach_image, iter_parquet_rows, load_json

_HF = "lmms-lab/ScienceQA (config ScienceQA-IMG) or derek-thomas/ScienceQA"
_HF_REPO, _HF_REVISION = "lmms-lab/ScienceQA", "69dd4d6b67373d38f96a5badd5d24d0eb5bcdc50"
_PARQUET_GLOBS = ("ScienceQA-IMG/test-*.parquet", "data/test-*.parquet", "ScienceQA-FULL/test-*.parquet")
_IMAGE_DIRS = ("images/test", "test")


def create_prompt(question: str, hint: str, choices: list[str]) -> str:
    """The authors' ``create_one_example`` for ``CQM-A``, test example, no caption."""
    context = " ".join([hint or "", ""]).strip() or "N/A"
    choice = " ".join(f"({letter}) {text}" for letter, text in letters_for(choices).items())
    text = f"Context: {context}\nQuestion: {question}\nOptions: {choice}\n" + "Answer:"
    return text.replace("  ", " ").strip()


def grade_band(grade: str) -> str:
    """``"1-6"`` or ``"7-12"`` for ``"grade3"``, as ``evaluate_acc.py`` groups grades."""
    digits = "".join(ch for ch in grade if ch.isdigit())
    return "" if not digits else "1-6" if int(digits) <= 6 else "7-12"


@register
class ScienceQA(CapabilityBenchmark):
    name = "scienceqa"
    title = "ScienceQA-IMG: test-split science questions with an image (multiple choice)"
    source = ("https://github.com/lupantech/ScienceQA; Hugging Face lmms-lab/ScienceQA (ScienceQA-IMG), "
              "derek-thomas/ScienceQA")
    metric = "accuracy overall, by subject and by grade (shared multiple-choice reader; unparsed counted)"
    subsets = {"test": 2017}
    default_subset = "test"
    groups = ("subject", "grades", "grade")
    release = (Remote.hf(_HF_REPO, _HF_REVISION, "ScienceQA-IMG/test-00000-of-00001.parquet",
                         sha256="1f9729818b577d70325a0e59f488f6eeda74c827caddd56b75ccf3e36ed45064"),)
    download_size = "lmms-lab/ScienceQA, ScienceQA-IMG test parquet: 130 MB, the 2,017 questions with their images"

    def parquet_files(self) -> list[Path]:
        root = self.data_dir()
        return next((found for g in _PARQUET_GLOBS if (found := sorted(root.glob(g)))), [])

    def files(self) -> list[Path]:
        return self.parquet_files() or [self.data_dir() / "problems.json"]

    def load(self) -> Iterator[Sample]:
        return self.listing_missing(self._from_parquet() if self.parquet_files() else self._from_problems())

    def _from_parquet(self) -> Iterator[Sample]:
        k = 0
        for path in self.parquet_files():
            for n, row in enumerate(iter_parquet_rows(path), start=1):
                image = row.get("image")
                if not (isinstance(image, dict) and image.get("bytes")):
                    continue  # ScienceQA-IMG: the questions with an image
                k += 1
                where = f"{path}, row {n}"
                sample = self._sample(str(k), row, where)
                if not sample.error:
                    attach_embedded_image(sample, image, self.workdir / "images" / self.name / sample.id, where)
                yield sample

    def _from_problems(self) -> Iterator[Sample]:
        path = self.data_dir() / "problems.json"
        if not path.is_file():
            raise LoaderError(f"{self.data_dir()}: no ScienceQA data (expected the test parquet files of {_HF}, "
                              "or the authors' problems.json with images/test/{pid}/)")
        problems = load_json(path, dict, "an object mapping each pid to its problem")
        for pid, row in problems.items():
            if not isinstance(row, dict) or row.get("split") != "test" or not row.get("image"):
                continue
            where = f"{path}, pid {pid}"
            sample = self._sample(str(pid), row, where)
            if not sample.error:
                root = self.data_dir()
                folder = next((d for d in _IMAGE_DIRS if (root / d / str(pid)).is_dir()), _IMAGE_DIRS[0])
                attach_image(sample, root, f"{folder}/{pid}/{row['image']}", where)
            yield sample

    def _sample(self, sid: str, row: dict[str, Any], where: str) -> Sample:
        choices, answer = row.get("choices"), row.get("answer")
        ok = (isinstance(row.get("question"), str) and isinstance(choices, list) and len(choices) >= 2
              and isinstance(answer, int) and 0 <= answer < len(choices))
        if not ok:
            return Sample(sid, self.name, "", error=f"{where}: malformed ScienceQA row (needs question, choices "
                                                    "and answer, an index into choices)")
        options = letters_for([str(c) for c in choices])
        grade = str(row.get("grade") or "")
        fields = {"options": options, "answer": list(options)[answer], "subject": str(row.get("subject") or ""),
                  "grade": grade, "grades": grade_band(grade), "topic": str(row.get("topic") or "")}
        prompt = create_prompt(row["question"], str(row.get("hint") or ""), list(options.values()))
        return Sample(sid, self.name, prompt, category=fields["subject"], fields=fields)

    def score(self, sample: Sample, answer: str) -> Judgment:
        return score_choice(sample, answer)

