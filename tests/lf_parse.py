"""Run by LLaMA-Factory's own python: parse exported YAML files with its argument parser.

Usage: python lf_parse.py FILE.yaml...  -> one JSON line per file: the parsed
values the tests check, or the error LLaMA-Factory raised.
"""

import importlib.machinery
import json
import sys
import types

# llamafactory.data.mm_plugin imports torchaudio at module level; no torchaudio
# wheel loads next to the CPU torch this runs on, and nothing here touches audio.
try:
    import torchaudio  # noqa: F401
except (ImportError, OSError):
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = stub

import yaml  # noqa: E402
from llamafactory.data.template import TEMPLATES  # noqa: E402
from llamafactory.hparams import get_train_args  # noqa: E402

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        args = yaml.safe_load(f)
    try:
        model, data, training, finetuning, _ = get_train_args(args)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        print(json.dumps({"file": path, "error": f"{type(exc).__name__}: {exc}"}))
        continue
    print(json.dumps({
        "file": path, "template": data.template, "template_known": data.template in TEMPLATES,
        "bf16": training.bf16, "save_strategy": str(getattr(training.save_strategy, "value", training.save_strategy)),
        "additional_target": finetuning.additional_target, "finetuning_type": finetuning.finetuning_type,
        "freeze_vision_tower": finetuning.freeze_vision_tower, "lora_rank": finetuning.lora_rank,
        "cutoff_len": data.cutoff_len, "learning_rate": training.learning_rate,
    }))
