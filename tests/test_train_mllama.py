"""The Mllama family (LLaVA-CoT's base): its per-token cross-attention mask under truncation.

Mllama carries a per-token ``cross_attention_mask``, the tensor TRL's
prompt/completion concatenation would leave at the prompt's length; the
collator cuts it with ``input_ids``. Labels, LoRA and full training of the tiny
Mllama run with every other architecture in test_architectures.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from thinksafe.train.collator import IGNORE, SFTCollator  # noqa: E402
from thinksafe.train.data import parse_row  # noqa: E402


def test_mllama_cross_attention_mask_is_cut_with_the_ids(arch_dirs, tmp_path: Path):
    from PIL import Image

    from thinksafe.models.processors import load_processor

    processor = load_processor(str(arch_dirs["mllama"]))
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
    assert (cut["labels"] == batch["labels"][:, :24]).all()
