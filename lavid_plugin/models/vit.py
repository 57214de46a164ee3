"""Transformer students (Table 2): torchvision's ViT-B/16 from ImageNet weights, and CLIP ViT-B/16's image
tower with a classifier initialised from CLIP's text embeddings of the class names.

Both return mdistiller's ``(logits, feats)`` with ``feats["pooled_feat"]`` (ViT: the class token
after the final norm, 768; CLIP: the projected image embedding, 512, as the authors' LaViD head
reads ``encode_image``), so every distiller, LaViD included, works on them. Neither is ever
randomly initialised without being asked: a missing weight file is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LavidError

#: Wortsman et al.'s zero-shot prompt (the authors' code: "A photo of a {}", without the period)
CLIP_PROMPT = "a photo of a {class}."


class ViTStudent(nn.Module):
    """A torchvision ``VisionTransformer``; ``pooled_feat`` is the class token after the final norm."""

    def __init__(self, net, num_classes: int):
        super().__init__()
        self.net = net
        self.num_features = net.hidden_dim
        net.heads = nn.Linear(net.hidden_dim, num_classes)
        self.patch_grid = net.image_size // net.patch_size

    def forward(self, x):
        n = x.shape[0]
        x = self.net._process_input(x)
        x = torch.cat([self.net.class_token.expand(n, -1, -1), x], dim=1)
        tokens = self.net.encoder(x)
        pooled = tokens[:, 0]
        return self.net.heads(pooled), {"pooled_feat": pooled, "feats": [tokens], "preact_feats": [tokens]}

    def cam_layer(self):
        """Grad-CAM's layer: the last block's first norm (its tokens), reshaped to the patch grid."""
        return self.net.encoder.layers[-1].ln_1


def _hub_file(weights_enum) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name


def vit_b16(num_classes: int, *, weights=None, image_size: int = 224, **_):
    """ViT-B/16. ``weights``: a state-dict file of torchvision's ``vit_b_16`` (ImageNet, 1000 classes;
    its head is replaced), "" for torchvision's IMAGENET1K_V1 file in the torch hub cache, or False
    for no pretrained weights (only where a trained checkpoint is loaded next, e.g. evaluation)."""
    from torchvision.models import ViT_B_16_Weights, vit_b_16
    from torchvision.models.vision_transformer import interpolate_embeddings

    net = vit_b_16(weights=None, image_size=image_size)
    if weights is not False:
        path = Path(weights) if weights else _hub_file(ViT_B_16_Weights.IMAGENET1K_V1)
        if not path.is_file():
            raise LavidError(f"ViT-B/16 starts from ImageNet weights, and {path} does not exist: set "
                             f"DISTILLER.STUDENT_CKPT to torchvision's vit_b_16 weight file, or put "
                             f"{ViT_B_16_Weights.IMAGENET1K_V1.url} at {_hub_file(ViT_B_16_Weights.IMAGENET1K_V1)}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated zip, foreign pickle, ...
            raise LavidError(f"{path}: cannot read it as a weight file (damaged or cut short? "
                             f"{type(e).__name__})") from None
        state = state.get("model", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise LavidError(f"{path}: not a state dict of torchvision's vit_b_16")
        pos = state.get("encoder.pos_embedding")
        if getattr(pos, "ndim", 0) == 3 and pos.shape[1] != net.encoder.pos_embedding.shape[1]:
            state = interpolate_embeddings(image_size, 16, state)  # weights of another input size
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a tensor of another shape: another input size or model width
            raise LavidError(f"{path}: its tensors do not fit ViT-B/16 at {image_size} px "
                             f"({str(e).splitlines()[-1].strip()[:200]})") from None
        if [k for k in missing if not k.startswith("heads")] or unexpected:
            raise LavidError(f"{path}: not torchvision vit_b_16 weights (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]})")
    return ViTStudent(net, num_classes)


def vit_tiny(num_classes: int, *, image_size: int = 64, **_):
    """A 2-layer ViT with 32-px patches, from scratch: for tests and the demo data, not the paper."""
    from torchvision.models import VisionTransformer

    net = VisionTransformer(image_size=image_size, patch_size=32, num_layers=2, num_heads=2, hidden_dim=64,
                            mlp_dim=128)
    return ViTStudent(net, num_classes)


class CLIPStudent(nn.Module):
    """CLIP's image tower + projection; the classifier's rows are the normalised text embeddings of
    ``prompt`` for each class, scaled by CLIP's ``logit_scale.exp()``, applied to the normalised image
    embedding: on the first step its logits are CLIP's zero-shot image-text logits (Wortsman et al.).
    As in the authors' code the classifier stays frozen (``requires_grad`` False) and the image tower
    is fine-tuned; ``freeze_head=False`` trains it too."""

    def __init__(self, vision, projection, text_weights: torch.Tensor, logit_scale: float, image_size: int,
                 freeze_head: bool = True):
        super().__init__()
        self.vision, self.projection = vision, projection
        self.num_features = projection.out_features
        self.classifier = nn.Linear(self.num_features, text_weights.shape[0], bias=True)
        with torch.no_grad():
            self.classifier.weight.copy_(F.normalize(text_weights, dim=-1) * logit_scale)
            self.classifier.bias.zero_()
        self.classifier.requires_grad_(not freeze_head)
        self.image_size = image_size

    def forward(self, x):
        out = self.vision(pixel_values=x, interpolate_pos_encoding=x.shape[-1] != self.image_size)
        emb = self.projection(out.pooler_output)
        logits = self.classifier(F.normalize(emb, dim=-1))
        return logits, {"pooled_feat": emb, "feats": [out.last_hidden_state], "preact_feats": [out.last_hidden_state]}

    def cam_layer(self):
        return self.vision.encoder.layers[-1].layer_norm1


def load_clip(source: str):
    """``(CLIPModel, tokenizer)`` from a local folder (or a hub id already in the cache; nothing downloads)."""
    from transformers import AutoTokenizer, CLIPModel

    if not source:
        raise LavidError("the CLIP student needs DISTILLER.STUDENT_CKPT: a CLIP checkpoint folder "
                         "(e.g. a download of openai/clip-vit-base-patch16)")
    from transformers import AutoConfig

    local = Path(source).expanduser().is_dir()
    kw = {} if local else {"local_files_only": True}
    try:  # the architecture first: another model's folder would load as a randomly initialised CLIP
        kind = getattr(AutoConfig.from_pretrained(source, **kw), "model_type", None)
    except (OSError, ValueError) as e:
        raise LavidError(f"cannot load CLIP from {source!r} (DISTILLER.STUDENT_CKPT): not a model folder nor a "
                         f"cached hub model ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if kind != "clip":
        raise LavidError(f"DISTILLER.STUDENT_CKPT {source!r} holds a {kind!r} model, not CLIP (model_type 'clip')")
    try:
        model, info = CLIPModel.from_pretrained(source, output_loading_info=True, **kw)
        tokenizer = AutoTokenizer.from_pretrained(source, **kw)
    except Exception as e:  # noqa: BLE001 - a truncated or damaged weight file surfaces as many error types
        raise LavidError(f"cannot load CLIP from {source!r} (DISTILLER.STUDENT_CKPT): its files are damaged or "
                         f"incomplete ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
    missing = list(info.get("missing_keys") or []) + list(info.get("mismatched_keys") or [])
    if missing:
        raise LavidError(f"{source!r} (DISTILLER.STUDENT_CKPT) lacks {len(missing)} of CLIP's weights (first: "
                         f"{missing[0]}); training would start them from a random init")
    return model.eval(), tokenizer


@torch.no_grad()
def clip_text_weights(model, tokenizer, class_names: Sequence[str], prompt: str = CLIP_PROMPT) -> torch.Tensor:
    texts = [prompt.replace("{class}", name) for name in class_names]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    out = model.get_text_features(**enc)
    # transformers 5 returns an output object whose pooler_output is the projected text embedding
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def clip_b16(num_classes: int, *, weights=None, class_names: Sequence[str] | None = None, prompt: str = CLIP_PROMPT,
             **_):
    """CLIP ViT-B/16's image tower (``weights``: the CLIP checkpoint folder) with a text-initialised head."""
    model, tokenizer = load_clip(weights or "")
    if class_names is None or len(class_names) != num_classes:
        raise LavidError("the CLIP student initialises its classifier from the class names; none were given")
    text = clip_text_weights(model, tokenizer, class_names, prompt)
    size = int(model.config.vision_config.image_size)
    return CLIPStudent(model.vision_model, model.visual_projection, text, float(model.logit_scale.detach().exp()), size)
