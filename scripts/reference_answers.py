"""The plain answer computation, the baseline of tests and benchmarks (not used by the package).

One prompt at a time, the full ``[1, L, V]`` logits, the label tokens' logits at the last position:
what the batched extractor (:class:`lavid_plugin.signature.llm_backend.AnswerExtractor`) must equal.
"""

from typing import Sequence

import torch


def naive_answer_logits(model, tokenizer, prompts: Sequence[str], token_ids: Sequence[int], *,
                        add_special_tokens: bool = False) -> torch.Tensor:
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([tokenizer.encode(p, add_special_tokens=add_special_tokens)], device=device)
            full = model(input_ids=ids).logits  # [1, L, V]
            rows.append(full[0, -1, list(token_ids)].float().cpu())
    return torch.stack(rows)
