"""The Mllama family (LLaVA-CoT's base) through the same collator and trainer.

A tiny random Mllama is built offline here: Mllama carries a per-token
``cross_attention_mask``, the tensor TRL's prompt/completion concatenation
would leave at the prompt's length, so it is the family most worth checking.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from thinksafe.train.collator import IGNORE, SFTCollator  # noqa: E402
from thinksafe.train.config import TrainConfig  # noqa: E402
from thinksafe.train.data import parse_row  # noqa: E402
from thinksafe.train.demo import write_demo_data  # noqa: E402
from thinksafe.train.sft import train  # noqa: E402

# Llama-3.2-Vision-like turns, shortened.
TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|image|>' -}}{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)


@pytest.fixture(scope="module")
def mllama_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor

    from thinksafe.models.tiny import build_tokenizer

    out = tmp_path_factory.mktemp("mllama")
    tok = build_tokenizer()
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                            "additional_special_tokens": ["<|image|>", "<|start_header_id|>", "<|end_header_id|>",
                                                          "<|python_tag|>"]})
    tok.chat_template = TEMPLATE
    tok.image_token = "<|image|>"
    processor = MllamaProcessor(image_processor=MllamaImageProcessorPil(size={"height": 28, "width": 28},
                                                                       max_image_tiles=1),
                                tokenizer=tok, chat_template=TEMPLATE)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2, intermediate_size=64,
                  vision_output_dim=64, image_size=28, patch_size=14, max_num_tiles=1,
                  intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1]])
    text = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, cross_attention_layers=[1], bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, max_position_embeddings=1024)
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(MllamaConfig(vision_config=vision, text_config=text,
                                                        image_token_index=tok.convert_tokens_to_ids("<|image|>")))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return write_demo_data(tmp_path_factory.mktemp("demo-data"))


def test_mllama_labels_and_cross_attention_mask(mllama_dir: Path, tmp_path: Path):
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(mllama_dir)
    Image.new("RGB", (50, 40), "red").save(tmp_path / "a.png")
    answers = ["<think>\nA red square.\n</think>\nIt is red.", "<think>\nok\n</think>\nNo."]
    questions = ["What is it?", "Describe the picture in detail, please."]
    rows = [parse_row({"conversations": [{"from": "human", "value": f"<image>{q}"}, {"from": "gpt", "value": a}],
                       "images": ["a.png"]}, n, tmp_path)
            for n, (q, a) in enumerate(zip(questions, answers, strict=True), 1)]
    batch = SFTCollator(processor)([r.to_record() for r in rows])
    assert batch["cross_attention_mask"].shape[:2] == batch["input_ids"].shape
    for i, answer in enumerate(answers):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        assert processor.tokenizer.decode(ids[labels != IGNORE]) == answer + "<|eot_id|>"
    cut = SFTCollator(processor, max_length=24)([r.to_record() for r in rows])
    assert cut["cross_attention_mask"].shape[:2] == cut["input_ids"].shape == (2, 24)


def test_mllama_lora_and_full_training_run(mllama_dir: Path, demo_data: Path, tmp_path: Path):
    base = dict(data=str(demo_data), model=f"hf/{mllama_dir}", batch_size=2, grad_accum=1, logging_steps=1,
                save_steps=None, max_length=120)
    lora = train(TrainConfig(out=str(tmp_path / "lora"), max_steps=3, lr=1e-2, **base), echo=None)
    assert lora["steps"] == 3 and (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    assert 0 < lora["parameters"]["trainable"] < lora["parameters"]["total"]
    full = train(TrainConfig(out=str(tmp_path / "full"), method="full", max_steps=2, lr=1e-3, **base), echo=None)
    assert full["steps"] == 2

    import torch
    from transformers import AutoModelForImageTextToText

    before = AutoModelForImageTextToText.from_pretrained(mllama_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(tmp_path / "full").state_dict()
    frozen = [k for k in before if "vision_model" in k or "multi_modal_projector" in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])
