"""A multimodal LLM as a per-image teacher: hidden states and Yes/No answers, batched over images.

Any Hugging Face ``AutoModelForImageTextToText`` with its ``AutoProcessor`` (LLaVA-1.5, the native
InternVL classes, ...). The authors ran LLaVA one image at a time; here a batch of images and
prompts goes through one forward pass with left padding and position ids counted from the first
real token, so each image's outputs equal its one-image run up to floating-point error.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch

from ..errors import LavidError

#: Appendix B's prompt (the authors' ``vlm_feature.py``): ``{class}`` is the image's class name,
#: taken from its label; ``{image}`` becomes the processor's image token
PAPER_FEATURE_TEMPLATE = "USER: {image}\nIs there a {class} in this image?\nASSISTANT:"
#: MaKD's prompt for one aspect question about an image (the authors' ``llava_logits.py``)
PAPER_ASPECT_TEMPLATE = "USER: {image}\n{question}\nASSISTANT:"
#: Table B's layers (Table 1 uses -12)
PAPER_LAYERS = (-1, -6, -12, -18, -24, -30)
#: with ``--chat``, the user message's text (the image goes first, as the processor's chat template places it)
CHAT_FEATURE_TEMPLATE = "Is there a {class} in this image?"
CHAT_ASPECT_TEMPLATE = "{question}"
PAPER_FEATURE_MODEL = "llava-hf/llava-1.5-7b-hf"
PAPER_ASPECT_MODEL = "OpenGVLab/InternVL2-8B"
#: InternVL2-8B ships as remote code only; transformers' native InternVL classes load the "-hf" conversions
NATIVE_ASPECT_MODEL = "OpenGVLab/InternVL3-8B-hf"


def load_vlm(model_id: str, *, device: str | None = None, device_map: str | None = None,
             trust_remote_code: bool = False, progress: bool = True):
    """Model (in eval mode) and processor: fp32 on CPU, bf16 on CUDA (or with a ``device_map``)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..hf import load_pretrained

    model, processor = load_pretrained(
        AutoModelForImageTextToText, AutoProcessor, model_id, device=device, device_map=device_map,
        trust_remote_code=trust_remote_code, what="vision-language model",
        why="not a usable local folder or cached hub model, or not an image-text-to-text model", progress=progress)
    return model.eval(), processor


class VLMTeacher:
    """Runs prompts about images through a vision-language model, many images per forward pass."""

    def __init__(self, model, processor, *, model_id: str = "", chat: bool = False):
        self.model, self.processor, self.model_id = model, processor, model_id or getattr(
            model.config, "_name_or_path", type(model).__name__)
        self.chat = chat
        if chat and not getattr(processor, "chat_template", None):
            raise LavidError(f"--chat: the processor of {self.model_id!r} has no chat template; give the whole prompt "
                             f"with --template (with an {{image}} placeholder) instead")
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"  # the last position is every prompt's last token
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token = getattr(processor, "image_token", None) or "<image>"

    @property
    def num_layers(self) -> int:
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return int(cfg.num_hidden_layers)

    def check_layers(self, layers: Sequence[int]) -> list[int]:
        """Hidden-state indices as the authors give them: ``-1`` is the last layer's output, ``0``
        the embeddings; anything outside ``[-(L+1), L]`` is an error naming the model's depth."""
        n = self.num_layers
        bad = [int(x) for x in layers if not -(n + 1) <= int(x) <= n]
        if bad:
            raise LavidError(f"layer(s) {bad} out of range for {self.model_id!r}, which has {n} layers: "
                             f"use -{n + 1}..{n} (-1 = the last layer's output, 0 = the embeddings)")
        if not layers:
            raise LavidError("no layers given")
        return [int(x) for x in layers]

    def render(self, template: str, **fields) -> str:
        """The prompt: ``template`` with its fields filled; ``{image}`` is the image token. With ``chat``,
        ``template`` is the user message's text and the processor's chat template wraps it, image first."""
        if "{image}" not in template and not self.chat:
            raise LavidError(f"prompt template {template!r} has no {{image}} placeholder")
        try:
            text = template.format(image=self.image_token if not self.chat else "", **fields)
        except (KeyError, IndexError, ValueError) as e:
            raise LavidError(f"prompt template {template!r}: bad placeholder {e}; available: "
                             f"{['{image}'] + sorted('{' + k + '}' for k in fields)}") from None
        if not self.chat:
            return text
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text.strip()}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt_length(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _inputs(self, images, prompts):
        enc = self.processor(text=list(prompts), images=list(images), padding=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        out = {}
        for k, v in enc.items():
            v = v.to(device, non_blocking=True)
            out[k] = v.to(dtype) if v.is_floating_point() else v
        mask = out["attention_mask"]
        out["position_ids"] = (mask.long().cumsum(1) - 1).clamp_min(0)
        return out

    @torch.inference_mode()
    def hidden_states(self, images, prompts, layers: Sequence[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per layer ``(last, mean)``: the last token's hidden state and the mean over the prompt's
        tokens (image tokens included, padding excluded), float32 on the CPU, ``[B, D]`` each."""
        inputs = self._inputs(images, prompts)
        out = self.model(**inputs, output_hidden_states=True, logits_to_keep=1)
        hs = out.hidden_states
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        res = {}
        for layer in layers:
            h = hs[layer].float()
            res[layer] = (h[:, -1].cpu(), ((h * mask).sum(1) / mask.sum(1)).cpu())
        return res

    @torch.inference_mode()
    def yes_probability(self, images, prompts, token_ids: Sequence[int]) -> torch.Tensor:
        """``[B]``: softmax over the next-token logits of ``token_ids`` (Yes, No), the first's mass."""
        out = self.model(**self._inputs(images, prompts), logits_to_keep=1)
        logits = out.logits[:, -1, list(token_ids)].float()
        return logits.softmax(-1)[:, 0].cpu()

    # ------------------------------------------------------------------ one image, many questions
    def split_at_image(self, prompts: Sequence[str]) -> tuple[str, list[str]] | None:
        """``(prefix, suffixes)`` when every prompt is one shared prefix ending with the image token plus
        its own text, and tokenizing the parts apart gives the same tokens as the whole (checked);
        else None."""
        cut = [p.rfind(self.image_token) for p in prompts]
        if min(cut) < 0 or len(set(p[:c] for p, c in zip(prompts, cut))) != 1:
            return None
        end = cut[0] + len(self.image_token)
        prefix, suffixes = prompts[0][:end], [p[end:] for p in prompts]
        tok = self.tokenizer
        head = tok(prefix)["input_ids"]
        for p, sfx in zip(prompts, suffixes):  # once per question list, not per image
            if tok(p)["input_ids"] != head + tok(sfx, add_special_tokens=False)["input_ids"]:
                return None
        return prefix, suffixes

    @torch.inference_mode()
    def yes_probability_shared(self, image, prefix: str, suffixes: Sequence[str], token_ids: Sequence[int],
                               batch_size: int = 16) -> torch.Tensor:
        """``[A]``: as :meth:`yes_probability` for the prompts ``prefix + suffix``, but the image and the
        prefix go through the model once; each batch of suffixes continues from their cached keys and
        values (right-padded, each answer read at its own last token)."""
        import copy

        pre = self._inputs([image], [prefix])
        out = self.model(**pre, use_cache=True, logits_to_keep=1)
        cache, n_pre = getattr(out, "cache", None) or out.past_key_values, pre["input_ids"].shape[1]
        # transformers 5.x renames the argument past_key_values to cache
        cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        device = pre["input_ids"].device
        res = []
        for i in range(0, len(suffixes), batch_size):
            part = list(suffixes[i:i + batch_size])
            ids = [self.tokenizer(x, add_special_tokens=False)["input_ids"] for x in part]
            width = max(map(len, ids))
            pad = self.tokenizer.pad_token_id
            batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
            mask = torch.cat([pre["attention_mask"].expand(len(part), -1), mask], 1)
            kv = copy.deepcopy(cache)
            kv.batch_repeat_interleave(len(part))
            pos = torch.arange(n_pre, n_pre + width, device=device).expand(len(part), -1)
            logits = self.model(input_ids=batch, attention_mask=mask, position_ids=pos, **{cache_arg: kv}).logits
            last = torch.tensor([len(x) - 1 for x in ids], device=device)
            pick = logits[torch.arange(len(part), device=device), last][:, list(token_ids)].float()
            res.append(pick.softmax(-1)[:, 0].cpu())
        return torch.cat(res)

    def provenance(self) -> dict:
        from ..hf import library_versions

        from ..hf import model_fingerprint

        if not hasattr(self, "_fingerprint"):  # hashing the weight files once per teacher
            self._fingerprint = model_fingerprint(self.model_id)
        return {"model": self.model_id, "model_fingerprint": self._fingerprint, "model_class": type(self.model).__name__,
                "chat_template": self.chat, "num_layers": self.num_layers,
                "compute_dtype": str(next(self.model.parameters()).dtype),
                "library_versions": library_versions()}
