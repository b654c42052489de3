"""Choose the LLaMA-Factory template that trains a model in its own chat format.

LLaMA-Factory formats every conversation with a named template (``template:``
in its YAML) and expands ``<image>`` with a model-specific plugin. The name must
match two things: the *text format* the model was trained on and the *model
type* the image plugin was written for. A model type alone is not enough: a
``llava`` model may speak ChatML (LLaVA on Qwen2) or Vicuna (LLaVA-1.5), and
training one in the other's format teaches it a prompt it never sees.

So the model's own chat template is rendered on a probe conversation, its
format recognised (ChatML, Llama 3 headers, GLM, Vicuna), its image marker
found and whether its generation prompt opens ``<think>``; then the template
that fits format, image marker, thinking and model type is chosen, or the
export is refused with what was found. The table below is LLaMA-Factory 0.9.5's
``src/llamafactory/data/template.py`` (``register_template`` calls: user/assistant
formats and ``mm_plugin``), restricted to the vision-language templates.

Nothing here imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CHATML, LLAMA3, GLM, VICUNA = "ChatML", "Llama 3 headers", "GLM (<|user|>/<|assistant|>)", "Vicuna (USER:/ASSISTANT:)"
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
GLM_IMAGE = "<|begin_of_image|><|image|><|end_of_image|>"
IMAGE_MARKERS = (QWEN_IMAGE, GLM_IMAGE, "<|image|>", "<image>")


@dataclass(frozen=True)
class LFTemplate:
    """A LLaMA-Factory template: what its text looks like and which models its plugin serves."""

    name: str
    format: str
    image: str
    model_types: tuple[str, ...]
    opens_think: bool | None = None
    """True: for models whose prompt opens <think>; False: for those that do not; None: either."""


LF_TEMPLATES = (
    LFTemplate("qwen2_vl", CHATML, QWEN_IMAGE, ("qwen2_vl", "qwen2_5_vl")),
    LFTemplate("qwen3_vl", CHATML, QWEN_IMAGE, ("qwen3_vl", "qwen3_vl_moe"), opens_think=True),
    LFTemplate("qwen3_vl_nothink", CHATML, QWEN_IMAGE, ("qwen3_vl", "qwen3_vl_moe"), opens_think=False),
    LFTemplate("mllama", LLAMA3, "<|image|>", ("mllama",)),
    LFTemplate("glm4v", GLM, GLM_IMAGE, ("glm4v",)),
    LFTemplate("llava", VICUNA, "<image>", ("llava",)),
    LFTemplate("llava_next", VICUNA, "<image>", ("llava_next",)),
    LFTemplate("llava_next_qwen", CHATML, "<image>", ("llava_next",)),
    LFTemplate("llava_next_llama3", LLAMA3, "<image>", ("llava_next",)),
)


@dataclass(frozen=True)
class ChatFormat:
    """What a model's chat template renders."""

    format: str | None
    image: str | None
    opens_think: bool

    def describe(self) -> str:
        think = ", generation prompt opens <think>" if self.opens_think else ""
        return f"{self.format or 'an unrecognised format'} with image marker {self.image or '(none)'}{think}"


_PROBE = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "QUESTION"}]},
]


def chat_format(template: str) -> ChatFormat:
    """Render the probe conversation with ``template`` and recognise what came out."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template([_PROBE], chat_template=template, add_generation_prompt=True,
                                        bos_token="<s>", eos_token="</s>")
    text = rendered[0]
    if "<|im_start|>user" in text:
        fmt = CHATML
    elif "<|start_header_id|>user<|end_header_id|>" in text:
        fmt = LLAMA3
    elif "<|user|>" in text and "<|assistant|>" in text:
        fmt = GLM
    elif "USER:" in text and "ASSISTANT:" in text:
        fmt = VICUNA
    else:
        fmt = None
    image = next((m for m in IMAGE_MARKERS if m in text), None)
    return ChatFormat(fmt, image, text.rstrip().endswith("<think>"))


def matching(found: ChatFormat, model_type: str) -> list[LFTemplate]:
    """The LLaMA-Factory templates that fit a chat format and a model type."""
    return [t for t in LF_TEMPLATES
            if t.format == found.format and t.image == found.image and model_type in t.model_types
            and t.opens_think in (None, found.opens_think)]


def read_chat_template(path: str) -> str | None:
    """The chat template saved with a model (local folder or cached/downloadable Hub files), or None."""
    from transformers.utils import cached_file

    def file(name: str) -> str | None:
        try:
            return cached_file(path, name, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except Exception:  # noqa: BLE001 - offline, gated, unknown repo: no template from here
            return None

    jinja = file("chat_template.jinja")
    if jinja:
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        resolved = file(name)
        if resolved:
            with open(resolved, encoding="utf-8") as f:
                template = json.load(f).get("chat_template")
            if isinstance(template, list):  # named templates: the default one
                template = next((t.get("template") for t in template if t.get("name") == "default"), None)
            if isinstance(template, str):
                return template
    return None
