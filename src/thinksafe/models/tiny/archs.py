"""One builder per architecture: tokenizer, processor and config of a tiny random model.

Every model is the real transformers class (``Qwen2_5_VLForConditionalGeneration``...)
with a tiny config: 2 text layers of width 64, a 2-layer vision tower, an
untied ``lm_head`` (with tied random embeddings the logits stay near uniform
and LoRA barely moves the loss). Image processors are the PIL ones (no
torchvision); processors that would carry a video processor are built without
one (see :mod:`thinksafe.models.processors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..processors import without_video
from . import templates
from .tokenizer import train_tokenizer

# A 2-layer, width-64 decoder; every text config starts from this.
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False)

CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_SPECIALS = CHATML + ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|image|>",
                  "<|python_tag|>", "<|finetune_right_pad_id|>"]
GLM_SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
                "<|begin_of_image|>", "<|end_of_image|>", "<|image|>", "<|begin_of_video|>", "<|end_of_video|>",
                "<|video|>"]


@dataclass(frozen=True)
class Arch:
    """What ``thinksafe tiny-model --arch NAME`` builds."""

    name: str
    model_class: str
    """The transformers class (``AutoModelForImageTextToText`` loads it back)."""
    real_models: str
    """Checkpoints of this architecture that the tiny model stands in for."""
    chat_format: str
    build: Callable[[], tuple[Any, Any]]
    """Returns ``(config, processor)``."""
    stop_tokens: tuple[str, ...] = ()
    """Tokens besides the tokenizer's EOS that end generation (generation_config)."""
    video_processor: dict[str, Any] | None = None
    """The video processor's saved config: built only where torchvision works, so
    written by hand (sizes matching the tiny vision tower)."""


def _ids(tok: Any, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def _text(tok: Any, **extra: Any) -> dict[str, Any]:
    """Text config fields shared by every architecture."""
    return dict(TEXT, vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, **extra)


def _mrope(section: list[int], **extra: Any) -> dict[str, Any]:
    # Multimodal rotary sections split head_dim/2 (= 8 at width 64, 4 heads).
    return {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section, **extra}


def llava() -> tuple[Any, Any]:
    """LLaVA: CLIP tower, Qwen2 text model, ChatML. 56 px images -> 16 ``<image>`` tokens."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig, LlavaProcessor, Qwen2Config

    tok = train_tokenizer(CHATML + ["<image>"], eos="<|im_end|>", pad="<|endoftext|>",
                          extra_special_tokens={"image_token": "<image>"}, chat_template=templates.CHATML_LLAVA)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=templates.CHATML_LLAVA)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=56, patch_size=14, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=Qwen2Config(**_text(tok)),
                         image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=16,
                         vision_feature_select_strategy="default", vision_feature_layer=-1, tie_word_embeddings=False)
    return config, processor


def _qwen_tokenizer(template: str) -> Any:
    return train_tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=template)


def _qwen_processor(processor_class: type, tok: Any, template: str, patch: int) -> Any:
    from transformers import Qwen2VLImageProcessorPil

    # 4x4 merged patches at most: a 760 px FigStep image becomes 16 image tokens.
    side = patch * 2
    image_processor = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, temporal_patch_size=2,
                                               min_pixels=(2 * side) ** 2, max_pixels=(4 * side) ** 2)
    return without_video(processor_class)(image_processor=image_processor, tokenizer=tok, chat_template=template)


def _qwen_token_ids(tok: Any) -> dict[str, int]:
    image, video, start, end = _ids(tok, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return dict(image_token_id=image, video_token_id=video, vision_start_token_id=start, vision_end_token_id=end)


def qwen2_vl() -> tuple[Any, Any]:
    """Qwen2-VL: ViT with 2x2 patch merger, M-RoPE text model."""
    from transformers import Qwen2VLConfig, Qwen2VLProcessor

    tok = _qwen_tokenizer(templates.QWEN2_VL)
    processor = _qwen_processor(Qwen2VLProcessor, tok, templates.QWEN2_VL, patch=14)
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=_text(tok, rope_parameters=_mrope([2, 2, 4])), vision_config=vision,
                           tie_word_embeddings=False, **_qwen_token_ids(tok))
    return config, processor


def qwen2_5_vl() -> tuple[Any, Any]:
    """Qwen2.5-VL: windowed-attention ViT (one full-attention block), M-RoPE text model."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor

    tok = _qwen_tokenizer(templates.QWEN2_VL)
    processor = _qwen_processor(Qwen2_5_VLProcessor, tok, templates.QWEN2_VL, patch=14)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, window_size=56,
                  fullatt_block_indexes=[1], patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2_5_VLConfig(text_config=_text(tok, rope_parameters=_mrope([2, 2, 4])), vision_config=vision,
                              tie_word_embeddings=False, **_qwen_token_ids(tok))
    return config, processor


def qwen3_vl() -> tuple[Any, Any]:
    """Qwen3-VL (Thinking): 16 px patches, DeepStack features, interleaved M-RoPE."""
    from transformers import Qwen3VLConfig, Qwen3VLProcessor

    tok = _qwen_tokenizer(templates.QWEN3_VL_THINKING)
    processor = _qwen_processor(Qwen3VLProcessor, tok, templates.QWEN3_VL_THINKING, patch=16)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=64, deepstack_visual_indexes=[0])
    text = _text(tok, head_dim=16, rope_parameters=_mrope([2, 3, 3], mrope_interleaved=True))
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                           **_qwen_token_ids(tok))
    return config, processor


def mllama() -> tuple[Any, Any]:
    """Mllama (Llama-3.2-Vision): one 28 px tile, cross-attention in text layer 1."""
    from transformers import MllamaConfig, MllamaImageProcessorPil, MllamaProcessor

    tok = train_tokenizer(LLAMA_SPECIALS, eos="<|eot_id|>", pad="<|finetune_right_pad_id|>", bos="<|begin_of_text|>",
                          extra_special_tokens={"image_token": "<|image|>"}, chat_template=templates.LLAMA32_VISION)
    image_processor = MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=1)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=templates.LLAMA32_VISION)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2, intermediate_size=64,
                  vision_output_dim=64, image_size=28, patch_size=14, max_num_tiles=1,
                  intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1]])
    text = _text(tok, cross_attention_layers=[1])
    config = MllamaConfig(vision_config=vision, text_config=text, tie_word_embeddings=False,
                          image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    return config, processor


def llava_onevision() -> tuple[Any, Any]:
    """LLaVA-OneVision: SigLIP tower, AnyRes tiles of 28 px, Qwen2 text model."""
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionImageProcessorPil, LlavaOnevisionProcessor,
                              Qwen2Config, SiglipVisionConfig)

    tok = train_tokenizer(CHATML + ["<image>", "<video>"], eos="<|im_end|>", pad="<|endoftext|>",
                          extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
                          chat_template=templates.LLAVA_ONEVISION)
    pinpoints = [[28, 28], [28, 56], [56, 28], [56, 56]]
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 28, "width": 28}, image_grid_pinpoints=pinpoints)
    processor = without_video(LlavaOnevisionProcessor)(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=4, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=templates.LLAVA_ONEVISION)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=28, patch_size=14)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=Qwen2Config(**_text(tok)),
                                  image_token_index=tok.convert_tokens_to_ids("<image>"),
                                  video_token_index=tok.convert_tokens_to_ids("<video>"),
                                  image_grid_pinpoints=pinpoints, vision_aspect_ratio="anyres_max_9",
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  tie_word_embeddings=False)
    return config, processor


def glm4v() -> tuple[Any, Any]:
    """GLM-4.1V-Thinking: ViT with patch merger, GLM-4 text model with partial M-RoPE."""
    from transformers import Glm4vConfig, Glm4vImageProcessorPil, Glm4vProcessor

    tok = train_tokenizer(GLM_SPECIALS, eos="<|endoftext|>", pad="<|endoftext|>",
                          chat_template=templates.GLM41V_THINKING, added=["<think>", "</think>", "<answer>", "</answer>"])
    image_processor = Glm4vImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                             size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
    processor = without_video(Glm4vProcessor)(image_processor=image_processor, tokenizer=tok,
                                              chat_template=templates.GLM41V_THINKING)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, image_size=28, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64)
    text = _text(tok, rope_parameters=_mrope([1, 1, 2], partial_rotary_factor=0.5))
    image, video, image_start, image_end, video_start, video_end = _ids(
        tok, "<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
        "<|end_of_video|>")
    config = Glm4vConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, image_token_id=image,
                         video_token_id=video, image_start_token_id=image_start, image_end_token_id=image_end,
                         video_start_token_id=video_start, video_end_token_id=video_end)
    return config, processor


def _qwen_video(cls: str, patch: int) -> dict[str, Any]:
    side = patch * 2
    return {"video_processor_type": cls, "patch_size": patch, "merge_size": 2, "temporal_patch_size": 2,
            "size": {"shortest_edge": (2 * side) ** 2, "longest_edge": (4 * side) ** 2}}


ARCHES: dict[str, Arch] = {a.name: a for a in (
    Arch("llava", "LlavaForConditionalGeneration", "LLaVA-style models with a ChatML (Qwen2) language model",
         "ChatML, <image> lines", llava),
    Arch("qwen2_vl", "Qwen2VLForConditionalGeneration", "Qwen2-VL-7B-Instruct, QVQ-72B-Preview, Mulberry-Qwen2-VL",
         "ChatML, <|vision_start|><|image_pad|><|vision_end|>", qwen2_vl,
         video_processor=_qwen_video("Qwen2VLVideoProcessor", 14)),
    Arch("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration",
         "Qwen2.5-VL-7B-Instruct, R1-Onevision, MM-Eureka, Vision-R1, OpenVLThinker, VL-Rethinker",
         "ChatML, <|vision_start|><|image_pad|><|vision_end|>", qwen2_5_vl,
         video_processor=_qwen_video("Qwen2VLVideoProcessor", 14)),
    Arch("qwen3_vl", "Qwen3VLForConditionalGeneration", "Qwen3-VL-8B-Thinking",
         "ChatML, generation prompt opens <think>", qwen3_vl,
         video_processor=_qwen_video("Qwen3VLVideoProcessor", 16)),
    Arch("mllama", "MllamaForConditionalGeneration", "Llama-3.2-11B-Vision-Instruct, LLaVA-CoT, LlamaV-o1",
         "Llama 3 headers, <|image|>", mllama),
    Arch("llava_onevision", "LlavaOnevisionForConditionalGeneration", "LLaVA-OneVision (Qwen2)",
         "ChatML, <image> lines, default system prompt", llava_onevision,
         video_processor={"video_processor_type": "LlavaOnevisionVideoProcessor", "size": {"height": 28, "width": 28}}),
    Arch("glm4v", "Glm4vForConditionalGeneration", "GLM-4.1V-9B-Thinking",
         "[gMASK]<sop><|user|>...<|assistant|>, <think>...</think><answer>...</answer>", glm4v,
         stop_tokens=("<|user|>", "<|observation|>"), video_processor=_qwen_video("Glm4vVideoProcessor", 14)),
)}
