"""``run.json``: what ran, with which versions, on which files (never secrets)."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import UserError

_PACKAGES = ("thinksafe", "aiohttp", "transformers", "torch", "peft", "trl", "datasets", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from metadata (imports nothing)."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the thinksafe source tree, when it is a git checkout."""
    src = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def write_run_json(out: Path, config: dict[str, Any], bench, gen_key: str, judge_key: str, judge,
                   judge_spec: str | None = None) -> None:
    """``judge``/``judge_spec``: the judge the run actually used (``config["judge"]`` is
    only what was asked, None for the protocol's default)."""
    info = {
        "benchmark": bench.name, "family": bench.family, "subset": bench.subset,
        "model": config["model"], "judge": judge.name, "judge_spec": judge_spec, "protocol": config.get("protocol"),
        "generation_fingerprint": gen_key, "judge_fingerprint": judge_key,
        "judge_config": judge.fingerprint_config(),
        "benchmark_files_sha256": bench.fingerprint(),  # downloads the release first when --data is absent
        "benchmark_files": bench.file_fingerprints(),
        "downloads": bench.downloads,
        "config": config,
        "versions": package_versions(), "python": platform.python_version(), "git_commit": git_commit(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(out / "run.json")


class NotARunFolder(UserError, FileNotFoundError):
    """A folder given as a run folder holds no run."""


def check_benchmark_files(out: Path, bench, accept_changed: bool = False) -> list[str]:
    """The benchmark files that changed since the last run in ``out`` (same path, other bytes).

    Raises:
        UserError: some changed and ``accept_changed`` is off: one folder would
            mix results from two versions of the benchmark.
    """
    path = Path(out) / "run.json"
    if not path.is_file():
        return []
    before = json.loads(path.read_text()).get("benchmark_files") or {}
    now = bench.file_fingerprints()
    changed = sorted(p for p in before.keys() & now.keys() if before[p] != now[p])
    if changed and not accept_changed:
        first = changed[0]
        raise UserError(
            f"{first}: changed since the last run in {out} (sha256 {before[first][:12]} -> {now[first][:12]}"
            f"{f', and {len(changed) - 1} more file(s)' if len(changed) > 1 else ''}); this folder would mix "
            "results from two versions of the benchmark. Use a new --out folder, or pass --accept-changed-data "
            "to keep this one (changed samples are generated again).")
    return changed


def read_run_json(out: Path) -> dict[str, Any]:
    path = Path(out) / "run.json"
    if not path.is_file():
        raise NotARunFolder(f"{path}: not a thinksafe run folder (no run.json)")
    return json.loads(path.read_text())
