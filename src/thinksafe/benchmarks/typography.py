"""Render text on a white square, as the typographic jailbreak benchmarks do."""

from __future__ import annotations

import textwrap
from functools import lru_cache
from pathlib import Path

# FigStep draws with FreeMonoBold 80 pt; we use it when the system has it, then
# another monospace bold, then the scalable font Pillow itself ships.
_FONT_CANDIDATES = (
    "FreeMonoBold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeMonoBold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
)


def load_font(size: int = 80, path: str | None = None):
    """(font, name): the first monospace font found, else Pillow's bundled one."""
    return load_first_font(size, (path,) if path else _FONT_CANDIDATES)


@lru_cache(maxsize=8)
def load_first_font(size: int, candidates: tuple[str, ...]):
    """(font, file name): the first of ``candidates`` that loads, else Pillow's bundled font."""
    from PIL import ImageFont

    for candidate in candidates:
        try:
            return ImageFont.truetype(candidate, size), Path(candidate).name
        except OSError:
            continue
    return ImageFont.load_default(size=size), "pillow-default"


def figstep_text(instruction: str, steps: int = 3) -> str:
    """The instruction wrapped at 15 characters, followed by empty steps ``1.`` ``2.`` ``3.``."""
    text = textwrap.fill(instruction.removesuffix("\n"), width=15)
    return text + "".join(f"\n{i}. " for i in range(1, steps + 1))


def render_text_image(text: str, out: Path, size: tuple[int, int] = (760, 760), font_size: int = 80,
                      xy: tuple[int, int] = (20, 10), spacing: int = 11) -> str:
    """Draw black text on a white image, save it as PNG; returns the font name used."""
    from PIL import Image, ImageDraw

    font, name = load_font(font_size)
    image = Image.new("RGB", size, "#FFFFFF")
    ImageDraw.Draw(image).text(xy, text, font=font, spacing=spacing, fill="#000000")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    image.save(tmp)
    tmp.replace(out)  # never leave a half-written image behind
    return name
