"""``thinksafe eval --model hf/<tiny model>``: offline, batched, resumable."""

from __future__ import annotations

from helpers import cli, read_metrics, read_samples


def test_tiny_model_runs_figstep_tiny_batched(figstep_dir, tiny_model_dir, tmp_path, monkeypatch):
    from thinksafe.models import hf

    calls = []
    original = hf.HFBackend.complete

    async def counting(self, messages, settings):
        calls.append(self)
        return await original(self, messages, settings)

    monkeypatch.setattr(hf.HFBackend, "complete", counting)
    args = ["eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir,
            "--model", f"hf/{tiny_model_dir}", "--batch-size", "8", "--max-tokens", "12", "--out", tmp_path / "run",
            "--quiet"]
    cli(*args)
    backend = calls[0]
    samples = read_samples(tmp_path / "run")
    assert len(samples) == 50 and len(calls) == 50
    assert all(s["error"] is None and s["raw"] is not None for s in samples.values())
    # 50 requests in batches of at most 8: at least 7 generate calls, far fewer than 50
    assert 7 <= backend.generate_calls <= 14
    m = read_metrics(tmp_path / "run")
    assert m["n"] == 50 and m["model"] == f"hf/{tiny_model_dir}"
    # resuming a finished local run neither loads the model nor generates
    calls.clear()
    cli(*args)
    assert calls == []
    assert read_metrics(tmp_path / "run") == m
