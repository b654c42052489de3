"""The part of the generation fingerprint that comes from the model, computed
without building the backend (so a finished run never loads weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def _file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def backend_fingerprint(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """Model identity: the spec, plus the adapter's weights hash for local models.

    The server URL is left out on purpose: the same model behind another
    address gives the same outputs, and a moved server must not void a run.
    """
    fp: dict[str, Any] = {"spec": spec}
    if spec.startswith("hf/"):
        dtype = options.get("dtype")
        fp["dtype"] = None if dtype == "auto" else dtype  # the backend loads both the same way
        adapter = options.get("adapter")
        if adapter:
            fp["adapter"] = str(adapter)
            fp["adapter_sha"] = _file_digest(Path(adapter) / "adapter_model.safetensors")
    return fp
