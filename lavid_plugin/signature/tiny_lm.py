"""A tiny random-weight causal LM and a word-level tokenizer with a chat template, built offline.

For examples, tests and benchmarks: it exercises the exact code path of a real chat model
(chat template, left padding, ``logits_to_keep``) without downloading anything. Its answers are
random, so a signature it writes has no meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..hf import CHAT_TEMPLATE, SPECIAL, build_tokenizer  # noqa: F401

def build_tiny_causal_lm(vocab_size: int, *, hidden: int = 64, layers: int = 2, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def write_tiny_lm(out_dir: str | Path, corpus: Iterable[str] = (), *, vocab_size: int = 2048,
                  hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny model + tokenizer to ``out_dir`` (loadable with ``from_pretrained``)."""
    out = Path(out_dir)
    tok = build_tokenizer(corpus, vocab_size)
    model = build_tiny_causal_lm(len(tok), hidden=hidden, layers=layers, seed=seed)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
