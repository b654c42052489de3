"""A byte-level BPE tokenizer trained on the spot (milliseconds) for the tiny models.

Each architecture passes its own special tokens (chat markers, image
placeholders); ``<think>`` / ``</think>`` are added as ordinary tokens, as in the
real reasoning models, so ``decode(skip_special_tokens=True)`` keeps them.
"""

from __future__ import annotations

from typing import Any

VOCAB_SIZE = 512
THINK_TOKENS = ["<think>", "</think>"]

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


def corpus() -> list[str]:
    """A few hundred short strings: every line, plus each line's words."""
    words = sorted({w for line in _CORPUS_LINES for w in line.split()})
    return _CORPUS_LINES * 4 + words


def train_tokenizer(specials: list[str], *, eos: str, pad: str, bos: str | None = None,
                    extra_special_tokens: dict[str, str] | None = None, chat_template: str | None = None,
                    added: list[str] = THINK_TOKENS) -> Any:
    """Train a byte-level BPE on the built-in corpus and wrap it for transformers.

    Args:
        specials: Special tokens, in id order from 0 (chat markers, placeholders).
        eos, pad, bos: Which of them end a turn, pad, and begin the text.
        extra_special_tokens: Named specials the processor looks up
            (``{"image_token": "<image>"}``).
        chat_template: The Jinja chat template.
        added: Ordinary (not special) tokens added whole.

    Returns:
        A ``transformers`` fast tokenizer, left-padding.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus(), trainer)
    names = {"eos_token": eos, "pad_token": pad}
    if bos is not None:
        names["bos_token"] = bos
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, extra_special_tokens=extra_special_tokens or {},
                                  padding_side="left", chat_template=chat_template, **names)
    tok.add_tokens(list(added))
    return tok
