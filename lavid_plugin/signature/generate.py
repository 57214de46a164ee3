"""Question generation with an LLM: a local Hugging Face chat model or an OpenAI-compatible endpoint.

The model is asked for Q questions of M options (:func:`prompts.generation_prompt`). Its answer is
parsed and validated; questions with the wrong option count, no placeholder, a class name in an
option or a duplicate are dropped. If fewer than Q remain, it is asked again for the rest (listing
the accepted ones so it does not repeat them), within ``max_rounds``.

API keys come from an environment variable only and are never logged or saved.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from ..errors import LavidError
from ..utils import atomic_write_json, atomic_write_text
from .prompts import generation_prompt
from .questions import Question, format_questions, parse_questions_text, validate_questions

ChatFn = Callable[[str], str]


class OpenAIChatBackend:
    """Chat completions at ``{base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp server, ...)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 1.0, max_tokens: int = 4096, timeout: float = 300.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout

    def describe(self) -> str:
        return f"openai-compatible:{self.model}@{self.url}"

    def __call__(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": self.temperature, "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise LavidError(f"{self.url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise LavidError(f"{self.url}: request failed ({getattr(e, 'reason', e)})") from None
        except json.JSONDecodeError:
            raise LavidError(f"{self.url}: the answer is not JSON") from None
        try:
            return data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LavidError(f"{self.url}: unexpected answer shape (no choices[0].message.content)") from None


class HFChatBackend:
    """A local transformers chat model through ``generate``."""

    def __init__(self, model_id: str, *, temperature: float = 1.0, max_new_tokens: int = 4096,
                 trust_remote_code: bool = False, model=None, tokenizer=None):
        from .llm_backend import load_causal_lm

        if model is None:
            model, tokenizer = load_causal_lm(model_id, trust_remote_code=trust_remote_code)
        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.temperature, self.max_new_tokens = temperature, max_new_tokens

    def describe(self) -> str:
        return f"hf:{self.model_id}"

    def __call__(self, prompt: str) -> str:
        import torch

        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        kw = {"max_new_tokens": self.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id or 0}
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=self.temperature)
        else:
            kw.update(do_sample=False)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kw)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def generate_questions(chat: ChatFn, class_names: Sequence[str], num_questions: int, num_options: int, *,
                       description: str | None = None, max_rounds: int = 4, log=print,
                       template: str = "paper") -> list[Question]:
    """Ask ``chat`` until ``num_questions`` valid, distinct questions are collected."""
    if num_questions < 1 or num_options < 2:
        raise LavidError(f"need at least 1 question and 2 options, got Q={num_questions}, M={num_options}")
    accepted: list[Question] = []
    for rnd in range(1, max_rounds + 1):
        missing = num_questions - len(accepted)
        prompt = generation_prompt(class_names, missing, num_options, description, existing=accepted,
                                   template=template)
        reply = chat(prompt)
        got, _ = parse_questions_text(reply, f"<reply {rnd}>")
        report = validate_questions(accepted + got, num_options=num_options, class_names=class_names,
                                    source=f"reply {rnd}")
        bad = report.bad_indices()
        new = [q for i, q in enumerate(got, start=len(accepted)) if i not in bad]
        accepted += new[:missing]
        log(f"round {rnd}: {len(got)} parsed, {len(new)} valid and new; {len(accepted)}/{num_questions} collected")
        if len(accepted) >= num_questions:
            return accepted
    raise LavidError(f"the model gave only {len(accepted)} valid questions of the {num_questions} asked for "
                     f"after {max_rounds} rounds; nothing was written")


def provenance_path(question_file: str | Path) -> Path:
    """Where a generated question file's provenance lies: ``<file>.provenance.json`` beside it."""
    return Path(str(question_file) + ".provenance.json")


def write_question_file(path: str | Path, questions: Sequence[Question], provenance: dict | None = None) -> None:
    """The questions, and (when given) their provenance beside them: generator, prompt template, Q, M."""
    if provenance is not None:
        atomic_write_json(provenance_path(path), provenance)
    atomic_write_text(path, format_questions(questions))


def read_question_provenance(path: str | Path) -> dict | None:
    """The provenance written beside a generated question file, or None (hand-written, released files)."""
    p = provenance_path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LavidError(f"{p}: cannot read as JSON ({e})") from None
    return data if isinstance(data, dict) else None
