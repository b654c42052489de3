"""Tiny files in the exact column layouts of the capability benchmarks' Hugging Face releases
(lmms-lab/ScienceQA and derek-thomas/ScienceQA, Lin-Chen/MMStar, AI4Math/MathVista), and the
authors' JSON layouts, written into a test's folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image


def png(colour: str, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


# ---- ScienceQA ---------------------------------------------------------------------------
# (question, choices, answer index, hint, subject, grade, has image)
SCIENCEQA = [
    ("Which animal's feet are also adapted for swimming?", ["duck", "tiger"], 0, "", "natural science", "grade3",
     True),
    ("What is the capital of Texas?", ["Austin", "Dallas", "Houston", "El Paso"], 0, "", "social science", "grade4",
     True),
    ("Which word would you find on a dictionary page?", ["yet", "zone"], 1, "", "language science", "grade2",
     False),
    ("Which is the main persuasive appeal?", ["ethos", "pathos", "logos"], 2, "Read the ad.", "language science",
     "grade8", True),
    ("Which property do these objects have in common?", ["hard", "soft", "sticky"], 1, "Select the best answer.",
     "natural science", "grade10", True),
]


def scienceqa_columns(rows=SCIENCEQA) -> dict[str, list[Any]]:
    """derek-thomas/ScienceQA / lmms-lab ScienceQA columns (image: {bytes, path} or None)."""
    colours = ["red", "green", "blue", "white", "black", "gray"]
    return {
        "image": [{"bytes": png(colours[i]), "path": None} if r[6] else None for i, r in enumerate(rows)],
        "question": [r[0] for r in rows], "choices": [r[1] for r in rows], "answer": [r[2] for r in rows],
        "hint": [r[3] for r in rows], "task": ["closed choice"] * len(rows), "grade": [r[5] for r in rows],
        "subject": [r[4] for r in rows], "topic": ["biology"] * len(rows), "category": ["c"] * len(rows),
        "skill": ["s"] * len(rows), "lecture": [""] * len(rows), "solution": [""] * len(rows),
    }


def write_scienceqa_authors(root: Path, rows=SCIENCEQA) -> Path:
    """The authors' problems.json with images/test/{pid}/image.png (pids 10, 11, ...; one train problem)."""
    problems = {}
    for i, r in enumerate(rows):
        pid = str(10 + i)
        problems[pid] = {"question": r[0], "choices": r[1], "answer": r[2], "hint": r[3], "image":
                         "image.png" if r[6] else None, "subject": r[4], "grade": r[5], "split": "test",
                         "topic": "biology", "lecture": "", "solution": ""}
        if r[6]:
            (root / "images" / "test" / pid).mkdir(parents=True, exist_ok=True)
            (root / "images" / "test" / pid / "image.png").write_bytes(png("red"))
    problems["99"] = {**problems["10"], "split": "train"}
    (root / "problems.json").write_text(json.dumps(problems))
    return root


# ---- MMStar -------------------------------------------------------------------------------
# (index, question, answer, category, l2_category)
MMSTAR = [
    (0, "Which option describe the object relationship in the image correctly?\nOptions: A: The suitcase is on the "
        "book., B: The suitcase is beneath the cat., C: The suitcase is beneath the bed., D: The suitcase is beneath "
        "the book.", "A", "coarse perception", "image scene and topic"),
    (1, "How many players are there?\nOptions: A: 3, B: 5, C: 7, D: 11", "D", "fine-grained perception",
     "object counting"),
    (2, "What is x in the equation?\nOptions: A: 1, B: 2, C: 3, D: 4", "B", "math", "numeric commonsense and "
                                                                                   "calculation"),
    (3, "Which gas do plants take in?\nOptions: A: oxygen, B: carbon dioxide, C: helium, D: neon", "B",
     "science & technology", "biology & chemistry & physics"),
]


def mmstar_columns(rows=MMSTAR) -> dict[str, list[Any]]:
    """Lin-Chen/MMStar mmstar.parquet columns."""
    return {
        "index": [r[0] for r in rows], "question": [r[1] for r in rows],
        "image": [{"bytes": png(c), "path": None} for c in ("red", "green", "blue", "white")[:len(rows)]],
        "answer": [r[2] for r in rows], "category": [r[3] for r in rows], "l2_category": [r[4] for r in rows],
        "meta_info": [{"source": "MMBench", "split": "val", "image_path": f"images/{r[0]}.jpg"} for r in rows],
    }


# ---- MathVista ----------------------------------------------------------------------------
INT_HINT = ("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
            "at the end.\nQuestion: ")
MC_HINT = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n" \
          "Question: "
MATHVISTA = [
    {"pid": "1", "question": "What is the total volume of the measuring cup?", "choices": None, "unit": "g",
     "precision": None, "answer": "1000", "question_type": "free_form", "answer_type": "integer",
     "task": "figure question answering",
     "query": INT_HINT + "what is the total volume of the measuring cup? (Unit: g)"},
    {"pid": "2", "question": "What fraction of the shape is blue?", "choices": ["3/11", "8/11", "6/11", "3/5"],
     "unit": None, "precision": None, "answer": "8/11", "question_type": "multi_choice", "answer_type": "text",
     "task": "math word problem",
     "query": MC_HINT + "What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5"},
    {"pid": "3", "question": "What is the length of the bar?", "choices": None, "unit": None, "precision": 1.0,
     "answer": "1.2", "question_type": "free_form", "answer_type": "float", "task": "figure question answering",
     "query": "Hint: Please answer the question requiring a floating-point number with one decimal place and "
              "provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What is the length of the bar?"},
    {"pid": "4", "question": "How many sides does the shape have?", "choices": None, "unit": None, "precision": None,
     "answer": "5", "question_type": "free_form", "answer_type": "integer", "task": "geometry problem solving",
     "query": INT_HINT + "How many sides does the shape have?"},
]


def mathvista_columns(rows=MATHVISTA) -> dict[str, list[Any]]:
    """AI4Math/MathVista testmini parquet columns."""
    return {
        "pid": [r["pid"] for r in rows], "question": [r["question"] for r in rows],
        "image": [f"images/{r['pid']}.jpg" for r in rows],
        "decoded_image": [{"bytes": png(c), "path": None} for c in ("red", "green", "blue", "white")[:len(rows)]],
        "choices": [r["choices"] for r in rows], "unit": [r["unit"] for r in rows],
        "precision": [r["precision"] for r in rows], "answer": [r["answer"] for r in rows],
        "question_type": [r["question_type"] for r in rows], "answer_type": [r["answer_type"] for r in rows],
        "metadata": [{"category": "math-targeted-vqa", "context": "c", "grade": "g", "img_height": 16,
                      "img_width": 16, "language": "english", "skills": ["arithmetic reasoning"], "source": "s",
                      "split": "testmini", "task": r["task"]} for r in rows],
        "query": [r["query"] for r in rows],
    }


def write_mathvista_authors(root: Path, rows=MATHVISTA) -> Path:
    """The authors' data/ layout: testmini.json, query.json and images/{pid}.jpg."""
    problems, queries = {}, {}
    (root / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        problems[r["pid"]] = {**{k: r[k] for k in ("question", "choices", "unit", "precision", "answer",
                                                   "question_type", "answer_type", "pid")},
                              "image": f"images/{r['pid']}.jpg", "metadata": {"task": r["task"], "split": "testmini"}}
        queries[r["pid"]] = r["query"]
        Image.new("RGB", (16, 16), "red").save(root / "images" / f"{r['pid']}.jpg", "JPEG")
    (root / "testmini.json").write_text(json.dumps(problems))
    (root / "query.json").write_text(json.dumps(queries))
    return root
