"""Rebuild a run folder's result files from its store (``thinksafe report``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..benchmarks import get_benchmark
from ..metrics.agreement import find_run_dirs
from ..runinfo import read_run_json
from ..store import Store


def run_folders(root: Path) -> list[Path]:
    """The folder itself, or each benchmark subfolder of a preset run."""
    return find_run_dirs(root, marker="run.json")


def rewrite_results(root: Path, judge_key: str | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Rewrite each run folder's samples.jsonl and metrics.json from its store.

    A folder without a store (results copied without it) keeps its files as they are.
    """
    from ..evaluate import iter_results
    from .files import write_results

    for folder in run_folders(root):
        if not (folder / "store.sqlite").is_file() and (folder / "metrics.json").is_file():
            yield folder, json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            continue
        info = read_run_json(folder)
        cfg = info["config"]
        bench = get_benchmark(info["benchmark"])(data=cfg.get("data"), subset=info.get("subset"), workdir=folder,
                                                 protocol=cfg.get("protocol", "official"))
        store = Store(folder / "store.sqlite")
        key = judge_key or info["judge_fingerprint"]
        judge_name = next((j["name"] for j in store.judges() if j["judge_key"] == key), info.get("judge"))
        try:
            metrics = write_results(folder, bench, lambda: iter_results(store, bench.name,
                                                                        info["generation_fingerprint"], key),
                                    header={"benchmark": bench.name, "family": bench.family, "subset": bench.subset,
                                            "model": info["model"], "judge": judge_name,
                                            "judge_spec": info.get("judge_spec") if key == info["judge_fingerprint"]
                                            else None, "judge_fingerprint": key, "protocol": cfg.get("protocol")})
        finally:
            store.close()
        yield folder, metrics
