"""A tiny random-weight LLaVA (CLIP vision tower + Llama) and its processor, built offline.

For tests, examples and benchmarks of Stage 1b: it runs the exact code path of LLaVA-1.5 (the
processor expanding ``<image>`` into patch tokens, the projector, the language model) without
downloading anything. Its answers are random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

IMAGE_TOKEN = "<image>"
PROMPT_WORDS = "USER : ASSISTANT Is there a in this image ? Yes No"
#: LLaVA-1.5's conversation format: the user turn, the image first, then "ASSISTANT:" (the newline after the
#: turn is an expression: transformers renders chat templates with trim_blocks)
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{{ '\\n' }}"
                 "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def build_tiny_llava(corpus: Iterable[str] = (), *, vocab_size: int = 512, hidden: int = 64, layers: int = 4,
                     image_size: int = 32, patch: int = 16, vision_hidden: int = 32, vision_layers: int = 2,
                     seed: int = 0):
    """``(model, processor)``: LLaVA-1.5's architecture at toy width."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from ..hf import build_tokenizer

    tok = build_tokenizer([PROMPT_WORDS, *corpus], vocab_size)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                               num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                              num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                              patch_size=patch, projection_dim=vision_hidden)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                      vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(cfg).eval(), processor


def write_tiny_llava(out_dir: str | Path, corpus: Iterable[str] = (), **kw) -> Path:
    """Save a tiny LLaVA + processor to ``out_dir`` (loadable with ``AutoModelForImageTextToText``)."""
    out = Path(out_dir)
    model, processor = build_tiny_llava(corpus, **kw)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
