"""The demo's TiS-style training set, built from the probes' vocabulary.

What the stand-in can perceive, and why it can generalise to the held-out probes:

* Every request is "VERB a OBJECT" (:mod:`thinksafe.benchmarks.probes`), written
  in the text prompt as well as drawn in the image. The stand-in's 56-pixel
  random vision tower cannot read the image; the words are its signal.
* The verb alone decides harm, and every object goes with harmful and benign
  verbs alike, so the object says nothing about harm.
* Training rows use the same verbs, objects and request templates as the probes,
  but never a probe's verb-object pair (:func:`training_pairs`): a stand-in that
  refuses "steal a phone" learned that "steal" is harmful from "steal a car",
  "steal a bike"..., not the probe by heart.
* The targets are short (about 40 tokens, thinking closed after about 20), and
  the stand-in's toy tokenizer gets every word of the set as one token
  (:func:`demo_words`), as common English words are in a real model's vocabulary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..benchmarks.probes import (BENIGN, HARMFUL, HARMFUL_VERBS, TEMPLATES, VERB_OBJECTS, image_text, prompt_for,
                                 request)
from ..data.filters import normalise  # noqa: F401  (how "the same request" is compared; demo.py uses it)

# What each harmful verb is: the thought names it, so a stand-in that learned the
# verbs names the right harm for a verb on an object it never saw it with.
HARMS = {"steal": "theft", "break into": "burglary", "hack into": "hacking", "vandalise": "vandalism",
         "sabotage": "sabotage", "secretly track": "stalking"}
REFUSAL = "I'm sorry, but I can't help with that."
STEPS = "Sure. Step 1: get what you need. Step 2: work slowly. Step 3: check the result."


def response(verb: str, obj: str) -> str:
    """The target: a short thought that restates the request and judges it, then the answer.

    No newlines: the random stand-in first learns which token follows which, and
    a newline after the prompt with many successors slows that down.
    """
    said = f"The user asks how to {request(verb, obj)}."
    if verb in HARMFUL_VERBS:
        return f"<think>{said} That is {HARMS[verb]}, so I must refuse.</think> {REFUSAL}"
    return f"<think>{said} That is safe, so I will help.</think> {STEPS}"


def training_pairs() -> list[tuple[str, str]]:
    """Every (verb, object) of the probes' vocabulary that is not a probe."""
    held_out = set(HARMFUL) | set(BENIGN)
    return [(verb, obj) for verb, objects in VERB_OBJECTS.items() for obj in objects if (verb, obj) not in held_out]


def demo_rows() -> list[dict[str, Any]]:
    """The training rows: each training pair under every request template, with its typographic title."""
    return [{"id": f"{verb.replace(' ', '-')}-{obj}-{k}", "harmful": verb in HARMFUL_VERBS,
             "image_text": image_text(verb, obj), "question": prompt_for(verb, obj, k),
             "response": response(verb, obj)}
            for verb, obj in training_pairs() for k in range(len(TEMPLATES))]


def demo_words() -> list[str]:
    """Every word of the training rows and the probes' prompts, bare and after a space.

    Added to the stand-in's toy tokenizer so that each word is one token; spelled
    in byte pieces ("st", "eal"), a 2-layer random model cannot tell "steal" from
    "sell" in the time the demo has.
    """
    texts = [row["question"] + " " + row["response"] for row in demo_rows()]
    texts += [prompt_for(verb, obj, k) for verb, obj in HARMFUL + BENIGN for k in range(len(TEMPLATES))]
    words = {w.strip(".,?:!") for text in texts for w in re.sub(r"</?think>", " ", text).split()}
    words.discard("")
    return sorted(words) + sorted(" " + w for w in words)


def render_small(title: str, out: Path) -> None:
    """The probes' typographic image of a title, saved at 112 px.

    The stand-in sees 56 px whatever it is given; decoding and shrinking 760 px
    images on every training step took most of the training time.
    """
    from PIL import Image

    from ..benchmarks.typography import figstep_text, render_text_image

    render_text_image(figstep_text(title), out)
    with Image.open(out) as im:
        small = im.resize((112, 112), Image.Resampling.BICUBIC)
    small.save(out)


def write_demo_data(folder: Path) -> Path:
    """Render the images and write the set as a ShareGPT file (the TiS layout).

    Returns:
        The data file, with image paths relative to its folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for row in demo_rows():
        image = Path("images") / (row["image_text"].removesuffix(".").replace(" ", "-") + ".png")
        if not (folder / image).exists():
            render_small(row["image_text"], folder / image)
        records.append({"id": row["id"], "harmful": row["harmful"], "images": [str(image)],
                        "conversations": [{"from": "human", "value": "<image>" + row["question"]},
                                          {"from": "gpt", "value": row["response"]}]})
    path = folder / "tis_demo.json"
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
