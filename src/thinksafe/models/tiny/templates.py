"""Chat templates of the tiny models, one per architecture, in each model family's published format.

They are written by this project (short Jinja, no vendor text copied) to render
what the real checkpoints' templates render for image + text conversations:

* ``CHATML_LLAVA`` - LLaVA with a Qwen2 language model (ChatML, ``<image>`` lines),
  with TRL's ``{% generation %}`` markers;
* ``QWEN2_VL`` - Qwen2-VL / Qwen2.5-VL Instruct and the reasoning models built on
  them (R1-Onevision...): ChatML, default system prompt, each image as
  ``<|vision_start|><|image_pad|><|vision_end|>``; reasoning models write
  ``<think>...</think>`` themselves;
* ``QWEN3_VL_THINKING`` - Qwen3-VL-Thinking: the generation prompt opens
  ``<think>\\n``, a final assistant turn is rendered as
  ``<think>\\nREASONING\\n</think>\\n\\nANSWER`` and earlier ones without their reasoning;
* ``LLAMA32_VISION`` - Llama-3.2-Vision (Mllama; LLaVA-CoT's base): header tokens,
  ``<|image|>``, ``<|eot_id|>``;
* ``LLAVA_ONEVISION`` - LLaVA-OneVision (Qwen2): ChatML with ``<image>`` lines and
  the default system prompt;
* ``GLM41V_THINKING`` - GLM-4.1V-Thinking: ``[gMASK]<sop>``, ``<|user|>`` /
  ``<|assistant|>`` tags, ``<|begin_of_image|><|image|><|end_of_image|>``; the model
  answers ``<think>...</think><answer>...</answer>`` and earlier assistant turns
  are rendered without their thinking.

Every template renders the prompt of a conversation as a prefix of the whole
conversation, which is what training's label mask relies on.
"""

from __future__ import annotations


def _parts(image: str, video: str) -> str:
    """Jinja rendering ``message['content']`` (a string or a list of parts)."""
    return (
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{- '" + image + "' -}}"
        "{%- elif part['type'] == 'video' -%}{{- '" + video + "' -}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
    )


# The text of a message's content, whatever its form (for assistant turns).
_TEXT = (
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set text = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
)
# Splits ``text`` into ``reasoning`` (after ``<think>``, before the first ``</think>``)
# and ``answer`` (after the last ``</think>``).
_SPLIT_THINK = (
    "{%- if '</think>' in text -%}"
    "{%- set reasoning = text.split('</think>')[0].split('<think>')[-1].strip('\\n') -%}"
    "{%- set answer = text.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- else -%}{%- set reasoning = '' -%}{%- set answer = text -%}{%- endif -%}"
)

_CHATML_CONTENT = _parts("<image>\\n", "<video>\\n") + "{{- '<|im_end|>\\n' -}}"
CHATML_LLAVA = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}" + _CHATML_CONTENT + "{%- endgeneration -%}"
    "{%- else -%}" + _CHATML_CONTENT +
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_DEFAULT_SYSTEM = (
    "{%- if messages and messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
)

LLAVA_ONEVISION = (
    _DEFAULT_SYSTEM +
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}" + _CHATML_CONTENT +
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
_QWEN_VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"

QWEN2_VL = (
    _DEFAULT_SYSTEM +
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}" + _parts(_QWEN_IMAGE, _QWEN_VIDEO) +
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

QWEN3_VL_THINKING = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}" + _TEXT + _SPLIT_THINK +
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if loop.last -%}{{- '<think>\\n' + reasoning + '\\n</think>\\n\\n' -}}{%- endif -%}"
    "{{- answer + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}" + _parts(_QWEN_IMAGE, _QWEN_VIDEO) +
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}"
)

LLAMA32_VISION = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    + _parts("<|image|>", "") +
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

GLM41V_THINKING = (
    "{{- '[gMASK]<sop>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}" + _TEXT + _SPLIT_THINK +
    "{{- '<|assistant|>\\n' -}}"
    "{%- if loop.last -%}{{- text -}}{%- else -%}{{- answer -}}{%- endif -%}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>\\n' -}}"
    + _parts("<|begin_of_image|><|image|><|end_of_image|>", "<|begin_of_video|><|video|><|end_of_video|>") +
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
