"""Answer backends behind one interface, and their registry.

An *answerer* turns questions and class names into raw option logits; :func:`build_signature` (the
one shared path) checks the inputs, softmaxes per question at the temperature and writes the
provenance, so every backend yields the same kind of :class:`~.signature.LLMSignature`::

    class MyAnswerer:
        instantiator: Instantiator          # how "the class" becomes a class name

        @classmethod
        def from_cli(cls, args, instantiator): ...  # -> (answerer, options): `lavid signature extract --backend NAME`
        def option_logits(self, questions, class_names, **options) -> torch.Tensor: ...  # [K, sum M]
        def provenance(self) -> dict: ...   # model, prompt, ...: what produced the logits

    register_answerer("mine", "my_pkg.my_module:MyAnswerer")   # or the class itself

Registered here: ``llm`` (a transformers causal LM's next-token logits over the option labels,
:class:`~.extract.AnswerExtractor`), ``vllm`` (the same prompts on a vLLM engine, tensor parallel,
:class:`~.vllm_backend.VLLMAnswerer`) and ``embedding`` (sentence-embedding similarity,
:class:`~.embedding.EmbeddingAnswerer`, for machines without a GPU; labelled as not an LLM).
"""

from __future__ import annotations

import importlib
import platform
from typing import Sequence

from ..errors import LavidError
from .questions import Question
from .signature import LLMSignature, check_unique_class_names

#: backend name -> class, or "module:attribute" imported when first used
ANSWERERS: dict = {
    "llm": "lavid_plugin.signature.extract:AnswerExtractor",
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


def library_versions() -> dict:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


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


def check_model_source(name: str, *, trust_remote_code: bool = False) -> None:
    """Before anything loads: a path that is no folder, or a folder whose ``config.json`` maps its
    classes to the model's own Python code (``auto_map``) without ``--trust-remote-code``, is named."""
    import json
    from pathlib import Path

    path = Path(name).expanduser()
    local = path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or path.exists()
    if local and not path.is_dir():
        raise LavidError(f"--model {name}: no such model folder" + (" (it is a file)" if path.exists() else ""))
    config = path / "config.json"
    if local and config.is_file() and not trust_remote_code:
        try:
            auto_map = json.loads(config.read_text(encoding="utf-8")).get("auto_map")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            auto_map = None
        if auto_map:
            raise LavidError(f"{config}: auto_map {sorted(auto_map)} needs the model folder's own Python code; "
                             f"pass --trust-remote-code only if you trust that code")


def check_output_path(path) -> None:
    """An output file whose folder cannot exist (a parent is a regular file) or that is a folder is
    named before any model loads."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise LavidError(f"-o {path}: is a folder; give a file name")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise LavidError(f"-o {path}: cannot write there, {parent} is a file")
            break
