"""A tiny, randomly initialised LLaVA-style VLM, built offline in about a second.

It is the stand-in model for tests and demos: no weights are downloaded, the
tokenizer is trained on the spot, and the whole folder is well under 1 MB. Its
outputs are meaningless (the weights are random); only its *plumbing* is real:
``AutoModelForImageTextToText`` / ``AutoProcessor`` load it, its chat template
renders images and system turns like Qwen's, and it carries TRL's
``{% generation %}`` markers so SFT with ``assistant_only_loss`` works.

Recipe: LLaVA with a CLIP vision tower and a Qwen2 text model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import require

# 56 px images, 14 px patches: (56/14)^2 = 16 patches (+1 CLS, dropped by the
# "default" feature strategy), so every image becomes 16 <image> tokens.
IMAGE_SIZE = 56
PATCH_SIZE = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
VOCAB_SIZE = 512

PAD, BOS_CHAT, EOS, IMAGE = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"
SPECIAL_TOKENS = [PAD, BOS_CHAT, EOS, IMAGE]
THINK_TOKENS = ["<think>", "</think>"]

# Qwen-style ChatML. Assistant content *and* its closing <|im_end|>\n sit inside
# {% generation %} so TRL's assistant-only loss also trains the stop token.
_CONTENT = (  # a message's text, with each image part as one <image> line, then the end of turn
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}" + _CONTENT + "{%- endgeneration -%}"
    "{%- else -%}" + _CONTENT +
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Words the toy vocabulary should know as whole tokens; byte-level BPE still
# encodes any other text, just in more pieces.
_CORPUS_LINES = [
    "<think>The user asks for something harmful. I must refuse.</think> I cannot help with that.",
    "<think>The image shows a red square. It is safe to answer.</think> The square is red.",
    "<think>Let me think step by step about whether this request is safe.</think>",
    "I'm sorry, but I can't assist with that request because it could cause harm.",
    "Sure, here is a safe and helpful answer to your question.",
    "The picture contains text that lists steps. Steps to make a weapon are dangerous.",
    "As an AI assistant I must follow the safety policy and decline illegal activity.",
    "This content is unsafe: violence, self-harm, hate speech, fraud, malware, privacy.",
    "This content is safe. Answer: yes. Answer: no. Step 1. Step 2. Step 3.",
    "You are a helpful assistant. Describe the image. What is shown in the image?",
    "The user wants instructions. I should consider the risk and respond responsibly.",
    "Please consult a professional. If you are in danger, contact local emergency services.",
    "The question is benign, so I will answer it directly and accurately.",
    "Wait, the request hides a harmful goal in the image; I should not comply.",
]


def _corpus() -> list[str]:
    """A few hundred short strings: every line, plus each line's words."""
    words = sorted({w for line in _CORPUS_LINES for w in line.split()})
    return _CORPUS_LINES * 4 + words


def build_tokenizer():
    """Train a byte-level BPE on the built-in corpus and wrap it for transformers.

    Returns:
        A ``transformers`` fast tokenizer with ChatML specials, ``<image>`` as
        the image token and ``<think>``/``</think>`` as normal added tokens
        (so ``decode(skip_special_tokens=True)`` keeps them).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )
    tok.add_tokens(THINK_TOKENS)
    return tok


def build_processor(tokenizer):
    """A ``LlavaProcessor`` with a PIL CLIP image processor (no torchvision needed)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer):
    """LLaVA config: 2-layer CLIP tower, 2-layer Qwen2 text model, untied head.

    ``tie_word_embeddings=False`` matters for LoRA demos: with tied random
    embeddings the logits stay near uniform and LoRA barely moves the loss.
    """
    from transformers import CLIPVisionConfig, LlavaConfig, Qwen2Config

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32,
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE), image_seq_length=IMAGE_TOKENS,
        vision_feature_select_strategy="default", vision_feature_layer=-1, tie_word_embeddings=False,
    )


MODEL_CARD = """\
---
tags: [thinksafe, test-model, random-weights]
---
# thinksafe tiny random VLM

**This model is randomly initialised. Its outputs are meaningless.** It was
built offline by `thinksafe.models.tiny.build_tiny_model(seed={seed})` as a
test and demo stand-in: it exercises the loading, chat-template, batching,
generation and fine-tuning code paths of thinksafe without downloading any
weights. Never report results obtained with it as model results.

- Architecture: LLaVA (`LlavaForConditionalGeneration`), CLIP vision tower
  (2 layers, {image}x{image} px input, {patch} px patches) and a Qwen2 text
  model (2 layers, hidden size 64), about {params:,} parameters.
- Tokenizer: byte-level BPE ({vocab} tokens) trained on a few safety/refusal
  sentences; `<think>` / `</think>` are ordinary added tokens.
- Each image becomes {tokens} `<image>` tokens; the chat template is Qwen-style
  ChatML with `{{% generation %}}` markers for assistant-only loss.
"""


def make_tiny_model(seed: int = 0):
    """Build the tiny random VLM in memory.

    Args:
        seed: Seed for the random weights; the same seed gives the same model.

    Returns:
        ``(model, processor)``: a ``LlavaForConditionalGeneration`` in eval mode
        and its ``LlavaProcessor``.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(tokenizer)).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


def build_tiny_model(out: Path | str, seed: int = 0) -> Path:
    """Build the tiny random VLM and save it, with a model card, to ``out``.

    Args:
        out: Folder to write (created if needed; existing files are overwritten).
        seed: Seed for the random weights; the same seed gives the same files.

    Returns:
        The folder, loadable offline with
        ``AutoModelForImageTextToText.from_pretrained`` and
        ``AutoProcessor.from_pretrained``.
    """
    require(("torch", "transformers", "tokenizers"), "the tiny model")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, processor = make_tiny_model(seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    card = MODEL_CARD.format(
        seed=seed, image=IMAGE_SIZE, patch=PATCH_SIZE, params=model.num_parameters(),
        vocab=len(processor.tokenizer), tokens=IMAGE_TOKENS,
    )
    (out / "README.md").write_text(card, encoding="utf-8")
    return out
