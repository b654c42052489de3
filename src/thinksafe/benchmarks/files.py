"""File and image helpers shared by the benchmark loaders.

Every helper that can fail on one sample sets ``sample.error`` (a message that
names the file and row) instead of raising; whole-file problems raise
:class:`~thinksafe.benchmarks.base.LoaderError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Sample
from .base import LoaderError, resolve_inside


# ---- data files ------------------------------------------------------------------------
def load_json(path: Path, expected_type: type | tuple[type, ...], what: str) -> Any:
    """The parsed JSON file, checked to be of ``expected_type``.

    Args:
        path: The JSON file.
        expected_type: The type (or types) the top-level value must have.
        what: How the expected value reads in the error, e.g. ``"a list of rows"``.

    Raises:
        LoaderError: The file is not valid JSON, or holds something else.
    """
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise LoaderError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, expected_type):
        raise LoaderError(f"{path}: expected {what}")
    return data


def iter_parquet_rows(path: Path, batch_size: int = 8) -> Iterator[dict[str, Any]]:
    """Rows of a parquet file as dicts, a few at a time (rows may carry image bytes).

    Raises:
        LoaderError: pyarrow is not installed, or the file is not readable parquet.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pyarrow comes with the [hf] extra (datasets)
        raise LoaderError(f"{path}: reading parquet needs pyarrow (pip install 'thinksafe[hf]')") from exc
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any pyarrow error means an unreadable file
        raise LoaderError(f"{path}: not a readable parquet file ({exc})") from exc
    for batch in parquet.iter_batches(batch_size=batch_size):
        yield from batch.to_pylist()


def text_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each run of non-blank lines, streamed."""
    block: list[str] = []
    start = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                start = start if block else line_no
                block.append(line)
            elif block:
                yield start, block
                block = []
    if block:
        yield start, block


def safe_name(text: str) -> str:
    """A file name made from an id (ids come from data files and may hold anything)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".")
    return name or "_"


# ---- image checks ----------------------------------------------------------------------
def image_defect(path: Path) -> str | None:
    """What is wrong with an image file (empty, not an image, too many pixels), else None.

    Only the header is decoded and the file's structure checked (Pillow's
    ``verify``), so a decompression bomb is refused without decoding its pixels:
    memory stays bounded whatever the file claims.
    """
    import warnings

    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice it; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = _claimed_size(path)
        return (f"claims {size} pixels, over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit (a decompression bomb; "
                "not decoded)" if size else f"is a decompression bomb ({exc})")
    except Exception:  # noqa: BLE001 - any decoder error means unusable
        return "is corrupt or unreadable"
    return None


def _claimed_size(path: Path) -> str | None:
    """``WxH`` from a PNG/GIF/JPEG header without Pillow's size check, for the message."""
    head = path.read_bytes()[:64 * 1024]
    if head.startswith(b"\x89PNG") and len(head) >= 24:
        return f"{int.from_bytes(head[16:20], 'big')}x{int.from_bytes(head[20:24], 'big')}"
    if head[:3] == b"GIF" and len(head) >= 10:
        return f"{int.from_bytes(head[6:8], 'little')}x{int.from_bytes(head[8:10], 'little')}"
    i = 2
    while head[:2] == b"\xff\xd8" and i + 9 < len(head):  # JPEG: walk the segments to a start-of-frame
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return f"{int.from_bytes(head[i + 7:i + 9], 'big')}x{int.from_bytes(head[i + 5:i + 7], 'big')}"
        i += 2 + length
    return None


def image_readable(path: Path) -> bool:
    """Whether the image file is usable (see :func:`image_defect`)."""
    return image_defect(path) is None


def image_problem(path: Path, where: str) -> str | None:
    """A sample error naming the row and the image when the file is unusable, else None."""
    defect = image_defect(path)
    return f"{where}: image {path} {defect}" if defect else None


def image_suffix(data: bytes) -> str:
    """File suffix from the image's magic bytes (the bytes are kept as they are)."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:3] == b"GIF":
        return ".gif"
    return ".jpg"


# ---- attaching images to samples -------------------------------------------------------
def resolve_image(sample: Sample, root: Path, relative: str, where: str) -> Path | None:
    """:func:`~thinksafe.benchmarks.base.resolve_inside`, or None with ``sample.error`` set."""
    try:
        return resolve_inside(root, relative, where)
    except LoaderError as exc:
        sample.error = str(exc)
        return None


def attach_published_file(sample: Sample, path: Path, where: str) -> None:
    """Attach an existing published image (``image_source: published``), or set an error if it is corrupt."""
    sample.error = image_problem(path, where)
    if sample.error:
        return
    sample.images = [str(path)]
    sample.fields["image_source"] = "published"


def attach_published(sample: Sample, root: Path, relative: str, where: str) -> None:
    """Attach the published image at ``relative`` under ``root``, or set an error.

    Errors: a path leaving ``root``, a missing file, an unreadable one.
    """
    path = resolve_image(sample, root, relative, where)
    if path is None:
        return
    if not path.is_file():
        sample.error = f"{where}: image {path} not found"
    else:
        attach_published_file(sample, path, where)


def attach_image(sample: Sample, root: Path, relative: str, where: str, what: str = "image",
                 missing_note: str = "") -> None:
    """Give the sample its image, or an error: a path leaving ``root``, a
    missing file (also flagged in ``fields["missing_image"]``), a corrupt one."""
    attach_images(sample, root, [relative], where, what, missing_note)


def attach_images(sample: Sample, root: Path, relatives: list[str], where: str, what: str = "image",
                  missing_note: str = "") -> None:
    """Give the sample its images, in order, or an error for the first that fails (see
    :func:`attach_image`; with several images the message says which one)."""
    paths = []
    for k, relative in enumerate(relatives, start=1):
        label = f"{what} {k} of {len(relatives)}" if len(relatives) > 1 else what
        path = resolve_image(sample, root, relative, where)
        if path is None:
            return
        if not path.is_file():
            sample.fields["missing_image"] = True
            sample.error = f"{where}: {label} {path} not found{missing_note}"
            return
        paths.append(str(path))
        sample.images, sample.error = list(paths), image_problem(path, where)
        if sample.error:
            return


def attach_embedded_image(sample: Sample, image: Any, out_stem: Path, where: str) -> Path | None:
    """Write a parquet image cell (``{"bytes", "path"}``) next to ``out_stem`` and attach it
    (``image_source: embedded``).

    The file is written only once; a missing or undecodable image sets ``sample.error``.

    Returns:
        The image file, or None when the sample got an error instead.
    """
    data = image.get("bytes") if isinstance(image, dict) else None
    if not data:
        sample.error = f"{where}: no image bytes in the row"
        return None
    out = out_stem.with_name(out_stem.name + image_suffix(data))
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)  # never leave a half-written image behind
    defect = image_defect(out)
    if defect:
        sample.error = f"{where}: embedded image {defect}"
        return None
    sample.images = [str(out)]
    sample.fields["image_source"] = "embedded"
    return out
