"""A tiny random-weight CLIP (text and image towers) with a locally built tokenizer, for tests and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


def build_tiny_clip(corpus: Iterable[str] = (), *, image_size: int = 32, patch: int = 16, seed: int = 0):
    """``(CLIPModel, tokenizer)``: CLIP's architecture at toy width; the tokenizer ends each text with
    its end-of-text token, which CLIP's text tower pools."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    from ..hf import build_tokenizer

    tok = build_tokenizer(["a photo of a .", *corpus], vocab_size=256)
    eos = tok.convert_tokens_to_ids("</s>")
    tok._tokenizer.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                          eos_token_id=eos, projection_dim=24)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch, projection_dim=24)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=24))
    return model.eval(), tok


def write_tiny_clip(out_dir: str | Path, corpus: Iterable[str] = (), **kw) -> Path:
    out = Path(out_dir)
    model, tok = build_tiny_clip(corpus, **kw)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
