"""A tiny random-weight causal LM and a word-level tokenizer with a chat template, built offline.

For examples, tests and benchmarks: it exercises the exact code path of a real chat model
(chat template, left padding, ``logits_to_keep``) without downloading anything. Its answers are
random, so a signature it writes has no meaning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["[PAD]", "[UNK]", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 2048):
    """Word-level tokenizer: words of ``corpus``, single digits and letters, padded with filler
    tokens up to ``vocab_size`` (a realistic vocabulary makes full-vocabulary logits cost what they
    cost in a real model)."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words: dict[str, int] = {}
    for tok in SPECIAL + list("0123456789") + [chr(c) for c in range(ord("A"), ord("Z") + 1)]:
        words.setdefault(tok, len(words))
    for text in corpus:
        for w in re.findall(r"[^\W\d]+|[^\w\s]", text):
            words.setdefault(w, len(words))
    i = 0
    while len(words) < vocab_size:
        words.setdefault(f"<filler{i}>", len(words))
        i += 1
    tk = Tokenizer(WordLevel(vocab=words, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
    tk.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


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
