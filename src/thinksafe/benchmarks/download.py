"""Fetching a benchmark's public release into the cache: pinned, atomic, resumable, checked.

A benchmark declares the files it needs as :class:`Remote` entries (a file of a
GitHub repository at a commit, or of a Hugging Face dataset at a revision) and
calls :func:`download_release`, which runs :func:`fetch` into the folder
:func:`release_dir` gives it and returns that folder and what ``run.json`` records::

    from .download import Remote, download_release

    FILES = [Remote.github("owner/repo", "0123abc...", "data/questions.csv", sha256="..."),
             Remote.hf("owner/dataset", "main", "data/test-00000-of-00001.parquet")]

    def download(self) -> Path:
        root, self.downloads = download_release(self.name, "v1", FILES)
        return root

What :func:`fetch` does for each file:

* files already in the folder are kept (their sha256 is read from the folder's
  manifest, ``.thinksafe-files.json``, while size and mtime match; else the
  file is hashed again);
* a missing file is streamed (1 MiB at a time) into ``NAME.part`` and renamed
  to ``NAME`` only once it is whole and matches the expected sha256 or git blob
  id, so an interrupted download never leaves a file that looks complete; the
  next call resumes the ``.part`` file with an HTTP range request;
* connection errors, timeouts and 5xx answers are retried with backoff; 404 and
  401/403 are not (the message says what to do);
* a progress bar shows files and bytes;
* the result maps each file to its sha256, for ``run.json``.

When nothing can be fetched, :class:`DownloadError` (a one-line user error)
names the URL and ``--data`` as the way out. The cache folder is
``$THINKSAFE_CACHE``, else ``$XDG_CACHE_HOME/thinksafe``, else
``~/.cache/thinksafe``. ``HF_HUB_OFFLINE=1`` forbids Hugging Face downloads.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import LoaderError

ENV_CACHE = "THINKSAFE_CACHE"
GITHUB_RAW = "https://raw.githubusercontent.com"
GITHUB_API = "https://api.github.com"
MANIFEST = ".thinksafe-files.json"
CHUNK = 1 << 20
RETRIES = 4
"""Attempts per file for transient failures (connection refused, reset, timeout, 5xx)."""
BACKOFF_S = 1.0
"""Wait before the second attempt; doubled before each further one."""
TIMEOUT_S = 60.0


class DownloadError(LoaderError):
    """A file of a public release could not be fetched or failed its check."""


class NotPublished(DownloadError):
    """The server answered 404: the file is not in the release."""


# ---- what to fetch ------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """One file of a public release.

    ``kind`` is ``github`` (raw file at a commit), ``hf`` (a Hugging Face
    dataset file at a revision) or ``url`` (a fixed URL in ``path``). ``dest``
    is where it goes under the release folder (default: ``path``). ``sha256``
    or ``git_blob`` (the git object id a GitHub tree lists) are checked when given.
    """

    kind: str
    repo: str
    revision: str
    path: str
    dest: str = ""
    sha256: str | None = None
    git_blob: str | None = None

    @classmethod
    def github(cls, repo: str, commit: str, path: str, dest: str = "", sha256: str | None = None,
               git_blob: str | None = None) -> Remote:
        return cls("github", repo, commit, path, dest or path, sha256, git_blob)

    @classmethod
    def hf(cls, repo: str, revision: str, path: str, dest: str = "", sha256: str | None = None) -> Remote:
        return cls("hf", repo, revision, path, dest or path, sha256)

    @classmethod
    def url(cls, url: str, dest: str, sha256: str | None = None) -> Remote:
        return cls("url", "", "", url, dest, sha256)

    @property
    def target(self) -> str:
        return self.dest or self.path

    def resolve(self) -> str:
        """The URL (built when fetched, so the endpoints can be redirected)."""
        if self.kind == "github":
            return f"{GITHUB_RAW}/{self.repo}/{self.revision}/{urllib.parse.quote(self.path)}"
        if self.kind == "hf":
            from huggingface_hub import hf_hub_url

            return hf_hub_url(self.repo, self.path, repo_type="dataset", revision=self.revision,
                              endpoint=os.environ.get("HF_ENDPOINT") or None)
        return self.path


def github_tree(repo: str, commit: str, folder: Path, what: str) -> list[dict[str, Any]]:
    """The file entries (``path``, ``size``, ``sha``) of a repository at a commit,
    fetched once from the GitHub API and kept in ``folder``."""
    listing = Remote.url(f"{GITHUB_API}/repos/{repo}/git/trees/{commit}?recursive=1", ".github-tree.json")
    fetch([listing], folder, what=f"{what} file list", progress=False)
    try:
        tree = json.loads((folder / listing.target).read_text(encoding="utf-8"))
        return [e for e in tree["tree"] if e.get("type") == "blob"]
    except (ValueError, KeyError, TypeError) as exc:
        (folder / listing.target).unlink(missing_ok=True)
        raise DownloadError(f"{what}: unexpected answer from {listing.resolve()} ({exc}); try again, "
                            "or download the files yourself and pass --data DIR") from exc


# ---- where it goes ------------------------------------------------------------------
def cache_root() -> Path:
    """``$THINKSAFE_CACHE``, else ``$XDG_CACHE_HOME/thinksafe``, else ``~/.cache/thinksafe``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "thinksafe"


def release_dir(benchmark: str, version: str) -> Path:
    """The cache folder of one pinned release of a benchmark."""
    return cache_root() / benchmark / version


def download_release(benchmark: str, version: str, files: Iterable[Remote], what: str = "",
                     missing_ok: bool = False) -> tuple[Path, dict]:
    """:func:`fetch` into :func:`release_dir`; returns the folder and the record for ``run.json``
    (``{"folder", "sources", "files": {dest: sha256}}``)."""
    files = list(files)
    root = release_dir(benchmark, version)
    shas = fetch(files, root, what=what or benchmark, missing_ok=missing_ok)
    sources = sorted({f"{f.kind}:{f.repo}@{f.revision}" if f.repo else f.path for f in files})
    return root, {"folder": str(root), "sources": sources, "files": shas}


def download_github_folder(benchmark: str, repo: str, commit: str, pattern: re.Pattern[str]) -> tuple[Path, dict]:
    """:func:`download_release` of the files of ``repo`` at ``commit`` whose path fully
    matches ``pattern`` (its first group is where each goes), each checked against its
    git blob id; for releases whose file names are known only from the repository's tree."""
    tree = github_tree(repo, commit, release_dir(benchmark, commit[:12]), benchmark)
    files = [Remote.github(repo, commit, e["path"], dest=m.group(1), git_blob=e["sha"])
             for e in tree if (m := pattern.fullmatch(e["path"]))]
    return download_release(benchmark, commit[:12], files)


# ---- fetching -----------------------------------------------------------------------
def fetch(files: Iterable[Remote], folder: Path, what: str, progress: bool = True, workers: int = 8,
          missing_ok: bool = False) -> dict[str, str]:
    """Make every file present and checked in ``folder``; returns ``{dest: sha256}``.

    Args:
        missing_ok: Files the server does not have (HTTP 404) are left out of the
            result instead of failing the whole download (for releases whose index
            names files that were never uploaded).

    Raises:
        DownloadError: a file could not be fetched (offline, not found, refused)
            or does not match its expected hash.
    """
    files = list(files)
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (folder / f.target).resolve().is_relative_to(folder.resolve()):
            raise DownloadError(f"{what}: refusing to write {f.target!r} outside {folder}")
    manifest = _Manifest(folder / MANIFEST)
    todo = [f for f in files if manifest.known(folder / f.target, f) is None
            and not (missing_ok and manifest.is_missing(folder / f.target))]
    if todo and any(f.kind == "hf" for f in todo) and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise DownloadError(f"{what}: HF_HUB_OFFLINE is set, so {todo[0].resolve()} cannot be fetched; "
                            "unset it, or download the files yourself and pass --data DIR")
    try:
        _fetch_all(todo, folder, what, manifest, progress, workers, missing_ok)
    finally:
        manifest.flush()
    return {f.target: manifest.sha256(folder / f.target) for f in files if (folder / f.target).is_file()}


def _fetch_all(todo: list[Remote], folder: Path, what: str, manifest: _Manifest, progress: bool, workers: int,
               missing_ok: bool) -> None:
    stop = threading.Event()  # the first hard failure stops the rest (offline: one message, not hours)
    with _progress_bar(what, len(todo), enabled=progress and bool(todo)) as bar:
        def one(f: Remote) -> None:
            if stop.is_set():
                return
            try:
                sha = _download(f, folder / f.target, what, bar.advance_bytes)
            except NotPublished:
                if not missing_ok:
                    raise
                manifest.mark_missing(folder / f.target, f)  # not asked for again
                return
            manifest.record(folder / f.target, f, sha)
            bar.file_done()

        if workers <= 1 or len(todo) <= 1:
            for f in todo:
                one(f)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(one, f) for f in todo]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException:
                    stop.set()
                    pool.shutdown(cancel_futures=True)
                    raise


def _download(remote: Remote, target: Path, what: str, on_bytes: Callable[[int], None]) -> str:
    url = remote.resolve()
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    last: BaseException | None = None
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            _stream(url, part, _headers(remote), on_bytes)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # the .part file is not a prefix the server can continue
                part.unlink(missing_ok=True)
                last = exc
                continue
            if exc.code < 500 and exc.code != 429:
                error = NotPublished if exc.code == 404 else DownloadError
                raise error(_http_message(what, url, exc.code, remote.kind)) from exc
            last = exc
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last = exc
            continue
        problem = _check(part, remote)
        if problem is None:
            sha = _sha256(part)
            os.replace(part, target)  # only a whole, checked file ever gets the real name
            return sha
        part.unlink(missing_ok=True)
        last = ValueError(problem)
    reason = getattr(last, "reason", None) or last
    raise DownloadError(f"{what}: cannot download {url} ({reason}); check the network and run again "
                        "(the download resumes), or download the files yourself and pass --data DIR")


def _http_message(what: str, url: str, code: int, kind: str = "") -> str:
    if kind == "hf" and code in (401, 403):
        hint = "the dataset may need a Hugging Face login (set HF_TOKEN)"
    elif kind == "github" and code == 403:
        hint = "GitHub may be rate-limiting this address; retry later"
    elif code in (401, 403):
        hint = "access refused"
    else:
        hint = "the pinned revision may no longer be published"
    return f"{what}: {url} answered HTTP {code} ({hint}); download the files yourself and pass --data DIR"


def _headers(remote: Remote) -> dict[str, str]:
    from .. import __version__

    headers = {"User-Agent": f"thinksafe/{__version__}"}
    if remote.kind == "hf":
        from huggingface_hub.utils import build_hf_headers

        headers.update(build_hf_headers(library_name="thinksafe", library_version=__version__))
    return headers


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never send a token to another host (HF redirects to a CDN)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for key in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[key]
        return new


_OPENER = urllib.request.build_opener(_SameHostAuth)


def _stream(url: str, part: Path, headers: dict[str, str], on_bytes: Callable[[int], None]) -> None:
    """Append the rest of ``url`` to ``part`` (a range request when it has bytes already)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={**headers, **({"Range": f"bytes={have}-"} if have else {})})
    with _OPENER.open(request, timeout=TIMEOUT_S) as resp:
        if have and resp.status != 206:  # the server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length and length.isdigit() else None
        with open(part, "ab" if have else "wb") as out:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                on_bytes(len(chunk))
    if expected is not None and part.stat().st_size != expected:
        raise http.client.IncompleteRead(b"", expected - part.stat().st_size)


def _check(path: Path, remote: Remote) -> str | None:
    if remote.sha256 and _sha256(path) != remote.sha256:
        return f"sha256 mismatch for {remote.target}"
    if remote.git_blob and _git_blob(path) != remote.git_blob:
        return f"content of {remote.target} does not match git blob {remote.git_blob}"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_blob(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- the folder's manifest ----------------------------------------------------------
class _Manifest:
    """``{dest: {sha256, size, mtime_ns, url}}`` of the files fetched or checked in a folder."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.dirty, self.flushed = False, 0.0
        try:
            self.entries: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def _key(self, file: Path) -> str:
        return file.relative_to(self.path.parent).as_posix()

    def known(self, file: Path, remote: Remote) -> str | None:
        """The sha256 of a file already present and acceptable, else None (fetch it)."""
        if not file.is_file():
            return None
        st, entry = file.stat(), self.entries.get(self._key(file))
        if entry and "sha256" in entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            sha = entry["sha256"]  # checked when it was recorded
            return None if remote.sha256 and sha != remote.sha256 else sha
        if _check(file, remote) is not None:
            return None
        sha = _sha256(file)
        self.record(file, remote, sha)
        return sha

    def record(self, file: Path, remote: Remote, sha: str) -> None:
        st = file.stat()
        self._put(file, {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": remote.resolve()})

    def mark_missing(self, file: Path, remote: Remote) -> None:
        self._put(file, {"missing": True, "url": remote.resolve()})

    def is_missing(self, file: Path) -> bool:
        return bool(self.entries.get(self._key(file), {}).get("missing")) and not file.is_file()

    def _put(self, file: Path, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries[self._key(file)] = entry
            self.dirty = True
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        """Write the manifest (atomically); without ``force``, at most every 2 s, so that
        thousands of small files do not rewrite it thousands of times. A file fetched but
        not yet listed is only hashed again on the next run."""
        with self.lock:
            if not self.dirty or (not force and time.monotonic() - self.flushed < 2.0):
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            self.dirty, self.flushed = False, time.monotonic()

    def sha256(self, file: Path) -> str:
        return self.entries[self._key(file)]["sha256"]


# ---- progress -----------------------------------------------------------------------
class _Bar:
    def __init__(self, progress, task):  # noqa: ANN001 - rich objects, imported lazily
        self.progress, self.task = progress, task

    def advance_bytes(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n)

    def file_done(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, files=self.progress.tasks[0].fields["files"] + 1)


class _progress_bar:  # noqa: N801 - used as a context manager, like a function
    def __init__(self, what: str, total_files: int, enabled: bool):
        self.what, self.total, self.enabled = what, total_files, enabled
        self.progress = None

    def __enter__(self) -> _Bar:
        if not self.enabled:
            return _Bar(None, None)
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TransferSpeedColumn)

        self.progress = Progress(TextColumn(f"[bold]downloading {self.what}"),
                                 TextColumn("{task.fields[files]}/" + str(self.total) + " files"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True))
        self.progress.__enter__()
        return _Bar(self.progress, self.progress.add_task("", total=None, files=0))

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
