"""The tiny random VLM: offline build, reload, determinism and chat template."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer  # noqa: E402

from thinksafe.models.tiny import IMAGE_TOKENS, build_tiny_model, make_tiny_model  # noqa: E402

USER_WITH_IMAGE = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}


def _greedy(model, processor, messages, images, max_new_tokens=16) -> list[int]:
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=images or None, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_folder_has_weights_processor_and_honest_card(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json",
            "chat_template.jinja", "README.md"} <= names
    card = (tiny_model_dir / "README.md").read_text()
    assert "randomly initialised" in card and "outputs are meaningless" in card
    assert "test" in card and "stand-in" in card
    assert sum(p.stat().st_size for p in tiny_model_dir.iterdir()) < 2_000_000


def test_reload_offline_gives_identical_greedy_output(tiny_model_dir):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor).__name__ == "LlavaProcessor"
    assert model.config.tie_word_embeddings is False
    assert model.config.text_config.model_type == "qwen2"
    assert model.config.vision_config.model_type == "clip_vision_model"
    fresh_model, fresh_processor = make_tiny_model(seed=0)
    image = Image.new("RGB", (80, 60), (200, 30, 30))
    reloaded = _greedy(model, processor, [USER_WITH_IMAGE], [image])
    in_memory = _greedy(fresh_model, fresh_processor, [USER_WITH_IMAGE], [image])
    assert reloaded == in_memory
    assert len(reloaded) == 16


def test_same_seed_same_files_other_seed_other_weights(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()


def test_chat_template_renders_system_images_and_generation_prompt(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    messages = [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe safe.<|im_end|>\n"
        "<|im_start|>user\n<image>\n<image>\nCompare.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_prompt = processor.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    assert without_prompt + "<|im_start|>assistant\n" == text
    images = [Image.new("RGB", (30, 90), "blue"), Image.new("RGB", (100, 40), "green")]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert IMAGE_TOKENS == 16
    assert int((inputs["input_ids"] == image_id).sum()) == 2 * 16
    assert tuple(inputs["pixel_values"].shape) == (2, 3, 56, 56)


def test_generation_markers_mask_exactly_the_assistant_turn(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert "{%- generation -%}" in processor.chat_template
    image = Image.new("RGB", (60, 60), "red")
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<think>ok</think> A."}]},
    ]
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    masked = [i for i, keep in zip(ids, mask, strict=True) if keep]
    assert processor.tokenizer.decode(masked) == "<think>ok</think> A.<|im_end|>\n"


def test_trl_accepts_the_template_for_assistant_only_loss(tiny_model_dir):
    trl_utils = pytest.importorskip("trl.chat_template_utils")
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert trl_utils.has_generation_markers(processor.chat_template)
    assert trl_utils.is_chat_template_stop_token_trained(processor)
    assert trl_utils.is_chat_template_prefix_preserving(processor)


def test_think_tags_are_single_normal_tokens(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.chat_template is not None
    ids = tokenizer.encode("<think>hmm</think> no<|im_end|>", add_special_tokens=False)
    think, close = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert ids[0] == think and close in ids
    assert think not in tokenizer.all_special_ids and close not in tokenizer.all_special_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>hmm</think> no"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_build_takes_seconds(tmp_path):
    import time

    make_tiny_model(seed=0)  # warm the lazy transformers imports
    start = time.perf_counter()
    build_tiny_model(tmp_path / "m", seed=1)
    assert time.perf_counter() - start < 10.0


def test_cli_builds_the_named_architecture_and_rejects_unknown_ones(tmp_path):
    import json

    from typer.testing import CliRunner

    from thinksafe.cli.app import app

    result = CliRunner().invoke(app, ["tiny-model", "--arch", "qwen2_5_vl", "--out", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "q" / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    processor_config = json.loads((tmp_path / "q" / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "Qwen2_5_VLProcessor"
    assert processor_config["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert "`Qwen2_5_VLForConditionalGeneration`" in (tmp_path / "q" / "README.md").read_text()
    bad = CliRunner().invoke(app, ["tiny-model", "--arch", "qwen9", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown architecture 'qwen9'" in bad.output
    assert not (tmp_path / "x").exists()


def test_processor_without_video_where_torchvision_is_missing(arch_dirs, caplog):
    from thinksafe.models.processors import load_processor, torchvision_available

    if torchvision_available():
        pytest.skip("torchvision is installed: AutoProcessor builds the full processor")
    with pytest.raises(Exception, match="(?i)torchvision|video"):
        AutoProcessor.from_pretrained(arch_dirs["qwen2_vl"])
    processor = load_processor(str(arch_dirs["qwen2_vl"]))
    assert type(processor).__name__ == "Qwen2VLProcessor" and not hasattr(processor, "video_processor")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert "loaded without its video processor" in caplog.text
    text = "<|vision_start|><|image_pad|><|vision_end|>Hi"
    enc = processor(text=[text], images=[Image.new("RGB", (760, 760))], return_tensors="pt")
    assert int((enc["input_ids"] == processor.image_token_id).sum()) == 16  # 112 px -> 8x8 patches -> 4x4 merged
    assert (enc["mm_token_type_ids"] == (enc["input_ids"] == processor.image_token_id)).all()
