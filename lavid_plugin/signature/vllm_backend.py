"""Answer backend ``vllm``: the same prompts as the ``llm`` backend, answered by a vLLM engine.

For big teachers (Qwen2.5-72B, Llama-3-70B) on one or several GPUs (``--tensor-parallel-size``),
with prefix caching on: the prompts of a question share everything up to the class name, and the
M requests of one prompt share everything.

How the label logits are read exactly, for every label (not only the top-k of a generation): each
option label ``l`` is appended to the rendered prompt and vLLM returns the prompt log-probability
of that last token, ``log p(l | prompt) = logit_l - logsumexp(all logits)``. Within one prompt the
logsumexp is shared, so the per-question softmax of these values equals the softmax of the raw
label logits that the ``llm`` backend reads: the two signatures agree up to bf16 arithmetic.

Prompts come from :class:`~.llm_backend.PromptBuilder` with vLLM's tokenizer, so the chat template and
the tokenization are the ``llm`` backend's. Answers are cached in the same resumable shards, and
``--shard i/n`` splits the prompts as there (every n-th prompt).

Install: ``pip install 'lavid-plugin[vllm]'`` on a CUDA machine.
"""

from __future__ import annotations

import json
from typing import Sequence

import torch

from ..errors import LavidError
from ..utils import sha256_text
from .llm_backend import ExtractionStats, PromptBuilder, _progress, _ShardCache, resolve_label_token_ids, rows_from_answers
from .prompts import AUTHORS_ANSWER_TEMPLATE, option_labels
from .questions import Instantiator, Question

#: prompts per cache shard: how much a killed run recomputes at most
CHUNK = 512


class VLLMAnswerer:
    def __init__(self, model_id: str, *, tensor_parallel_size: int = 1, dtype: str = "bfloat16",
                 template: str = AUTHORS_ANSWER_TEMPLATE, label_kind: str = "number",
                 use_chat_template: bool | None = None, instantiator: Instantiator | None = None,
                 trust_remote_code: bool = False, llm=None, **engine_kwargs):
        if llm is None:
            try:
                from vllm import LLM
            except ImportError:
                raise LavidError("the vllm backend needs vLLM: pip install 'lavid-plugin[vllm]' (a CUDA machine)") \
                    from None
            llm = LLM(model=model_id, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                      enable_prefix_caching=True, trust_remote_code=trust_remote_code, **engine_kwargs)
        self.llm, self.model_id, self.dtype, self.tensor_parallel_size = llm, model_id, dtype, tensor_parallel_size
        self.tokenizer = llm.get_tokenizer()
        self.prompts = PromptBuilder(self.tokenizer, template=template, label_kind=label_kind,
                                     use_chat_template=use_chat_template, instantiator=instantiator, name=model_id)
        self.instantiator = self.prompts.instantiator
        self.fingerprint = sha256_text("vllm", model_id, dtype)
        self.token_ids: list[int] = []

    @classmethod
    def from_options(cls, opts, instantiator):
        ex = cls(opts.model, tensor_parallel_size=opts.tensor_parallel_size,
                 template=opts.template or AUTHORS_ANSWER_TEMPLATE, label_kind=opts.labels,
                 use_chat_template=False if opts.plain else None, instantiator=instantiator,
                 trust_remote_code=opts.trust_remote_code)
        return ex, {"cache_dir": opts.shard_cache, "progress": opts.progress}

    def label_logprobs(self, requests: list[list[int]]) -> list[float]:
        """For each token-id list, the prompt log-probability of its last token."""
        from vllm import SamplingParams

        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in requests],
                                 SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        values = []
        for ids, out in zip(requests, outs):
            last = out.prompt_logprobs[-1]
            if last is None or ids[-1] not in last:
                raise LavidError(f"vLLM returned no prompt log-probability for token {ids[-1]} (vLLM version?)")
            values.append(float(last[ids[-1]].logprob))
        return values

    def answer_prompts(self, questions: Sequence[Question], class_names: Sequence[str], *, cache_dir=None,
                       progress: bool = True, stats: ExtractionStats | None = None,
                       shard: tuple[int, int] | None = None, **_) -> dict[int, torch.Tensor]:
        """Prompt index (class * Q + question) -> log p of each label, NaN past the question's options."""
        max_m = max(q.num_options for q in questions)
        labels = self.token_ids = resolve_label_token_ids(self.tokenizer, option_labels(max_m, self.prompts.label_kind))
        stats = stats if stats is not None else ExtractionStats()
        prompts = self.prompts.build_prompts(questions, class_names)
        Q = len(questions)
        wanted = [i for i in range(len(prompts)) if shard is None or i % shard[1] == shard[0]]
        keys = {i: sha256_text(self.fingerprint, prompts[i], json.dumps(labels)) for i in wanted}
        cache = _ShardCache(cache_dir) if cache_dir else None
        known = cache.load() if cache else {}
        results = {i: known[keys[i]] for i in wanted if keys[i] in known}
        todo = [i for i in wanted if i not in results]
        bar = _progress(len(wanted), progress)
        bar.update(len(results))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            encoded = self.prompts.encode_all([prompts[i] for i in chunk])
            m_of = [questions[i % Q].num_options for i in chunk]
            requests = [ids + [labels[j]] for ids, m in zip(encoded, m_of) for j in range(m)]
            values = iter(self.label_logprobs(requests))
            rows = torch.full((len(chunk), max_m), float("nan"))
            for r, m in enumerate(m_of):
                rows[r, :m] = torch.tensor([next(values) for _ in range(m)])
            results.update(zip(chunk, rows))
            if cache:
                cache.write([keys[i] for i in chunk], rows)
            stats.num_computed += len(chunk)
            bar.update(len(chunk))
        bar.close()
        stats.num_prompts = len(wanted)
        return results

    def option_logits(self, questions: Sequence[Question], class_names: Sequence[str], **options) -> torch.Tensor:
        return rows_from_answers(self.answer_prompts(questions, class_names, **options), questions, len(class_names))

    def extract(self, questions: Sequence[Question], class_names: Sequence[str], *, temperature: float = 1.0,
                question_source: str | None = None, **options):
        from .answerers import build_signature

        return build_signature(self, questions, class_names, temperature=temperature, question_source=question_source,
                               **options)

    def provenance(self) -> dict:
        return {"source": "llm-answers",
                "answer_backend": "vLLM prompt log-probability of each option label appended to the prompt",
                "answering_model": self.model_id, "model_fingerprint": self.fingerprint,
                "prompt_template": self.prompts.template, "chat_template": self.prompts.use_chat_template,
                "label_kind": self.prompts.label_kind, "label_token_ids": self.token_ids, "dtype": self.dtype,
                "tensor_parallel_size": self.tensor_parallel_size}

