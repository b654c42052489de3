"""Multi-GPU launch commands, shipped accelerate configs and the LLaMA-Factory export.

None of this needs torch: printing a command or writing a config must stay light.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from thinksafe.cli.app import app
from thinksafe.train.config import TrainConfig, TrainConfigError, read_yaml
from thinksafe.train.launch import LAUNCHERS, accelerate_command, launcher_config
from thinksafe.train.llamafactory import export_llamafactory, template

from test_train_data import placeholder_images

runner = CliRunner()


@pytest.fixture(scope="module")
def tis(bench_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    data = bench_dir / "tis" / "train_data_sample.json"
    return data, placeholder_images(data, tmp_path_factory.mktemp("tis-images"))


def fake_model(root: Path, model_type: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": model_type}))
    return root


@pytest.mark.parametrize("name", LAUNCHERS)
def test_shipped_accelerate_configs_parse(name: str):
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(launcher_config(name)))
    expected = {"zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP", "ddp": "MULTI_GPU"}[name]
    assert cfg.distributed_type.value == expected and cfg.mixed_precision == "bf16"
    if name.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])


def test_launch_prints_the_accelerate_command_and_saves_options(tis, tmp_path: Path):
    data, root = tis
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", "--data", str(data), "--image-root", str(root), "--model",
                                 "hf/Qwen/Qwen2.5-VL-7B-Instruct", "--out", str(out), "--method", "full",
                                 "--lr", "1e-5", "--launch", "accelerate", "--launcher-config", "zero3",
                                 "--num-gpus", "8"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("accelerate launch"))
    argv = shlex.split(line)
    assert argv[argv.index("--num_processes") + 1] == "8"
    assert Path(argv[argv.index("--config_file") + 1]) == launcher_config("zero3")
    assert argv[argv.index("-m") + 1] == "thinksafe.train"
    saved = read_yaml(argv[argv.index("--config") + 1])
    assert saved["method"] == "full" and saved["lr"] == 1e-5 and saved["data"] == str(data)


def test_launched_module_reads_the_saved_options(tmp_path: Path):
    """What each accelerate process runs: ``python -m thinksafe.train --config FILE``."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: missing.json\nmodel: hf/x\nout: o\n")
    res = subprocess.run([sys.executable, "-m", "thinksafe.train", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "missing.json: data file not found" in res.stderr


def test_qlora_launch_refuses_sharded_launchers(tmp_path: Path):
    cfg = TrainConfig(data="d", model="hf/m", out=str(tmp_path), method="qlora")
    with pytest.raises(TrainConfigError, match="zero2 or ddp"):
        accelerate_command(cfg, "zero3")
    assert accelerate_command(cfg, "ddp", 2)[0][:2] == ["accelerate", "launch"]


# Vicuna-format LLaVA (LLaVA-1.5's chat format), written for these tests.
VICUNA_LLAVA = ("{{- 'A chat between a curious user and an artificial intelligence assistant. ' -}}"
                "{%- for message in messages -%}{%- if message['role'] == 'user' -%}{{- 'USER: ' -}}"
                "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
                "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}{%- endfor -%}{{- ' ' -}}"
                "{%- elif message['role'] == 'assistant' -%}{{- 'ASSISTANT: ' + message['content'] + '</s>' -}}"
                "{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}")


@pytest.mark.parametrize(("model_type", "expected"), [("qwen2_5_vl", "qwen2_vl"), ("qwen2_vl", "qwen2_vl"),
                                                      ("mllama", "mllama"), ("glm4v", "glm4v")])
def test_template_from_the_family_when_no_chat_template_is_readable(tmp_path: Path, model_type: str, expected: str):
    model = fake_model(tmp_path / model_type, model_type)
    assert template(TrainConfig(data="d", model=f"hf/{model}", out="o")) == expected


def test_llava_template_follows_its_chat_format(tmp_path: Path):
    model = fake_model(tmp_path / "llava", "llava")
    with pytest.raises(TrainConfigError, match="cannot read the chat template"):
        template(TrainConfig(data="d", model=f"hf/{model}", out="o"))
    (model / "chat_template.jinja").write_text(VICUNA_LLAVA)
    assert template(TrainConfig(data="d", model=f"hf/{model}", out="o")) == "llava"


def test_template_from_hub_names_and_errors():
    def tpl(model: str, **kw) -> str:
        return template(TrainConfig(data="d", model=model, out="o", **kw))

    assert tpl("hf/Fancy-TJ/R1-Onevision-7B") == "qwen2_vl"
    assert tpl("hf/Xkev/Llama-3.2V-11B-cot") == "mllama"
    assert tpl("hf/some/model", template="gemma3") == "gemma3"
    with pytest.raises(TrainConfigError, match="pass --family or --template"):
        tpl("hf/nowhere/unknown-model-xyz")


def test_llamafactory_export_is_structurally_valid(tis, tmp_path: Path):
    data, root = tis
    model = fake_model(tmp_path / "qwen", "qwen2_5_vl")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(data), "--image-root", str(root), "--model", f"hf/{model}",
                                 "--out", str(out), "--export", "llamafactory", "--lora-r", "8", "--lora-alpha", "16",
                                 "--epochs", "1.5", "--max-length", "8192"])
    assert result.exit_code == 0, result.output
    folder = out / "llamafactory"
    assert f"llamafactory-cli train {folder / 'thinksafe_sft.yaml'}" in result.output
    cfg = yaml.safe_load((folder / "thinksafe_sft.yaml").read_text())
    expected = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
                "lora_rank": 8, "lora_alpha": 16, "lora_target": "all", "freeze_vision_tower": True,
                "freeze_multi_modal_projector": True, "dataset": "thinksafe_sft", "template": "qwen2_vl",
                "cutoff_len": 8192, "learning_rate": 1e-4, "num_train_epochs": 1.5, "lr_scheduler_type": "cosine",
                "bf16": False, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                "save_steps": 500, "save_total_limit": 2}
    assert {k: cfg.get(k) for k in expected} == expected
    info = json.loads((folder / "dataset_info.json").read_text())["thinksafe_sft"]
    assert info["formatting"] == "sharegpt"
    assert info["columns"] == {"messages": "conversations", "images": "images"}
    assert info["tags"] == {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    rows = json.loads((Path(cfg["dataset_dir"]) / info["file_name"]).read_text())
    source = json.loads(data.read_text())
    assert len(rows) == 44
    for row, src in zip(rows, source, strict=True):
        assert row["conversations"] == src["conversations"]  # text unchanged, quirks included
        assert row["images"] == src["images"]
        assert all((Path(cfg["media_dir"]) / p).is_file() for p in row["images"])
        assert sum(t["value"].count("<image>") for t in row["conversations"]) == len(row["images"])


def test_llamafactory_full_and_qlora_keys(tis, tmp_path: Path):
    data, root = tis
    model = fake_model(tmp_path / "mllama", "mllama")
    base = dict(data=str(data), image_root=str(root), model=f"hf/{model}", out=str(tmp_path / "o"))
    full = yaml.safe_load(export_llamafactory(TrainConfig(method="full", **base), tmp_path / "f")["config"].read_text())
    assert full["finetuning_type"] == "full" and "lora_rank" not in full and full["learning_rate"] == 1e-5
    assert full["template"] == "mllama"
    q = yaml.safe_load(export_llamafactory(TrainConfig(method="qlora", **base), tmp_path / "q")["config"].read_text())
    assert q["finetuning_type"] == "lora" and q["quantization_bit"] == 4


def test_export_and_launch_never_import_torch(tis, tmp_path: Path):
    data, root = tis
    model = fake_model(tmp_path / "llava", "llava")
    (model / "chat_template.jinja").write_text(VICUNA_LLAVA)
    code = ("import sys\nfrom thinksafe.cli.app import app\n"
            "for extra in (['--export', 'llamafactory'], ['--launch', 'accelerate']):\n"
            "    try:\n"
            f"        app(['train', '--data', {str(data)!r}, '--image-root', {str(root)!r}, '--model', "
            f"'hf/{model}', '--out', {str(tmp_path / 'o')!r}, *extra])\n"
            "    except SystemExit as e:\n"
            "        assert not e.code, e.code\n"
            "print('torch' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


def saved_options(tis, out: Path, *flags: str) -> dict:
    """The options ``thinksafe train ... --launch accelerate`` resolved and saved for its processes."""
    data, root = tis
    result = runner.invoke(app, ["train", "--data", str(data), "--image-root", str(root), "--model", "hf/m",
                                 "--out", str(out), "--launch", "accelerate", *flags])
    assert result.exit_code == 0, result.output
    argv = shlex.split(next(x for x in result.output.splitlines() if x.startswith("accelerate launch")))
    return read_yaml(argv[argv.index("--config") + 1])


def test_zero_means_none_on_the_command_line_and_in_yaml(tis, tmp_path: Path):
    """``--max-length 0`` / ``max_length: 0``: no limit; ``--save-steps 0`` / ``save_steps: 0``: no checkpoints."""
    yml = tmp_path / "c.yaml"
    yml.write_text("max_length: 2048\nsave_steps: 100\n")
    from_file = saved_options(tis, tmp_path / "a", "--config", str(yml))
    assert (from_file["max_length"], from_file["save_steps"]) == (2048, 100)
    flags = saved_options(tis, tmp_path / "b", "--config", str(yml), "--max-length", "0", "--save-steps", "0")
    assert (flags["max_length"], flags["save_steps"]) == (None, None)  # 0 given on the command line wins
    yml.write_text("max_length: 0\nsave_steps: 0\n")
    from_yaml = saved_options(tis, tmp_path / "c", "--config", str(yml))
    assert (from_yaml["max_length"], from_yaml["save_steps"]) == (None, None)
    assert saved_options(tis, tmp_path / "d")["max_length"] == 4096
    from typer.main import get_command

    option = next(p for p in get_command(app).commands["train"].params if p.name == "max_length")
    assert "(default 4096; 0 = no limit)" in option.help


def test_llamafactory_export_needs_a_max_length(tis, tmp_path: Path):
    data, root = tis
    model = fake_model(tmp_path / "qwen", "qwen2_5_vl")
    result = runner.invoke(app, ["train", "--data", str(data), "--image-root", str(root), "--model", f"hf/{model}",
                                 "--out", str(tmp_path / "run"), "--export", "llamafactory", "--max-length", "0"])
    assert result.exit_code == 2 and "LLaMA-Factory always cuts rows at cutoff_len" in result.output


def _fake_nvidia_smi(folder: Path, capability: str) -> None:
    """An ``nvidia-smi`` that reports one GPU of the given compute capability."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho {capability}\n")
    exe.chmod(0o755)


@pytest.mark.parametrize(("gpu", "flag", "bf16", "why"), [
    (None, None, False, "no CUDA GPU on the exporting machine"),
    ("8.0", None, True, "supports bf16 (compute capability 8.0)"),
    ("7.0", None, False, "compute capability 7.0 < 8.0"),
    (None, "--bf16", True, "--bf16 was given"),
    ("9.0", "--no-bf16", False, "--no-bf16 was given"),
])
def test_llamafactory_bf16_follows_the_trainers_rule(tis, tmp_path, monkeypatch, gpu, flag, bf16, why):
    data, root = tis
    model = fake_model(tmp_path / "qwen", "qwen2_5_vl")
    bin_dir = tmp_path / "bin"
    if gpu:
        _fake_nvidia_smi(bin_dir, gpu)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    args = ["train", "--data", str(data), "--image-root", str(root), "--model", f"hf/{model}", "--out",
            str(tmp_path / "o"), "--export", "llamafactory", *([flag] if flag else [])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "o" / "llamafactory" / "thinksafe_sft.yaml").read_text()
    assert yaml.safe_load(text)["bf16"] is bf16
    comment = next(line for line in text.splitlines() if line.startswith("# bf16:"))
    assert comment.startswith(f"# bf16: {str(bf16).lower()}: ") and why in comment


def test_llamafactory_modules_to_save_and_no_checkpoints(tis, tmp_path):
    data, root = tis
    model = fake_model(tmp_path / "qwen", "qwen2_vl")
    base = ["train", "--data", str(data), "--image-root", str(root), "--model", f"hf/{model}", "--export",
            "llamafactory"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--modules-to-save", "lm_head,embed_tokens",
                                 "--save-steps", "0"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "a" / "llamafactory" / "thinksafe_sft.yaml").read_text())
    assert cfg["additional_target"] == "lm_head,embed_tokens"
    assert cfg["save_strategy"] == "no" and "save_steps" not in cfg
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--save-steps", "200", "--method", "full",
                                 "--modules-to-save", "lm_head"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "b" / "llamafactory" / "thinksafe_sft.yaml").read_text())
    assert (cfg["save_steps"], cfg["save_total_limit"]) == (200, 2) and "save_strategy" not in cfg
    assert "additional_target" not in cfg  # full fine-tuning trains everything anyway


def test_chatml_llava_is_refused_not_trained_in_vicuna_format(tis, tmp_path):
    data, root = tis
    model = fake_model(tmp_path / "llava", "llava")
    from thinksafe.models.tiny.templates import CHATML_LLAVA

    (model / "chat_template.jinja").write_text(CHATML_LLAVA)
    result = runner.invoke(app, ["train", "--data", str(data), "--image-root", str(root), "--model", f"hf/{model}",
                                 "--out", str(tmp_path / "o"), "--export", "llamafactory"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "no LLaMA-Factory 0.9.5 template fits" in message and "ChatML with image marker <image>" in message
    assert "model_type is llava" in message and "--template NAME" in message
    assert not (tmp_path / "o" / "llamafactory").exists()
