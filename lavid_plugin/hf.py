"""Hugging Face plumbing shared by Stage 1 (signatures), Stage 1b (image teachers) and the students:
loading a model with its tokenizer or processor, checking a model folder before it loads, label
token ids, library versions for provenance, and the tiny offline tokenizer the examples and tests use.
"""

from __future__ import annotations

import platform
import re
from typing import Iterable, Sequence

import torch

from .errors import LavidError


def load_pretrained(model_cls, preprocessor_cls, model_id: str, *, device: str | None = None,
                    device_map: str | None = None, trust_remote_code: bool = False, what: str = "model",
                    why: str = "not a usable local folder, and not a model the hub cache holds", progress: bool = True):
    """``(model, tokenizer or processor)`` through transformers' ``Auto*`` classes: fp32 on CPU, bf16 on
    CUDA or with a ``device_map`` (``"auto"`` for models larger than a GPU). A model that does not
    load is one error naming it, ``what`` it should be and ``why`` it may have failed."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") or device_map else torch.float32
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    if not progress:  # --no-progress silences transformers' own loading bar too
        hf_logging.disable_progress_bar()
    try:
        pre = preprocessor_cls.from_pretrained(model_id, trust_remote_code=trust_remote_code)
        kw = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        if device_map:
            kw["device_map"] = device_map
        model = model_cls.from_pretrained(model_id, **kw)
    except (OSError, ValueError) as e:  # ValueError: huggingface_hub's repo-id validation
        raise LavidError(f"cannot load {what} {model_id!r}: {why} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0]})") from None
    finally:
        if bar_was_on and not progress:
            hf_logging.enable_progress_bar()
    if not device_map:
        model = model.to(device)
    return model, pre


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


def answer_token_ids(tokenizer, labels: Sequence[str], how: str = "token") -> list[int]:
    """Token ids of answer words such as Yes/No. ``token`` (the authors' way): the vocabulary entry
    spelled exactly as the word, ``convert_tokens_to_ids("Yes")`` (on a Llama tokenizer not the
    word-start ``▁Yes`` that ``encode`` gives); ``encode``: the single token the text encodes to."""
    if how == "encode":
        return resolve_label_token_ids(tokenizer, labels, what="answer label",
                                       hint="pass other single-token labels with --labels")
    if how != "token":
        raise LavidError(f"--label-ids must be token or encode, got {how!r}")
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = []
    for lab in labels:
        tid = tokenizer.convert_tokens_to_ids(lab)
        if not isinstance(tid, int) or tid is None or tid == unk:
            raise LavidError(f"answer label {lab!r} is not a single token of tokenizer {name!r} (no vocabulary entry "
                             f"spelled {lab!r}); use --label-ids encode (the token the text encodes to) or other "
                             f"--labels")
        ids.append(tid)
    if len(set(ids)) != len(ids):
        raise LavidError(f"answer labels {list(labels)} map to repeated token ids {ids} in tokenizer {name!r}")
    return ids


def resolve_label_token_ids(tokenizer, labels: Sequence[str], *, what: str = "option label",
                            hint: str = "use fewer options or --labels letter") -> list[int]:
    """Each label must be exactly one token of this tokenizer; otherwise one clear error."""
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
            f"{what} {lab!r} is not a single token in tokenizer {name!r} (it encodes to {pieces}); {hint}"
        )
    if len(set(ids)) != len(ids):
        raise LavidError(f"{what}s {list(labels)} map to repeated token ids {ids} in tokenizer {name!r}")
    return ids


#: files whose content makes a model what it is: weights, configs, tokenizer and processor files
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".jinja", ".tiktoken")


def model_folder(model_id: str):
    """The local folder ``model_id`` loads from: the path itself, or its snapshot in the hub cache; None
    when neither is on this machine."""
    from pathlib import Path

    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a repo id, not cached, no hub library: no folder to read
        return None


def model_fingerprint(model_id: str) -> str | None:
    """sha256 over the model folder's weight, config, tokenizer and processor files (names and contents):
    two extractions with the same fingerprint ran the same model, whatever path it was loaded from."""
    import hashlib

    folder = model_folder(model_id)
    if folder is None:
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def library_versions() -> dict:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


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
