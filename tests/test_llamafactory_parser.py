"""LLaMA-Factory 0.9.5 itself parses the exported YAML for every tiny architecture.

LLaMA-Factory pins its own transformers, so it lives in a venv of its own; set
``THINKSAFE_LLAMAFACTORY_PYTHON`` to that venv's python (``.ci/run`` builds one).
Its ``get_train_args`` is what ``llamafactory-cli train`` runs first: it rejects
unknown keys, ``bf16`` on a machine without bf16, and bad values.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from thinksafe.models.tiny import ARCHES
from thinksafe.train.config import TrainConfig
from thinksafe.train.llamafactory import export_llamafactory

from test_architectures import LF_TEMPLATE

LF_PYTHON = os.environ.get("THINKSAFE_LLAMAFACTORY_PYTHON")
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def parsed(arch_dirs, tmp_path_factory) -> dict[str, dict]:
    """Every architecture's export (LoRA + --modules-to-save, no checkpoints) and a bf16 copy, parsed at once."""
    if not LF_PYTHON or not Path(LF_PYTHON).is_file():
        pytest.skip("LLaMA-Factory is not installed: set THINKSAFE_LLAMAFACTORY_PYTHON to the python of a venv "
                    "with llamafactory==0.9.5 (.ci/run builds one)")
    from thinksafe.train.demo import write_demo_data

    root = tmp_path_factory.mktemp("lf-parse")
    data = write_demo_data(root / "data")
    files = {}
    for arch, template in LF_TEMPLATE.items():
        if template is None:
            continue
        cfg = TrainConfig(data=str(data), model=f"hf/{arch_dirs[arch]}", out=str(root / arch),
                          modules_to_save=["lm_head"], save_steps=None, max_length=1024)
        files[arch] = export_llamafactory(cfg)["config"]
    forced = root / "bf16.yaml"  # the control: the same file asking for bf16 on this CPU machine
    forced.write_text(files["qwen2_vl"].read_text().replace("bf16: false", "bf16: true"))
    res = subprocess.run([LF_PYTHON, str(HERE / "lf_parse.py"), *map(str, files.values()), str(forced)],
                         capture_output=True, text=True, timeout=300, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    by_file = {line["file"]: line for line in lines}
    out = {arch: by_file[str(path)] for arch, path in files.items()}
    out["bf16-control"] = by_file[str(forced)]
    return out


@pytest.mark.parametrize("arch", list(ARCHES))
def test_llamafactory_parses_the_export(arch: str, parsed):
    if LF_TEMPLATE[arch] is None:
        pytest.skip(f"{arch}: no LLaMA-Factory 0.9.5 template fits its chat format; the export refuses "
                    "(test_architectures.py::test_llamafactory_export_names_the_template_of_the_chat_format)")
    result = parsed[arch]
    assert "error" not in result, result
    assert result == {**result, "template": LF_TEMPLATE[arch], "template_known": True, "bf16": False,
                      "save_strategy": "no", "additional_target": ["lm_head"], "finetuning_type": "lora",
                      "freeze_vision_tower": True, "lora_rank": 8, "cutoff_len": 1024, "learning_rate": 1e-4}


def test_llamafactory_rejects_bf16_on_this_machine(parsed):
    """The control: what the old export wrote (``bf16: true``) does not start here."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: bf16 may be supported here")
    assert "doesn't support bf16" in parsed["bf16-control"]["error"]
