"""Built-in capability probe: POPE-style yes/no questions on generated images, offline.

* Input: a 224x224 image with one coloured shape drawn by this project, and the
  question "Is there a {colour} {shape} in the image?": 8 images, one question
  whose answer is "yes" (the shape drawn) and one whose answer is "no" (a shape
  that is not there) each, 16 in all.
* Judge and metric: POPE's (:mod:`thinksafe.benchmarks.pope`): the authors' yes/no
  rule on the answer with the thinking removed, the strict start-of-answer
  reading beside; accuracy, precision, recall, F1, yes-ratio.

This probe exists so that ``thinksafe demo`` can show the capability side of a
tuning run's ledger without downloading anything; it is far too small and easy
to measure a real model's capability. No data folder is needed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..records import Sample
from .base import register
from .pope import POPE

# (colour, shape drawn, shape asked about that is not there)
ITEMS = (("red", "circle", "square"), ("blue", "square", "triangle"), ("green", "triangle", "circle"),
         ("yellow", "circle", "triangle"), ("black", "square", "circle"), ("orange", "triangle", "square"),
         ("purple", "circle", "square"), ("red", "square", "triangle"))


def draw_shape(colour: str, shape: str, out: Path) -> None:
    """Write a 224x224 PNG with one filled shape on white."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (224, 224), "white")
    draw = ImageDraw.Draw(img)
    box = (52, 52, 172, 172)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(112, 40), (184, 176), (40, 176)], fill=colour)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def probe_questions() -> list[tuple[str, str, str, str, str]]:
    """``(id, colour, shape drawn, shape asked, label)`` in a fixed order."""
    out = []
    for k, (colour, drawn, absent) in enumerate(ITEMS, start=1):
        out.append((f"shape-{k:02d}-yes", colour, drawn, drawn, "yes"))
        out.append((f"shape-{k:02d}-no", colour, drawn, absent, "no"))
    return out


@register
class ShapeProbes(POPE):
    name = "shape-probes"
    title = "thinksafe built-in capability probe (16 POPE-style yes/no questions on generated shapes)"
    source = "written by the thinksafe project (src/thinksafe/benchmarks/shapeprobes.py)"
    metric = "accuracy, precision, recall, F1, yes-ratio (POPE's rule); a stand-in, not a capability measure"
    subsets = {"all": 16}
    default_subset = "all"
    release, download_size = (), ""  # built in: nothing of POPE's release to fetch

    def files(self) -> list[Path]:
        return []

    def fingerprint(self) -> str:
        """Hash of the questions and the drawing (there are no data files)."""
        return hashlib.sha256(json.dumps([probe_questions(), ITEMS]).encode()).hexdigest()

    def load(self) -> Iterator[Sample]:
        for sid, colour, drawn, asked, label in probe_questions():
            out = self.workdir / "rendered" / self.name / f"{colour}-{drawn}.png"
            if not out.exists():
                draw_shape(colour, drawn, out)
            yield Sample(sid, self.name, f"Is there a {colour} {asked} in the image?", images=[str(out)],
                         category="shapes", fields={"label": label, "split": "shapes", "image": out.name})
