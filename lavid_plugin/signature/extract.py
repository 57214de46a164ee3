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
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import LavidError
from ..utils import atomic_path, sha256_text
from .prompts import AUTHORS_ANSWER_TEMPLATE, PLAIN_CHAT_WRAPPER, answer_message, option_labels
from .questions import Instantiator, Question
from .signature import LLMSignature, check_unique_class_names


@dataclass
class ExtractionStats:
    num_prompts: int = 0
    num_computed: int = 0  # prompts run through the model in this call (not from the cache)
    num_batches_computed: int = 0
    seconds: float = 0.0
    computed_keys: list[str] = field(default_factory=list)


def library_versions() -> dict:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def resolve_label_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """Each option label must be exactly one token of this tokenizer; otherwise one clear error."""
    ids = []
    unk = getattr(tokenizer, "unk_token_id", None)
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    for lab in labels:
        enc = tokenizer.encode(lab, add_special_tokens=False)
        if len(enc) == 1 and enc[0] != unk:
            ids.append(enc[0])
            continue
        tid = tokenizer.convert_tokens_to_ids(lab)
        if isinstance(tid, int) and tid != unk and tid is not None:
            ids.append(tid)
            continue
        pieces = tokenizer.convert_ids_to_tokens(enc)
        raise LavidError(
            f"option label {lab!r} is not a single token in tokenizer {name!r} (it encodes to {pieces}); "
            f"use fewer options or --labels letter"
        )
    if len(set(ids)) != len(ids):
        raise LavidError(f"option labels {list(labels)} map to repeated token ids {ids} in tokenizer {name!r}")
    return ids


class AnswerExtractor:
    """Batched, resumable answer extraction with any transformers causal LM."""

    def __init__(self, model, tokenizer, *, model_id: str | None = None, template: str = AUTHORS_ANSWER_TEMPLATE,
                 label_kind: str = "number", use_chat_template: bool | None = None,
                 instantiator: Instantiator | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.template = template
        self.label_kind = label_kind
        has_template = getattr(tokenizer, "chat_template", None) is not None
        self.use_chat_template = has_template if use_chat_template is None else use_chat_template
        if self.use_chat_template and not has_template:
            raise LavidError(f"tokenizer {self.model_id!r} has no chat template; use the plain template for base models")
        self.instantiator = instantiator or Instantiator()
        params = inspect.signature(model.forward).parameters
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self._pass_positions = "position_ids" in params
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        cfg = json.dumps(model.config.to_dict(), sort_keys=True, default=str)
        self.fingerprint = sha256_text(self.model_id, str(next(model.parameters()).dtype), cfg)

    # ------------------------------------------------------------------ prompts
    def render(self, message: str) -> str:
        if self.use_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
        return PLAIN_CHAT_WRAPPER.format(content=message)

    def encode(self, text: str) -> list[int]:
        # A chat template already writes its own BOS; a plain prompt gets the tokenizer's specials.
        return self.tokenizer.encode(text, add_special_tokens=not self.use_chat_template)

    def build_prompts(self, questions: Sequence[Question], class_names: Sequence[str]) -> list[str]:
        """Rendered prompts, class-major: index = class * Q + question."""
        out = []
        for name in class_names:
            for q in questions:
                msg = answer_message(self.instantiator(q.text, name), q.options, template=self.template,
                                     label_kind=self.label_kind)
                out.append(self.render(msg))
        return out

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

    # ------------------------------------------------------------------ main
    def extract(self, questions: Sequence[Question], class_names: Sequence[str], *, batch_size: int = 16,
                temperature: float = 1.0, cache_dir: str | Path | None = None, progress: bool = True,
                on_batch_end: Callable[[int, int], None] | None = None, question_source: str | None = None,
                stats: ExtractionStats | None = None) -> LLMSignature:
        if temperature <= 0:
            raise LavidError(f"temperature must be > 0, got {temperature}")
        if batch_size < 1:
            raise LavidError(f"batch size must be >= 1, got {batch_size}")
        check_unique_class_names(list(class_names), "class list")
        questions = list(questions)
        if not questions:
            raise LavidError("no questions to answer")
        max_m = max(q.num_options for q in questions)
        token_ids = resolve_label_token_ids(self.tokenizer, option_labels(max_m, self.label_kind))
        stats = stats if stats is not None else ExtractionStats()
        t0 = time.perf_counter()

        prompts = self.build_prompts(questions, class_names)
        Q = len(questions)
        keys = [sha256_text(self.fingerprint, p, json.dumps(token_ids)) for p in prompts]
        encoded = [self.encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        stats.num_prompts = len(prompts)

        cache = _ShardCache(cache_dir) if cache_dir else None
        known = cache.load() if cache else {}
        results: dict[str, torch.Tensor] = {}
        bar = _progress(len(prompts), progress)
        for b, idx in enumerate(batches):
            bkeys = [keys[i] for i in idx]
            if all(k in known for k in bkeys):
                for k in bkeys:
                    results[k] = known[k]
                bar.update(len(idx))
                continue
            logits = self.last_logits([encoded[i] for i in idx], token_ids)
            for k, row in zip(bkeys, logits):
                results[k] = row
            if cache:
                cache.write(bkeys, logits)
            stats.num_computed += len(idx)
            stats.num_batches_computed += 1
            stats.computed_keys.extend(bkeys)
            bar.update(len(idx))
            if on_batch_end is not None:
                on_batch_end(b, len(batches))
        bar.close()

        counts = [q.num_options for q in questions]
        rows_logits = []
        for c in range(len(class_names)):
            rows_logits.append(torch.cat([results[keys[c * Q + q]][: counts[q]] for q in range(Q)]))
        logits = torch.stack(rows_logits)
        stats.seconds = time.perf_counter() - t0
        prov = {
            "source": "llm-answers",
            "answer_backend": "causal-lm next-token logits over option labels",
            "answering_model": self.model_id,
            "model_fingerprint": self.fingerprint,
            "question_source": question_source,
            "prompt_template": self.template,
            "chat_template": self.use_chat_template,
            "label_kind": self.label_kind,
            "label_token_ids": token_ids,
            "placeholders": self.instantiator.table,
            "temperature": temperature,
            "dtype": str(next(self.model.parameters()).dtype),
            "library_versions": library_versions(),
        }
        return LLMSignature.from_option_logits(class_names, logits, questions, temperature=temperature,
                                               provenance=prov)


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


def naive_answer_logits(model, tokenizer, prompts: Sequence[str], token_ids: Sequence[int], *,
                        add_special_tokens: bool = False) -> torch.Tensor:
    """The plain computation, for tests and benchmarks: one prompt at a time, full logits."""
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([tokenizer.encode(p, add_special_tokens=add_special_tokens)], device=device)
            full = model(input_ids=ids).logits  # [1, L, V]
            rows.append(full[0, -1, list(token_ids)].float().cpu())
    return torch.stack(rows)


def load_causal_lm(model_id: str, *, device: str | None = None, device_map: str | None = None,
                   trust_remote_code: bool = False):
    """Model and tokenizer: fp32 on CPU, bf16 on CUDA; ``device_map="auto"`` for models larger than a GPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") or device_map else torch.float32
    try:
        tok = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code)
        kw = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        if device_map:
            kw["device_map"] = device_map
        model = AutoModelForCausalLM.from_pretrained(model_id, **kw)
    except OSError as e:
        raise LavidError(f"cannot load model {model_id!r}: {e}") from None
    if not device_map:
        model = model.to(device)
    return model, tok
