"""Class-name embeddings as LaViD targets (Table 5): a static vector per class from its name alone.

Stored as an :class:`~.llm_signature.LLMSignature` of kind ``embedding`` (one "question" whose D
"options" are the vector's components; no softmax), so ``LAVID.SIGNATURE`` takes it unchanged and
LaViD's head regresses the vector. As the authors' ``extract/word_embeddings.py``:

* ``minilm``: all-MiniLM-L6-v2's sentence embedding (mean over tokens, L2-normalised, as
  sentence-transformers' pipeline for it), 384-d;
* ``bert``: ``bert-base-uncased``'s last layer at the ``[CLS]`` token, 768-d, not normalised (the
  authors' code takes ``last_hidden_state[:, 0]``; ``--pooling mean`` averages the tokens instead);
* any other encoder folder or cached hub id: ``--pooling`` chooses (default mean, normalised).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import LavidError
from .embedding import MINILM_ALIASES, resolve_embedding_model
from .llm_signature import LLMSignature, check_unique_class_names

POOLINGS = ("cls", "mean")
BERT_ALIASES = ("bert", "bert-base-uncased")


def defaults_for(model: str) -> tuple[str, str, bool]:
    """``(model source, pooling, normalise)`` for a ``--model`` name."""
    if model.lower() in MINILM_ALIASES:
        return resolve_embedding_model(model), "mean", True
    if model.lower() in BERT_ALIASES:
        return "bert-base-uncased", "cls", False
    return model, "mean", True


@torch.inference_mode()
def embed_texts(model, tokenizer, texts: Sequence[str], pooling: str, normalize: bool, batch_size: int = 64):
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True, return_tensors="pt").to(device)
        h = model(**enc).last_hidden_state.float()
        if pooling == "cls":
            e = h[:, 0]
        else:
            m = enc["attention_mask"].unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(e, dim=-1) if normalize else e)
    return torch.cat(out).cpu()


def class_name_signature(class_names: Sequence[str], model: str = "minilm", *, pooling: str | None = None,
                         normalize: bool | None = None, device: str = "cpu") -> LLMSignature:
    from transformers import AutoModel, AutoTokenizer

    check_unique_class_names(list(class_names), "class list")
    source, default_pool, default_norm = defaults_for(model)
    pooling = pooling or default_pool
    normalize = default_norm if normalize is None else normalize
    if pooling not in POOLINGS:
        raise LavidError(f"--pooling must be one of {POOLINGS}, got {pooling!r}")
    try:
        tok = AutoTokenizer.from_pretrained(source)
        enc = AutoModel.from_pretrained(source).to(device).eval()
    except (OSError, ValueError) as e:
        raise LavidError(f"cannot load encoder {source!r} for --model {model}: {str(e).splitlines()[0]}") from None
    vectors = embed_texts(enc, tok, list(class_names), pooling, normalize)
    prov = {"kind": "embedding", "source": "class-name-embedding", "embedding_model": model, "model_source": source,
            "pooling": pooling, "normalized": normalize, "text": "the class name", "no_softmax": True}
    return LLMSignature(class_names, vectors, [0, vectors.shape[1]], provenance=prov, source=f"{model} embedding")


def drop_lowest_entropy(sig: LLMSignature, n: int, *, entropy: str = "mean") -> LLMSignature:
    """A smaller signature without the ``n`` questions of lowest entropy (Fig. 4).

    ``mean`` (the paper's score, E_c[H(p_q^(c))]): the mean over classes of each class's own answer
    entropy (low: confident answers); ``marginal``: the entropy of the question's option distribution
    averaged over classes (low: every class gets the same answer)."""
    if sig.provenance.get("kind") in ("embedding", "word_embedding"):
        raise LavidError("an embedding signature has no questions to drop")
    if not 0 <= n < sig.num_questions:
        raise LavidError(f"--drop-lowest-entropy must be in [0, {sig.num_questions - 1}] for a signature of "
                         f"{sig.num_questions} questions, got {n}")
    if entropy not in ("marginal", "mean"):
        raise LavidError(f"--entropy must be marginal or mean, got {entropy!r}")
    scores = []
    for q in range(sig.num_questions):
        p = sig.probs[:, sig.question_slice(q)].clamp_min(1e-12)
        if entropy == "marginal":
            m = p.mean(0)
            scores.append(float(-(m * m.log()).sum()))
        else:
            scores.append(float(-(p * p.log()).sum(1).mean()))
    order = sorted(range(sig.num_questions), key=lambda q: (scores[q], q))
    dropped = sorted(order[:n])
    keep = [q for q in range(sig.num_questions) if q not in dropped]
    cols = torch.cat([torch.arange(sig.offsets[q], sig.offsets[q + 1]) for q in keep])
    counts = [int(sig.offsets[q + 1] - sig.offsets[q]) for q in keep]
    from .llm_signature import offsets_from_counts

    prov = {**sig.provenance, "pruned_from": sig.provenance.get("content_hash") or sig.content_hash(),
            "dropped_questions": [q + 1 for q in dropped], "drop_rule": f"lowest {entropy} entropy",
            "question_entropy": [round(s, 6) for s in scores]}
    prov.pop("content_hash", None)
    questions = [sig.questions[q] for q in keep] if sig.questions is not None else None
    return LLMSignature(sig.class_names, sig.probs[:, cols], offsets_from_counts(counts), logits=sig.logits[:, cols],
                        questions=questions, provenance=prov, source="pruned signature")
