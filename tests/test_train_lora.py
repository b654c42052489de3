"""End-to-end SFT on the tiny model: LoRA on the TiS sample, evaluation with the
adapter, resume, full fine-tuning with a frozen vision tower, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from typer.testing import CliRunner  # noqa: E402

from thinksafe.cli.app import app  # noqa: E402
from thinksafe.train.config import TrainConfig, TrainConfigError  # noqa: E402
from thinksafe.train.demo_data import write_demo_data  # noqa: E402
from thinksafe.train.sft import train  # noqa: E402

from test_train_data import placeholder_images  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tis(bench_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    data = bench_dir / "tis" / "train_data_sample.json"
    return data, placeholder_images(data, tmp_path_factory.mktemp("tis-images"))


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return write_demo_data(tmp_path_factory.mktemp("demo-data"))


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_lora_on_tis_sample_lowers_loss_and_the_adapter_evaluates(tis, tiny_model_dir: Path, tmp_path: Path):
    data, root = tis
    out = tmp_path / "adapter"
    invoke("train", "--data", data, "--image-root", root, "--model", f"hf/{tiny_model_dir}", "--out", out,
           "--max-steps", 16, "--batch-size", 4, "--grad-accum", 1, "--lr", 1e-2, "--max-length", 256,
           "--modules-to-save", "lm_head", "--logging-steps", 1, "--save-steps", 0)
    summary = json.loads((out / "train_summary.json").read_text())
    losses = [x["loss"] for x in summary["losses"]]
    assert summary["steps"] == 16 and len(losses) >= 16
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5, losses
    assert summary["data_check"]["rows"] == 44 and summary["data_check"]["truncated_rows"] > 0
    assert (out / "adapter_model.safetensors").is_file() and (out / "train_config.yaml").is_file()
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert targets and not any("vision_tower" in t or "multi_modal_projector" in t for t in targets)

    run = tmp_path / "run"
    invoke("eval", "--benchmark", "probes", "--model", f"hf/{tiny_model_dir}", "--adapter", out, "--out", run,
           "--judge", "official", "--max-tokens", 12, "--quiet")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["official"]["generated"] == 24 and metrics["errors"] == 0
    assert json.loads((run / "run.json").read_text())["config"]["adapter"] == str(out)


def test_lora_leaves_vision_side_alone_unless_asked(tiny_model_dir: Path):
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from thinksafe.train.models import lora_config

    def lora_names(**kw) -> list[str]:
        model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        cfg = TrainConfig(data="d", model=f"hf/{tiny_model_dir}", out="o", **kw)
        peft = get_peft_model(model, lora_config(model, cfg))
        return [n for n, p in peft.named_parameters() if p.requires_grad]

    default = lora_names()
    assert default and all("language_model" in n for n in default)
    opened = lora_names(freeze_vision_tower=False, freeze_projector=False)
    assert any("vision_tower" in n for n in opened) and any("multi_modal_projector" in n for n in opened)


def test_resume_continues_from_the_latest_checkpoint(demo_data: Path, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    base = dict(data=str(demo_data), model=f"hf/{tiny_model_dir}", out=str(out), batch_size=2, grad_accum=1,
                lr=1e-2, logging_steps=1, save_steps=2, max_length=512, gradient_checkpointing=True)
    first = train(TrainConfig(max_steps=2, **base), echo=None)
    assert first["steps"] == 2 and (out / "checkpoint-2").is_dir()
    second = train(TrainConfig(max_steps=4, resume="latest", **base), echo=None)
    assert second["steps"] == 4
    assert [x["step"] for x in second["losses"]] == [1, 2, 3, 4]  # the log goes on, not over
    with pytest.raises(TrainConfigError, match="no checkpoint"):
        train(TrainConfig(max_steps=2, resume="latest", **{**base, "out": str(tmp_path / "empty")}), echo=None)


def test_full_finetuning_keeps_the_vision_tower_frozen(demo_data: Path, tiny_model_dir: Path, tmp_path: Path):
    import torch
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "full"
    summary = train(TrainConfig(data=str(demo_data), model=f"hf/{tiny_model_dir}", out=str(out), method="full",
                                max_steps=3, batch_size=2, grad_accum=1, lr=1e-2, save_steps=None), echo=None)
    assert summary["adapter"] is False and "--model hf/" in summary["evaluate_with"]
    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    vision = [k for k in before if "vision_tower" in k or "multi_modal_projector" in k]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


def test_qlora_and_bf16_are_refused_on_cpu(demo_data: Path, tiny_model_dir: Path, tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = ["train", "--data", str(demo_data), "--model", f"hf/{tiny_model_dir}", "--out", str(tmp_path / "q")]
    result = runner.invoke(app, [*args, "--method", "qlora"])
    assert result.exit_code == 2 and "QLoRA needs a CUDA GPU" in result.output
    result = runner.invoke(app, [*args, "--bf16"])
    assert result.exit_code == 2 and "bf16 was requested" in result.output
    result = runner.invoke(app, [*args, "--max-length", "16"])
    assert result.exit_code == 2 and "would cut image tokens" in " ".join(result.output.split())
