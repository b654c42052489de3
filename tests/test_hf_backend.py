"""HFBackend on the tiny random VLM: batching, left padding, think ablations, adapters."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from thinksafe.models.base import BackendError, GenerationSettings, text_messages  # noqa: E402
from thinksafe.models.hf import FORCED_CLOSE, NO_THINK_PREFILL, HFBackend  # noqa: E402
from thinksafe.reasoning import parse_completion  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    red, blue = folder / "red.png", folder / "blue.jpg"
    Image.new("RGB", (80, 60), (220, 20, 20)).save(red)
    Image.new("L", (40, 90), 120).save(blue)  # greyscale: the backend must convert to RGB
    return str(red), str(blue)


@pytest.fixture
def backend(tiny_model_dir):
    return HFBackend(str(tiny_model_dir), batch_size=4)


def _mixed_requests(images):
    """Prompts of clearly different lengths, with 0, 1 and 2 images and a system turn."""
    red, blue = images
    return [
        text_messages("How do I build a weapon? Explain every step in detail, please.", system="Be safe.",
                      images=[red]),
        text_messages("Hi"),
        text_messages("Compare these two images.", images=[red, blue]),
        text_messages("Is this request safe to answer?"),
    ]


async def _one_by_one(backend, requests, settings):
    return [await backend.complete(m, settings) for m in requests]


async def _together(backend, requests, settings):
    return await asyncio.gather(*(backend.complete(m, settings) for m in requests), return_exceptions=True)


def _direct_greedy(backend, messages, image_paths, max_new_tokens, suffix=()):
    """Reference: the loaded model's own greedy ids for one unpadded prompt (+ suffix ids)."""
    parts = [{"type": "image"} if p.get("type") == "image" else p for p in messages[-1]["content"]]
    rendered = backend.processor.apply_chat_template(messages[:-1] + [{"role": "user", "content": parts}],
                                                     add_generation_prompt=True, tokenize=False)
    loaded = [Image.open(p).convert("RGB") for p in image_paths]
    enc = dict(backend.processor(text=[rendered], images=[loaded] if loaded else None, return_tensors="pt",
                                 add_special_tokens=False))
    if suffix:
        enc["input_ids"] = torch.cat([enc["input_ids"], torch.tensor([list(suffix)])], dim=1)
        enc["attention_mask"] = torch.ones_like(enc["input_ids"])
    out = backend.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 suppress_tokens=backend._placeholder_ids())
    return out[0, enc["input_ids"].shape[1]:].tolist()


def test_spec_concurrency_and_fingerprint_need_no_weights(tiny_model_dir):
    b = HFBackend(str(tiny_model_dir), batch_size=3, dtype="float32")
    assert b.spec == "hf/" + str(tiny_model_dir)
    assert b.concurrency == 6
    assert b.fingerprint_config() == {"spec": b.spec, "dtype": "float32"}
    # --dtype auto loads as no --dtype does: same results, same fingerprint.
    assert HFBackend(str(tiny_model_dir), dtype="auto").fingerprint_config() == \
        HFBackend(str(tiny_model_dir)).fingerprint_config()
    assert b.model is None
    with pytest.raises(ValueError, match="dtype"):
        HFBackend(str(tiny_model_dir), dtype="float8")


def test_batched_greedy_equals_one_by_one(backend, images):
    requests = _mixed_requests(images)
    settings = GenerationSettings(max_tokens=12)
    batched = asyncio.run(_together(backend, requests, settings))
    assert backend.generate_calls == 1
    single = asyncio.run(_one_by_one(backend, requests, settings))
    assert backend.generate_calls == 1 + len(requests)
    assert backend.tokenizer.padding_side == "left"
    assert len({c.prompt_tokens for c in batched}) == len(requests)  # rows really needed padding
    for b, s in zip(batched, single, strict=True):
        assert b.content == s.content
        assert (b.prompt_tokens, b.completion_tokens, b.finish_reason) == (s.prompt_tokens, 12, "length")
        assert b.prefilled_think is False
    # The image prompt's 16 placeholder tokens per image are counted as prompt tokens.
    assert batched[2].prompt_tokens - 2 * 16 < batched[0].prompt_tokens


def test_batch_matches_the_models_own_unpadded_greedy_output(backend, images):
    requests = _mixed_requests(images)
    batched = asyncio.run(_together(backend, requests, GenerationSettings(max_tokens=10)))
    image_lists = [[images[0]], [], list(images), []]
    for completion, messages, paths in zip(batched, requests, image_lists, strict=True):
        expected = _direct_greedy(backend, messages, paths, 10)
        assert completion.content == backend.tokenizer.decode(expected, skip_special_tokens=True)


def test_concurrent_calls_are_batched_up_to_batch_size(tiny_model_dir, images):
    backend = HFBackend(str(tiny_model_dir), batch_size=2)
    requests = _mixed_requests(images) + [text_messages("One more question.")]
    results = asyncio.run(_together(backend, requests, GenerationSettings(max_tokens=4)))
    assert backend.generate_calls == 3  # 5 requests in batches of 2, 2, 1
    assert [c.completion_tokens for c in results] == [4] * 5


@pytest.mark.parametrize(("wait_s", "calls"), [(0.2, 1), (0.0, 2)])
def test_worker_waits_briefly_for_stragglers(backend, wait_s, calls):
    backend.load()  # keep loading time out of the timing
    backend.batch_wait_s = wait_s
    settings = GenerationSettings(max_tokens=3)

    async def staggered():
        first = asyncio.ensure_future(backend.complete(text_messages("Hi"), settings))
        await asyncio.sleep(0.02)
        return await asyncio.gather(first, backend.complete(text_messages("Hello"), settings))

    assert [c.completion_tokens for c in asyncio.run(staggered())] == [3, 3]
    assert backend.generate_calls == calls


def test_requests_with_different_settings_are_not_mixed(backend, images):
    requests = _mixed_requests(images)
    settings = [GenerationSettings(max_tokens=5), GenerationSettings(max_tokens=7)] * 2

    async def run():
        return await asyncio.gather(*(backend.complete(m, s) for m, s in zip(requests, settings, strict=True)))

    results = asyncio.run(run())
    assert backend.generate_calls == 2
    assert [c.completion_tokens for c in results] == [5, 7, 5, 7]


def test_finish_reason_stop_when_eos_is_generated(backend, images):
    messages = text_messages("Is this request safe to answer?")
    backend.load()
    reference = _direct_greedy(backend, messages, [], 8)
    k = next(i for i in range(1, 8) if reference[i] not in reference[:i])
    # Declare the model's k-th greedy token to be an end-of-sequence token.
    backend.model.generation_config.eos_token_id = [backend.tokenizer.eos_token_id, reference[k]]
    completion = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=8)))
    assert completion.finish_reason == "stop"
    assert completion.completion_tokens == k + 1
    assert completion.content == backend.tokenizer.decode(reference[:k], skip_special_tokens=True)


def test_no_think_prefills_an_empty_closed_think_block(backend, images):
    messages = text_messages("What is shown?", images=[images[0]])
    plain = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6)))
    forced = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6, extra={"no_think": True})))
    prefill_ids = backend.tokenizer.encode(NO_THINK_PREFILL, add_special_tokens=False)
    expected = _direct_greedy(backend, messages, [images[0]], 6, suffix=prefill_ids)
    assert forced.content == NO_THINK_PREFILL + backend.tokenizer.decode(expected, skip_special_tokens=True)
    assert forced.prompt_tokens == plain.prompt_tokens + len(prefill_ids)
    assert forced.completion_tokens == 6 and forced.prefilled_think is False
    gen = parse_completion(forced)
    assert (gen.reasoning, gen.reasoning_source, gen.truncated_in_reasoning) == ("", "tags", False)


def test_think_budget_forces_the_close_tag_and_continues(backend, images):
    messages = text_messages("What is shown?", images=[images[0]])
    capped = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=4)))
    calls = backend.generate_calls
    budget = GenerationSettings(max_tokens=10, extra={"think_budget": 4})
    completion = asyncio.run(backend.complete(messages, budget))
    assert backend.generate_calls == calls + 2
    first = _direct_greedy(backend, messages, [images[0]], 4)
    forced = backend.tokenizer.encode(FORCED_CLOSE, add_special_tokens=False)
    rest = _direct_greedy(backend, messages, [images[0]], 6, suffix=first + forced)
    assert completion.content == backend.tokenizer.decode(first + forced + rest, skip_special_tokens=True)
    assert completion.content.startswith(capped.content + FORCED_CLOSE)
    assert completion.content.count("</think>") == 1
    assert (completion.completion_tokens, completion.finish_reason) == (10, "length")
    assert parse_completion(completion).reasoning == capped.content.strip()


def test_think_budget_leaves_closed_or_short_outputs_alone(backend, images):
    messages = text_messages("What is shown?", images=[images[0]])
    plain = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6)))
    roomy = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6, extra={"think_budget": 6})))
    assert roomy.content == plain.content and "</think>" not in roomy.content
    both = {"no_think": True, "think_budget": 3}
    closed = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6, extra=both)))
    no_think = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=6, extra={"no_think": True})))
    assert closed.content == no_think.content  # </think> already in the prefill: nothing forced
    assert closed.content.count("</think>") == 1 and closed.completion_tokens == 6


def test_template_that_opens_think_sets_prefilled_think(backend):
    backend.load()
    backend.processor.chat_template += "{%- if add_generation_prompt -%}{{- '<think>\\n' -}}{%- endif -%}"
    messages = text_messages("Hi")
    plain = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=5)))
    assert plain.prefilled_think is True
    assert parse_completion(plain).truncated_in_reasoning is True
    forced = asyncio.run(backend.complete(messages, GenerationSettings(max_tokens=5, extra={"no_think": True})))
    assert forced.prefilled_think is True
    assert forced.content.startswith("</think>\n\n") and "<think>" not in forced.content
    gen = parse_completion(forced)
    assert gen.reasoning == "" and gen.full.startswith("<think></think>")


def test_unreadable_image_fails_only_its_request(backend, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    requests = [text_messages("Hi"), text_messages("Look.", images=[str(broken)]), text_messages("Is it safe?")]
    results = asyncio.run(_together(backend, requests, GenerationSettings(max_tokens=5)))
    assert isinstance(results[1], BackendError) and str(broken) in str(results[1])
    assert backend.generate_calls == 1
    single = asyncio.run(_one_by_one(backend, [requests[0], requests[2]], GenerationSettings(max_tokens=5)))
    assert [results[0].content, results[2].content] == [c.content for c in single]


def test_generation_error_is_isolated_to_the_failing_request(backend, images):
    backend.load()
    think_id = backend.tokenizer.convert_tokens_to_ids("<think>")
    real_generate = backend.model.generate

    def poisoned_generate(**kwargs):
        if (kwargs["input_ids"] == think_id).any():
            raise RuntimeError("poisoned row")
        return real_generate(**kwargs)

    backend.model.generate = poisoned_generate
    requests = [text_messages("Hi"), text_messages("<think> in the prompt"), text_messages("Is it safe?")]
    results = asyncio.run(_together(backend, requests, GenerationSettings(max_tokens=5)))
    assert isinstance(results[1], BackendError)
    assert "RuntimeError: poisoned row" in str(results[1])
    assert [results[0].completion_tokens, results[2].completion_tokens] == [5, 5]
    assert backend.generate_calls == 2  # the batch failed, then the two healthy rows ran alone


def test_sampling_is_reproducible_with_a_seed(backend):
    messages = text_messages("Hi")

    def sample(seed):
        settings = GenerationSettings(max_tokens=16, temperature=1.0, seed=seed)
        return asyncio.run(backend.complete(messages, settings)).content

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_lora_adapter_is_applied_and_fingerprinted(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    # init_lora_weights=False: random B, so the adapter visibly changes outputs.
    config = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(adapter_dir)

    messages = text_messages("Is this request safe to answer?")
    settings = GenerationSettings(max_tokens=10)
    plain = HFBackend(str(tiny_model_dir))
    tuned = HFBackend(str(tiny_model_dir), adapter=str(adapter_dir))
    base_out = asyncio.run(plain.complete(messages, settings)).content
    tuned_out = asyncio.run(tuned.complete(messages, settings)).content
    assert isinstance(tuned.model, PeftModel)
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), adapter_dir)
    plain.model = reference.eval()
    assert tuned_out != base_out
    assert tuned_out == asyncio.run(plain.complete(messages, settings)).content
    digest = hashlib.sha256((adapter_dir / "adapter_model.safetensors").read_bytes()).hexdigest()[:16]
    assert tuned.fingerprint_config() == {"spec": tuned.spec, "dtype": None, "adapter": str(adapter_dir),
                                          "adapter_sha": digest}


def test_text_only_model_falls_back_to_causal_lm(tmp_path, images):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from thinksafe.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    backend = HFBackend(str(tmp_path / "lm"))
    requests = [text_messages("Hi", system="Be safe."), text_messages("Look.", images=[images[0]])]
    results = asyncio.run(_together(backend, requests, GenerationSettings(max_tokens=5)))
    assert backend.processor is None
    assert results[0].completion_tokens == 5 and results[0].finish_reason == "length"
    assert isinstance(results[1], BackendError) and "text-only" in str(results[1])


def test_aclose_fails_nothing_and_frees_the_model(backend):
    async def run():
        first = await backend.complete(text_messages("Hi"), GenerationSettings(max_tokens=3))
        await backend.aclose()
        return first

    assert asyncio.run(run()).completion_tokens == 3
    assert backend.model is None
    again = asyncio.run(backend.complete(text_messages("Hi"), GenerationSettings(max_tokens=3)))
    assert again.completion_tokens == 3  # reloads lazily on the next request


def test_importing_backends_does_not_import_torch():
    code = ("import sys, thinksafe.models.base, thinksafe.models.hf, thinksafe.models.tiny; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_aclose_during_a_batch_fails_its_callers_instead_of_hanging(backend):
    backend.load()
    real_generate = backend.model.generate

    def slow_generate(**kwargs):
        import time

        time.sleep(0.5)
        return real_generate(**kwargs)

    backend.model.generate = slow_generate

    async def run():
        pending = asyncio.ensure_future(backend.complete(text_messages("Hi"), GenerationSettings(max_tokens=3)))
        await asyncio.sleep(0.1)
        await backend.aclose()
        return await asyncio.wait_for(pending, timeout=5)

    with pytest.raises(BackendError, match="closed"):
        asyncio.run(run())
