"""Answer backends behind one interface, and their registry.

An *answerer* turns questions and class names into raw option logits; :func:`build_signature` (the
one shared path) checks the inputs, softmaxes per question at the temperature and writes the
provenance, so every backend yields the same kind of :class:`~.llm_signature.LLMSignature`::

    class MyAnswerer:
        instantiator: Instantiator          # how "the class" becomes a class name

        @classmethod
        def from_options(cls, opts: AnswerOptions, instantiator): ...  # -> (answerer, call options)
        def option_logits(self, questions, class_names, **options) -> torch.Tensor: ...  # [K, sum M]
        def provenance(self) -> dict: ...   # model, prompt, ...: what produced the logits

    register_answerer("mine", "my_pkg.my_module:MyAnswerer")   # or the class itself

Registered here: ``llm`` (a transformers causal LM's next-token logits over the option labels,
:class:`~.llm_backend.AnswerExtractor`), ``vllm`` (the same prompts on a vLLM engine, tensor parallel,
:class:`~.vllm_backend.VLLMAnswerer`) and ``embedding`` (sentence-embedding similarity,
:class:`~.embedding.EmbeddingAnswerer`, for machines without a GPU; labelled as not an LLM).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Sequence

from ..errors import LavidError
from ..hf import check_model_source, library_versions  # noqa: F401 (the Stage 1 API)
from ..utils import check_output_path  # noqa: F401
from .questions import Question
from .llm_signature import LLMSignature, check_unique_class_names

@dataclass
class AnswerOptions:
    """What a backend is built from (``lavid signature extract`` fills it from its flags; library
    code builds it directly). Backends read the fields they use and ignore the rest."""
    model: str
    #: where resumable answer shards go; empty: ``<output>.cache`` beside the output, or none
    cache_dir: str = ""
    output: str = ""
    device: str | None = None
    device_map: str | None = None
    batch_size: int = 16
    template: str | None = None  # the answer prompt; None: the authors'
    labels: str = "number"  # option labels: number (1..M) or letter (A..M)
    plain: bool = False  # no chat template (base models)
    trust_remote_code: bool = False
    progress: bool = True
    tensor_parallel_size: int = 1  # vllm
    embedding_scoring: str = "statement"  # embedding

    @property
    def shard_cache(self) -> str | None:
        """The answer-shard folder: ``cache_dir``, or ``<output>.cache`` when an output is named."""
        return self.cache_dir or (str(self.output) + ".cache" if self.output else None)


#: backend name -> class, or "module:attribute" imported when first used
ANSWERERS: dict = {
    "llm": "lavid_plugin.signature.llm_backend:AnswerExtractor",
    "embedding": "lavid_plugin.signature.embedding:EmbeddingAnswerer",
    "vllm": "lavid_plugin.signature.vllm_backend:VLLMAnswerer",
}


def register_answerer(name: str, target) -> None:
    """Add a backend: ``target`` is its class or ``"module:attribute"``."""
    ANSWERERS[name] = target


def get_answerer(name: str):
    """The backend class registered as ``name``; an unknown name lists the registered ones."""
    if name not in ANSWERERS:
        raise LavidError(f"unknown answer backend {name!r}; registered: {sorted(ANSWERERS)}")
    target = ANSWERERS[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = ANSWERERS[name] = getattr(importlib.import_module(module), attr)
    return target


def build_signature(answerer, questions: Sequence[Question], class_names: Sequence[str], *, temperature: float = 1.0,
                    question_source: str | None = None, question_provenance: dict | None = None,
                    **options) -> LLMSignature:
    """Answer every question for every class with ``answerer``; ``options`` go to its
    ``option_logits`` (batch size, cache folder, progress bar, ...). ``question_provenance``: how the
    questions were generated (generator, prompt template), recorded when known."""
    if temperature <= 0:
        raise LavidError(f"temperature must be > 0, got {temperature}")
    check_unique_class_names(list(class_names), "class list")
    questions = list(questions)
    if not questions:
        raise LavidError("no questions to answer")
    logits = answerer.option_logits(questions, list(class_names), **options)
    prov = signature_provenance(answerer, temperature, question_source, question_provenance)
    return LLMSignature.from_option_logits(class_names, logits, questions, temperature=temperature, provenance=prov)


#: the key order signature files have always been written with (an unchanged extraction writes the same bytes)
PROVENANCE_ORDER = ("source", "answer_backend", "answering_model", "model_fingerprint", "question_source",
                    "prompt_template", "chat_template", "label_kind", "label_token_ids", "placeholders", "temperature",
                    "dtype")


def signature_provenance(answerer, temperature: float, question_source: str | None,
                         question_provenance: dict | None = None) -> dict:
    """The backend's own provenance plus what every signature records."""
    prov = {**answerer.provenance(), "question_source": question_source, "temperature": temperature,
            "placeholders": answerer.instantiator.table}
    if question_provenance:
        prov["question_provenance"] = question_provenance
    ordered = {k: prov.pop(k) for k in PROVENANCE_ORDER if k in prov}
    return {**ordered, **prov, "library_versions": library_versions()}
