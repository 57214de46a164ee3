"""Answer extraction: a causal LM's next-token distribution over the option labels, per class.

For every (class, question) the question is instantiated with the class name, wrapped in the answer
prompt and the tokenizer's chat template (with the generation prompt), and the model's next-token
logits at the last position are read for the label tokens "1".."M" (or "A".."M"). Their softmax at
``temperature`` is the class's answer distribution.

Why it is fast: prompts are tokenized once, sorted by length and left-padded per batch (little
padding); only the last position's logits are computed (``logits_to_keep=1``), never the
``batch x length x vocabulary`` tensor; position ids follow the attention mask, so a padded prompt
gives the same numbers as the prompt alone.

Why it resumes: every fixed batch writes a shard (safetensors, atomic) keyed by a content hash of
(model, rendered prompt, label tokens). A rerun loads the shards and computes only the batches not
yet on disk; batches are fixed up front, so the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import LavidError
from ..hf import load_pretrained, resolve_label_token_ids  # noqa: F401 (used here, and the Stage 1 API)
from ..utils import atomic_path, sha256_text
from .answerers import build_signature
from .prompts import AUTHORS_ANSWER_TEMPLATE, PLAIN_CHAT_WRAPPER, answer_message, option_labels
from .questions import Instantiator, Question
from .llm_signature import LLMSignature


@dataclass
class ExtractionStats:
    num_prompts: int = 0
    num_computed: int = 0  # prompts run through the model in this call (not from the cache)
    num_batches_computed: int = 0
    seconds: float = 0.0
    computed_keys: list[str] = field(default_factory=list)


class PromptBuilder:
    """The answer prompts, rendered and tokenized: needs a tokenizer, not a model."""

    def __init__(self, tokenizer, *, template: str = AUTHORS_ANSWER_TEMPLATE, label_kind: str = "number",
                 use_chat_template: bool | None = None, instantiator: Instantiator | None = None,
                 name: str | None = None):
        self.tokenizer, self.template, self.label_kind = tokenizer, template, label_kind
        has_template = getattr(tokenizer, "chat_template", None) is not None
        self.use_chat_template = has_template if use_chat_template is None else use_chat_template
        if self.use_chat_template and not has_template:
            raise LavidError(f"tokenizer {name or type(tokenizer).__name__!r} has no chat template; use the plain "
                             f"template for base models")
        self.instantiator = instantiator or Instantiator()

    def render(self, message: str) -> str:
        if self.use_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
        return PLAIN_CHAT_WRAPPER.format(content=message)

    def encode(self, text: str) -> list[int]:
        # A chat template already writes its own BOS; a plain prompt gets the tokenizer's specials.
        return self.tokenizer.encode(text, add_special_tokens=not self.use_chat_template)

    def messages(self, questions: Sequence[Question], class_names: Sequence[str]) -> list[str]:
        """The user messages, class-major: index = class * Q + question."""
        return [answer_message(self.instantiator(q.text, name), q.options, template=self.template,
                               label_kind=self.label_kind) for name in class_names for q in questions]

    def build_prompts(self, questions: Sequence[Question], class_names: Sequence[str]) -> list[str]:
        """Rendered prompts, class-major: index = class * Q + question.

        The chat template is rendered once, around a stand-in message, and each message is put in its
        place: K*Q Jinja renderings become one. Checked against the full rendering of the first
        class's prompts; a template whose output depends on the message's content (one that trims or
        inspects it) falls back to rendering every prompt."""
        messages = self.messages(questions, class_names)
        stand_in = "\u27e6LAVID-MESSAGE\u27e7"
        frame = self.render(stand_in)
        if frame.count(stand_in) == 1:
            before, after = frame.split(stand_in)
            fast = [before + m + after for m in messages]
            if all(fast[i] == self.render(messages[i]) for i in range(min(len(questions), len(messages)))):
                return fast
        return [self.render(m) for m in messages]

    def encode_all(self, prompts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of every prompt, in one batched call to a fast tokenizer."""
        if not prompts:
            return []
        if getattr(self.tokenizer, "is_fast", False):
            return self.tokenizer(list(prompts), add_special_tokens=not self.use_chat_template)["input_ids"]
        return [self.encode(p) for p in prompts]


class AnswerExtractor:
    """Batched, resumable answer extraction with any transformers causal LM (backend ``llm``)."""

    def __init__(self, model, tokenizer, *, model_id: str | None = None, template: str = AUTHORS_ANSWER_TEMPLATE,
                 label_kind: str = "number", use_chat_template: bool | None = None,
                 instantiator: Instantiator | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.prompts = PromptBuilder(tokenizer, template=template, label_kind=label_kind,
                                     use_chat_template=use_chat_template, instantiator=instantiator,
                                     name=self.model_id)
        self.instantiator = self.prompts.instantiator
        params = inspect.signature(model.forward).parameters
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self._pass_positions = "position_ids" in params
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        cfg = json.dumps(model.config.to_dict(), sort_keys=True, default=str)
        self.fingerprint = sha256_text(self.model_id, str(next(model.parameters()).dtype), cfg)
        self.token_ids: list[int] = []

    @classmethod
    def from_options(cls, opts, instantiator):
        """The extractor and its call options from an :class:`~.answerers.AnswerOptions`."""
        model, tok = load_causal_lm(opts.model, device=opts.device, device_map=opts.device_map,
                                    trust_remote_code=opts.trust_remote_code, progress=opts.progress)
        ex = cls(model, tok, model_id=opts.model, template=opts.template or AUTHORS_ANSWER_TEMPLATE,
                 label_kind=opts.labels, use_chat_template=False if opts.plain else None, instantiator=instantiator)
        return ex, {"batch_size": opts.batch_size, "cache_dir": opts.shard_cache, "progress": opts.progress}

    # prompt building lives in PromptBuilder; these keep the extractor's own API
    def build_prompts(self, questions: Sequence[Question], class_names: Sequence[str]) -> list[str]:
        return self.prompts.build_prompts(questions, class_names)

    def encode(self, text: str) -> list[int]:
        return self.prompts.encode(text)

    # ------------------------------------------------------------------ model
    @torch.inference_mode()
    def last_logits(self, batch_ids: list[list[int]], token_ids: list[int]) -> torch.Tensor:
        """Next-token logits at the last position for ``token_ids`` only; rows left-padded."""
        device = next(self.model.parameters()).device
        width = max(len(x) for x in batch_ids)
        ids = torch.full((len(batch_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for i, x in enumerate(batch_ids):
            ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x):] = 1
        ids, mask = ids.to(device), mask.to(device)
        kwargs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
        if self._pass_positions:
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        if self._keep_kw:
            kwargs[self._keep_kw] = 1
        logits = self.model(**kwargs).logits[:, -1, :]
        return logits[:, token_ids].float().cpu()

    # ------------------------------------------------------------------ answerer interface
    def option_logits(self, questions: Sequence[Question], class_names: Sequence[str], *, batch_size: int = 16,
                      cache_dir: str | Path | None = None, progress: bool = True,
                      on_batch_end: Callable[[int, int], None] | None = None,
                      stats: ExtractionStats | None = None) -> torch.Tensor:
        """``[K, sum M]`` option-label logits; batches fixed up front, resumable from ``cache_dir``."""
        answers = self.answer_prompts(questions, class_names, batch_size=batch_size, cache_dir=cache_dir,
                                      progress=progress, on_batch_end=on_batch_end, stats=stats)
        return rows_from_answers(answers, questions, len(class_names))

    def answer_prompts(self, questions: Sequence[Question], class_names: Sequence[str], *, batch_size: int = 16,
                       cache_dir: str | Path | None = None, progress: bool = True,
                       on_batch_end: Callable[[int, int], None] | None = None, stats: ExtractionStats | None = None,
                       shard: tuple[int, int] | None = None) -> dict[int, torch.Tensor]:
        """Prompt index (class * Q + question) -> its label logits. The prompts are sorted by length and
        cut into batches once; ``shard=(i, n)`` answers batches ``i, i + n, ...`` only, so n processes
        together compute every batch exactly as one process would (:mod:`.shards` joins them)."""
        if batch_size < 1:
            raise LavidError(f"batch size must be >= 1, got {batch_size}")
        max_m = max(q.num_options for q in questions)
        token_ids = self.token_ids = resolve_label_token_ids(self.tokenizer, option_labels(max_m, self.prompts.label_kind))
        stats = stats if stats is not None else ExtractionStats()
        t0 = time.perf_counter()
        prompts = self.build_prompts(questions, class_names)
        keys = [sha256_text(self.fingerprint, p, json.dumps(token_ids)) for p in prompts]
        encoded = self.prompts.encode_all(prompts)
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if shard is not None:
            batches = batches[shard[0]::shard[1]]
        stats.num_prompts = sum(map(len, batches))

        cache = _ShardCache(cache_dir) if cache_dir else None
        known = cache.load() if cache else {}
        results: dict[int, torch.Tensor] = {}
        bar = _progress(stats.num_prompts, progress)
        for b, idx in enumerate(batches):
            bkeys = [keys[i] for i in idx]
            if all(k in known for k in bkeys):
                results.update((i, known[k]) for i, k in zip(idx, bkeys))
                bar.update(len(idx))
                continue
            logits = self.last_logits([encoded[i] for i in idx], token_ids)
            results.update(zip(idx, logits))
            if cache:
                cache.write(bkeys, logits)
            stats.num_computed += len(idx)
            stats.num_batches_computed += 1
            stats.computed_keys.extend(bkeys)
            bar.update(len(idx))
            if on_batch_end is not None:
                on_batch_end(b, len(batches))
        bar.close()
        stats.seconds = time.perf_counter() - t0
        return results

    def provenance(self) -> dict:
        return {
            "source": "llm-answers",
            "answer_backend": "causal-lm next-token logits over option labels",
            "answering_model": self.model_id,
            "model_fingerprint": self.fingerprint,
            "prompt_template": self.prompts.template,
            "chat_template": self.prompts.use_chat_template,
            "label_kind": self.prompts.label_kind,
            "label_token_ids": self.token_ids,
            "dtype": str(next(self.model.parameters()).dtype),
        }

    def extract(self, questions: Sequence[Question], class_names: Sequence[str], *, temperature: float = 1.0,
                question_source: str | None = None, **options) -> LLMSignature:
        """The signature (see :func:`~.answerers.build_signature`); ``options`` as :meth:`option_logits`."""
        return build_signature(self, questions, class_names, temperature=temperature,
                               question_source=question_source, **options)


def rows_from_answers(answers: dict[int, torch.Tensor], questions: Sequence[Question], num_classes: int) -> torch.Tensor:
    """``[K, sum M]``: each class's questions' first ``M_q`` label logits, in order."""
    counts, Q = [q.num_options for q in questions], len(questions)
    return torch.stack([torch.cat([answers[c * Q + q][: counts[q]] for q in range(Q)]) for c in range(num_classes)])


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="prompt", desc="answering", disable=not enabled, dynamic_ncols=True)


class _ShardCache:
    """One safetensors shard per computed batch; keys (content hashes) in the header metadata."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        out: dict[str, torch.Tensor] = {}
        for f in sorted(self.root.glob("shard-*.safetensors")):
            try:
                with safe_open(str(f), framework="pt") as h:
                    keys = json.loads(h.metadata()["keys"])
                    logits = h.get_tensor("logits")
            except Exception:  # a damaged shard is recomputed, never trusted
                continue
            for k, row in zip(keys, logits):
                out[k] = row
        return out

    def write(self, keys: list[str], logits: torch.Tensor) -> None:
        from safetensors.torch import save_file

        path = self.root / f"shard-{sha256_text(*keys)[:24]}.safetensors"
        with atomic_path(path) as tmp:
            save_file({"logits": logits.contiguous()}, str(tmp), metadata={"keys": json.dumps(keys)})


def load_causal_lm(model_id: str, *, device: str | None = None, device_map: str | None = None,
                   trust_remote_code: bool = False, progress: bool = True):
    """Model and tokenizer of a causal LM (see :func:`load_pretrained`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return load_pretrained(AutoModelForCausalLM, AutoTokenizer, model_id, device=device, device_map=device_map,
                           trust_remote_code=trust_remote_code, progress=progress)
