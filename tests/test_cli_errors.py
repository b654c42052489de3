"""One place for CLI errors: a UserError is one line and exit 2; anything else is a bug
that keeps its traceback and ends with a hint to report it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thinksafe.cli.app import app

FIGSTEP = ("--benchmark", "figstep", "--subset", "tiny", "--limit", "2", "--quiet")


def invoke(*args) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output, result.exception


def assert_user_error(code: int, output: str, *words: str) -> None:
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(("args", "words"), [
    (("eval", *FIGSTEP, "--model", "openai/m", "--judge", "nosuch"), ("unknown judge 'nosuch' (--judge)",)),
    (("eval", *FIGSTEP, "--model", "m"), ("unknown model 'm': give openai/NAME or hf/PATH, or a registry name",)),
    (("eval", *FIGSTEP, "--model", "openai/m", "--judge", "llm"), ("needs --judge-model",)),
    (("eval", *FIGSTEP, "--model", "openai/m", "--judge", "ensemble:refusal"), ("at least two members",)),
    (("eval", "--benchmark", "nosuch", "--model", "openai/m"), ("unknown benchmark 'nosuch'",)),
    (("data", "build", "--source", "nope:x", "--captioner", "openai/c", "--teacher", "openai/t", "--out", "o"),
     ("unknown source kind 'nope'",)),
    (("data", "build", "--source", "jsonl:/nonexistent/seeds.jsonl", "--captioner", "openai/c", "--teacher",
      "openai/t", "--out", "o", "--quiet"), ("/nonexistent/seeds.jsonl does not exist",)),
    (("data", "convert", "/nonexistent/x.json", "--to", "trl", "--out", "y"),
     ("/nonexistent/x.json: data file not found",)),
    (("compare", "/nonexistent/a", "/nonexistent/b"), ("/nonexistent/a: not a run folder",)),
    (("judge-agreement", "/nonexistent", "--labels", "l.jsonl"), ("l.jsonl: file not found",)),
    (("train", "--data", "/nonexistent/d.json", "--model", "hf/m", "--out", "o", "--launch", "accelerate",
      "--export", "llamafactory"), ("--launch and --export do not go together",)),
])
def test_user_errors_are_one_line_and_exit_2(args, words, figstep_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args[0] == "eval" and "nosuch" not in args[2]:
        args = (*args, "--data", figstep_dir)
    code, output, _ = invoke(*args, *(("--out", tmp_path / "run") if args[0] == "eval" else ()))
    assert_user_error(code, output, *words)


def test_a_failed_download_is_a_user_error(tmp_path, monkeypatch):
    from thinksafe.benchmarks import download

    monkeypatch.setattr(download, "GITHUB_RAW", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    monkeypatch.setenv("THINKSAFE_CACHE", str(tmp_path / "cache"))
    code, output, _ = invoke("eval", *FIGSTEP, "--model", "openai/m", "--out", tmp_path / "run")
    last = output.strip().splitlines()[-1]  # after the download's progress bar
    assert_user_error(code, last, "cannot download http://127.0.0.1:1/ThuCCSLab/FigStep/", "pass --data DIR")


def test_a_missing_optional_package_is_a_user_error(figstep_dir, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    code, output, _ = invoke("eval", *FIGSTEP, "--data", figstep_dir, "--model", "hf/some/model",
                             "--out", tmp_path / "run")
    assert_user_error(code, output, "hf/ models: torch not installed; pip install 'thinksafe[hf]'")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_value_error_inside_a_command_is_a_bug_not_a_user_error(tmp_path, monkeypatch):
    import thinksafe.rejudge

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(thinksafe.rejudge, "rejudge", broken)
    code, output, exc = invoke("judge", tmp_path, "--judge", "refusal", "--quiet")
    assert code == 1 and isinstance(exc, ValueError) and "error:" not in output
    assert "please report it with the traceback" in exc.__notes__[0]


def test_a_bug_prints_its_traceback_then_the_hint(tmp_path):
    script = textwrap.dedent("""
        import sys
        import thinksafe.report.inputs as inputs
        from thinksafe.cli import main

        def broken(*args, **kwargs):
            return {}["missing key"]

        inputs.report_inputs = broken
        sys.argv = ["thinksafe", "report", sys.argv[1]]
        main()
    """)
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={"COLUMNS": "200", "PATH": "", "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "KeyError: 'missing key'" in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "this is a bug in thinksafe" in last and "please report it with the traceback" in last
