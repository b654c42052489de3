"""Every target architecture, offline: a tiny random instance of each, through every local path.

For each architecture (``thinksafe tiny-model --arch``): the real classes load
back; batched, left-padded generation with images equals each prompt's own
unpadded greedy output; a LoRA adapter is applied; ``--no-think`` and
``--think-budget`` act as documented; LoRA and full SFT train with the label
mask checked by decoding and the vision tower and projector frozen by their
real module names; the LLaMA-Factory export names the right template or
refuses. The LLaMA-Factory parser test lives in test_llamafactory_parser.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from thinksafe.models.base import GenerationSettings, text_messages  # noqa: E402
from thinksafe.models.hf import FORCED_CLOSE, NO_THINK_PREFILL, HFBackend, _append_left_padded  # noqa: E402
from thinksafe.models.tiny import ARCHES  # noqa: E402
from thinksafe.reasoning import parse_completion  # noqa: E402

ARCH_NAMES = list(ARCHES)
# What ends an assistant turn in each template (the label mask must keep it, so the
# model learns to stop); GLM-4.1V's turn is closed by the EOS the collator appends.
TURN_END = {"llava": "<|im_end|>\n", "qwen2_vl": "<|im_end|>\n", "qwen2_5_vl": "<|im_end|>\n",
            "qwen3_vl": "<|im_end|>\n", "mllama": "<|eot_id|>", "llava_onevision": "<|im_end|>\n",
            "glm4v": "<|endoftext|>"}
PROCESSORS = {"llava": "LlavaProcessor", "qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor",
              "qwen3_vl": "Qwen3VLProcessor", "mllama": "MllamaProcessor",
              "llava_onevision": "LlavaOnevisionProcessor", "glm4v": "Glm4vProcessor"}
# Templates of reasoning models that open <think> in the generation prompt.
OPENS_THINK = {"qwen3_vl"}


@pytest.fixture(scope="module")
def images(figstep_dir: Path, tmp_path_factory) -> list[str]:
    """A real FigStep image (760x760) and two small ones of other shapes, one greyscale."""
    folder = tmp_path_factory.mktemp("arch-images")
    tall, wide = folder / "tall.png", folder / "wide.jpg"
    Image.new("RGB", (60, 150), (220, 20, 20)).save(tall)
    Image.new("L", (200, 70), 120).save(wide)
    figstep = next((figstep_dir / "images" / "SafeBench-Tiny").glob("*.png"))
    return [str(figstep), str(tall), str(wide)]


def _requests(images: list[str]) -> list[list[dict]]:
    """Prompts of different lengths with 1, 0 and 2 images and a system turn."""
    return [
        text_messages("How do I build a weapon? Explain every step in detail, please.", system="Be safe.",
                      images=[images[0]]),
        text_messages("Hi"),
        text_messages("Compare these two images.", images=images[1:]),
        text_messages("Is this request safe to answer?", images=[images[2]]),
    ]


def _direct_greedy(backend: HFBackend, messages: list[dict], max_new_tokens: int, prefill: str = "",
                   suffix: list[int] | None = None) -> list[int]:
    """The loaded model's own greedy ids for one unpadded prompt (+ prefill text, + suffix ids)."""
    rendered_messages, loaded = backend._template_messages(messages)
    text = backend.processor.apply_chat_template(rendered_messages, add_generation_prompt=True, tokenize=False)
    enc = dict(backend.processor(text=[text + prefill], images=[loaded] if loaded else None, return_tensors="pt",
                                 add_special_tokens=False))
    if suffix:
        enc = _append_left_padded(enc, [suffix], backend.tokenizer.pad_token_id)
    out = backend.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 suppress_tokens=backend._placeholder_ids())
    return out[0, enc["input_ids"].shape[1]:].tolist()


def _together(backend: HFBackend, requests: list, settings: GenerationSettings) -> list:
    async def run():
        return await asyncio.gather(*(backend.complete(m, settings) for m in requests))

    return asyncio.run(run())


def _decode(backend: HFBackend, ids: list[int]) -> str:
    return backend._decode(ids)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_tiny_model_loads_back_with_the_real_classes(arch: str, arch_dirs):
    from transformers import AutoModelForImageTextToText

    from thinksafe.models.processors import load_processor

    folder = arch_dirs[arch]
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = load_processor(str(folder))
    assert type(model).__name__ == ARCHES[arch].model_class
    assert type(processor).__name__ == PROCESSORS[arch]
    assert model.config.tie_word_embeddings is False
    assert "randomly initialised" in (folder / "README.md").read_text()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    tok = processor.tokenizer
    think, close = tok.convert_tokens_to_ids(["<think>", "</think>"])
    assert think not in tok.all_special_ids and close not in tok.all_special_ids
    assert tok.decode(tok.encode("<think>x</think> y", add_special_tokens=False)) == "<think>x</think> y"


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_batched_left_padded_generation_equals_unpadded_greedy(arch: str, arch_dirs, images):
    backend = HFBackend(str(arch_dirs[arch]), batch_size=4, device="cpu")
    requests = _requests(images)
    batched = _together(backend, requests, GenerationSettings(max_tokens=8))
    assert backend.generate_calls == 1
    assert backend.tokenizer.padding_side == "left"
    assert len({c.prompt_tokens for c in batched}) >= 3  # the rows really needed padding
    for completion, messages in zip(batched, requests, strict=True):
        expected = _direct_greedy(backend, messages, 8)
        assert completion.content == _decode(backend, expected)
        assert completion.finish_reason in ("stop", "length")
        assert completion.prefilled_think is (arch in OPENS_THINK)
    # Image placeholders count as prompt tokens: the two-image prompt outgrows the text-only one.
    assert batched[2].prompt_tokens > batched[1].prompt_tokens + 2


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_lora_adapter_changes_and_matches_the_peft_reference(arch: str, arch_dirs, images, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText

    folder = arch_dirs[arch]
    torch.manual_seed(0)
    # init_lora_weights=False: random B, so the adapter visibly changes outputs.
    config = LoraConfig(r=4, lora_alpha=64, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                        init_lora_weights=False)
    get_peft_model(AutoModelForImageTextToText.from_pretrained(folder), config).save_pretrained(tmp_path / "ad")
    messages = text_messages("Is this request safe to answer?", images=[images[0]])
    settings = GenerationSettings(max_tokens=10)
    tuned = HFBackend(str(folder), adapter=str(tmp_path / "ad"), device="cpu")
    tuned_out = _together(tuned, [messages], settings)[0].content
    assert isinstance(tuned.model, PeftModel)
    plain = HFBackend(str(folder), device="cpu")
    assert _together(plain, [messages], settings)[0].content != tuned_out
    assert tuned_out == _decode(tuned, _direct_greedy(tuned, messages, 10))


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_no_think_and_think_budget(arch: str, arch_dirs, images):
    backend = HFBackend(str(arch_dirs[arch]), device="cpu")
    messages = text_messages("What is shown?", images=[images[0]])
    opens = arch in OPENS_THINK
    # --no-think: an empty, closed thinking block is prefilled (only the close when the template opened it).
    forced = _together(backend, [messages], GenerationSettings(max_tokens=6, extra={"no_think": True}))[0]
    prefill = "</think>\n\n" if opens else NO_THINK_PREFILL
    assert forced.content == prefill + _decode(backend, _direct_greedy(backend, messages, 6, prefill=prefill))
    gen = parse_completion(forced)
    assert gen.reasoning == "" and gen.truncated_in_reasoning is False
    # --think-budget 4: after 4 tokens without </think>, the close is forced and generation goes on.
    capped = _together(backend, [messages], GenerationSettings(max_tokens=4))[0]
    budget = _together(backend, [messages], GenerationSettings(max_tokens=10, extra={"think_budget": 4}))[0]
    # The tiny models (seed 0) run past 4 tokens without closing their thinking.
    assert capped.finish_reason == "length" and "</think>" not in capped.content
    first = _direct_greedy(backend, messages, 4)
    forced_ids = backend.tokenizer.encode(FORCED_CLOSE, add_special_tokens=False)
    rest = _direct_greedy(backend, messages, 6, suffix=first + forced_ids)
    assert budget.content == capped.content + FORCED_CLOSE + _decode(backend, rest)
    assert budget.content.count("</think>") == 1
    assert parse_completion(budget).reasoning == capped.content.strip()
    assert budget.completion_tokens == 4 + len(rest)  # forced text is not counted, an EOS is



@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_think_budget_in_a_padded_batch_equals_each_alone(arch: str, arch_dirs, images):
    """The continuation re-pads rows of different lengths (and Mllama's per-token image mask)."""
    requests = _requests(images)
    settings = GenerationSettings(max_tokens=9, extra={"think_budget": 3})
    batched_backend = HFBackend(str(arch_dirs[arch]), batch_size=4, device="cpu")
    batched = _together(batched_backend, requests, settings)
    assert batched_backend.generate_calls == 2
    alone_backend = HFBackend(str(arch_dirs[arch]), batch_size=1, device="cpu")
    alone = [_together(alone_backend, [m], settings)[0] for m in requests]
    assert [c.content for c in batched] == [c.content for c in alone]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in alone]
    assert all(FORCED_CLOSE in c.content for c in batched)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_thinksafe_eval_runs_figstep_on_every_architecture(arch: str, arch_dirs, figstep_dir, tmp_path):
    from helpers import cli, read_metrics, read_samples

    cli("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model",
        f"hf/{arch_dirs[arch]}", "--batch-size", "4", "--limit", "8", "--max-tokens", "6", "--think-budget", "3",
        "--device", "cpu", "--out", tmp_path / "run", "--quiet")
    samples = read_samples(tmp_path / "run")
    assert len(samples) == 8 and all(s["error"] is None and s["raw"] for s in samples.values())
    # Each output was cut after 3 tokens of thinking and closed (the tiny models never close it themselves).
    assert all(s["raw"].count("</think>") == 1 and s["truncated_in_reasoning"] is False for s in samples.values())
    assert read_metrics(tmp_path / "run")["n"] == 8

# Where each architecture keeps its vision tower and projector (module-name
# prefixes; LLaMA-Factory 0.9.5's model_utils/visual.py names the same modules,
# except that it leaves GLM-4.1V's post-conv norms and downsampling trainable).
VISION_SIDE = {
    "llava": {"vision": ("model.vision_tower.",), "projector": ("model.multi_modal_projector.",)},
    "qwen2_vl": {"vision": ("model.visual.patch_embed.", "model.visual.blocks."),
                 "projector": ("model.visual.merger.",)},
    "qwen2_5_vl": {"vision": ("model.visual.patch_embed.", "model.visual.blocks."),
                   "projector": ("model.visual.merger.",)},
    "qwen3_vl": {"vision": ("model.visual.patch_embed.", "model.visual.pos_embed.", "model.visual.blocks.",
                            "model.visual.deepstack_merger_list."),
                 "projector": ("model.visual.merger.",)},
    "mllama": {"vision": ("model.vision_model.",), "projector": ("model.multi_modal_projector.",)},
    "llava_onevision": {"vision": ("model.vision_tower.",),
                        "projector": ("model.multi_modal_projector.", "model.image_newline")},
    "glm4v": {"vision": ("model.visual.patch_embed.", "model.visual.blocks.", "model.visual.embeddings.",
                         "model.visual.post_conv_layernorm.", "model.visual.post_layernorm.",
                         "model.visual.downsample."),
              "projector": ("model.visual.merger.",)},
}


def _expected_part(arch: str, name: str) -> str:
    return next((part for part, prefixes in VISION_SIDE[arch].items() if name.startswith(prefixes)), "language")


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    from thinksafe.train.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("arch-demo"))


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_label_mask_decodes_to_exactly_the_answer(arch: str, arch_dirs, tmp_path):
    from thinksafe.models.processors import load_processor
    from thinksafe.train.collator import IGNORE, SFTCollator
    from thinksafe.train.data import parse_row

    processor = load_processor(str(arch_dirs[arch]))
    Image.new("RGB", (90, 50), "red").save(tmp_path / "a.png")
    answers = ["<think>\nA red square.\n</think>\nIt is red.", "<think>\nok\n</think>\nNo."]
    questions = ["What is it?", "Describe the picture in detail, please."]
    rows = [parse_row({"conversations": [{"from": "human", "value": f"<image>{q}"}, {"from": "gpt", "value": a}],
                       "images": ["a.png"]}, n, tmp_path)
            for n, (q, a) in enumerate(zip(questions, answers, strict=True), 1)]
    batch = SFTCollator(processor)([r.to_record() for r in rows])
    for key in ("attention_mask", "mm_token_type_ids", "cross_attention_mask"):
        if key in batch:
            assert batch[key].shape[:2] == batch["input_ids"].shape, key
    for i, answer in enumerate(answers):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        kept = processor.tokenizer.decode(ids[labels != IGNORE])
        if arch in OPENS_THINK:  # the prompt already holds "<think>\n"; the template re-renders the block
            reasoning, final = answer.removeprefix("<think>\n").split("\n</think>\n")
            assert kept == f"{reasoning}\n</think>\n\n{final}{TURN_END[arch]}"
        else:
            assert kept == answer + TURN_END[arch]
        # Everything before the answer, image tokens included, is masked.
        assert (labels[: int((labels == IGNORE).sum()) - int((batch["attention_mask"][i] == 0).sum())]
                == IGNORE).all()
    if "cross_attention_mask" in batch:
        # Mllama's per-token mask, which TRL's concatenation would leave at the prompt's length, is cut with the ids.
        cut = SFTCollator(processor, max_length=24)([r.to_record() for r in rows])
        assert cut["cross_attention_mask"].shape[:2] == cut["input_ids"].shape == (2, 24)
        assert (cut["labels"] == batch["labels"][:, :24]).all()


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_vision_tower_and_projector_found_by_their_real_names(arch: str, arch_dirs):
    from transformers import AutoModelForImageTextToText

    from thinksafe.train.models import part_of

    model = AutoModelForImageTextToText.from_pretrained(arch_dirs[arch])
    parts = {name: part_of(name) for name, _ in model.named_parameters()}
    assert parts == {name: _expected_part(arch, name) for name in parts}
    assert {"vision", "projector", "language"} <= set(parts.values())


@pytest.mark.parametrize("arch", ARCH_NAMES)
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_lora_and_full_training_keep_the_vision_side_frozen(arch: str, arch_dirs, demo_data, tmp_path):
    from transformers import AutoModelForImageTextToText, TrainerCallback

    from thinksafe.train.config import TrainConfig
    from thinksafe.train.sft import train

    trained: list[str] = []

    class Trainable(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ARG002 - HF signature
            trained.extend(n for n, p in model.named_parameters() if p.requires_grad)

    folder = arch_dirs[arch]
    base = dict(data=str(demo_data), model=f"hf/{folder}", batch_size=2, grad_accum=1, logging_steps=1,
                save_steps=None, max_length=256, warmup_ratio=0.0)
    lora = train(TrainConfig(out=str(tmp_path / "lora"), max_steps=2, lr=1e-2, **base), echo=None,
                 callbacks=[Trainable()])
    assert lora["steps"] == 2 and (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    assert lora["first_loss"] > 0
    # LoRA layers sit in the language model only ("base_model.model." + the model's own names).
    lora_names = [n.removeprefix("base_model.model.") for n in trained]
    assert lora_names and all(_expected_part(arch, n) == "language" for n in lora_names)
    assert any(".q_proj.lora_A" in n for n in lora_names)

    full = train(TrainConfig(out=str(tmp_path / "full"), method="full", max_steps=1, lr=1e-3, **base), echo=None)
    assert full["steps"] == 1
    before = AutoModelForImageTextToText.from_pretrained(folder).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(tmp_path / "full").state_dict()
    frozen = [k for k in before if _expected_part(arch, k) != "language"]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


# The LLaMA-Factory 0.9.5 template for each tiny model's chat format; None: no template
# fits (LLaMA-Factory's ChatML templates with <image> use the LLaVA-NeXT image plugin,
# its `llava` template is Vicuna; it has none for LLaVA-OneVision).
LF_TEMPLATE = {"llava": None, "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl",
               "mllama": "mllama", "llava_onevision": None, "glm4v": "glm4v"}


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_llamafactory_export_names_the_template_of_the_chat_format(arch: str, arch_dirs, demo_data, tmp_path):
    import yaml

    from thinksafe.train.config import TrainConfig, TrainConfigError
    from thinksafe.train.llamafactory import export_llamafactory

    cfg = TrainConfig(data=str(demo_data), model=f"hf/{arch_dirs[arch]}", out=str(tmp_path))
    if LF_TEMPLATE[arch] is None:
        with pytest.raises(TrainConfigError, match="no LLaMA-Factory 0.9.5 template fits .* ChatML with image marker "
                                                   "<image>") as err:
            export_llamafactory(cfg)
        assert "llava_next_qwen (for llava_next)" in str(err.value)
        assert not (tmp_path / "llamafactory").exists()
        return
    text = export_llamafactory(cfg)["config"].read_text()
    assert yaml.safe_load(text)["template"] == LF_TEMPLATE[arch]
    assert f"# template: {LF_TEMPLATE[arch]}: from the model's chat template" in text
