#!/usr/bin/env python
"""How well the offline (sentence-embedding) teacher answers, for each scoring, side by side:

- on the demo's shipped questions, against the drawn attributes (class x question pairs whose most
  probable option is the drawn one);
- on the authors' released CUB questions, against their Qwen2.5-7B signature (the same count against
  Qwen's most probable option), when that reference is at hand;
- the statement scoring's scale calibrated on the shipped demo questions alone (mean top-option
  probability = that of the Qwen CUB signature), as ``lavid_plugin.signature.embedding.SCALE`` uses.

    python scripts/embedding_agreement.py [--reference ../shared/reference]
"""

import argparse
import json
from pathlib import Path

import torch

from lavid_plugin.signature.released import import_reference_json
from lavid_plugin.data.demo_birds import DEMO_QUESTIONS, demo_attributes
from lavid_plugin.signature.embedding import SCORINGS, EmbeddingAnswerer
from lavid_plugin.signature.inspection import attribute_agreement
from lavid_plugin.signature.questions import read_questions
from lavid_plugin.signature.llm_signature import LLMSignature


def mean_top(probs: torch.Tensor, questions) -> float:
    sig = LLMSignature([str(i) for i in range(len(probs))], probs, [0] + list(
        torch.tensor([q.num_options for q in questions]).cumsum(0).tolist()))
    return float(torch.stack([sig.probs[:, sig.question_slice(q)].max(1).values
                              for q in range(sig.num_questions)]).mean())


def calibrate(answerer, questions, names, target: float) -> float:
    scores = answerer.statement_scores(questions, names)
    lo, hi = 0.01, 50.0
    for _ in range(50):
        mid = (lo + hi) / 2
        probs = LLMSignature.from_option_logits(names, mid * scores, questions).probs
        lo, hi = (mid, hi) if mean_top(probs, questions) < target else (lo, mid)
    return lo


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared" / "reference"))
    ap.add_argument("--model", default="minilm")
    args = ap.parse_args()
    demo_q, _ = read_questions(DEMO_QUESTIONS)
    attrs = demo_attributes()
    ref = Path(args.reference)
    cub = None
    if (ref / "signatures" / "cub200" / "qwen2.5-7b_chat_50-5.json").is_file():
        q, _ = read_questions(ref / "questions" / "cub200" / "chat_50-5.txt")
        names = json.loads((ref / "classes" / "cub200_classes.json").read_text())
        qwen = import_reference_json(ref / "signatures" / "cub200" / "qwen2.5-7b_chat_50-5.json",
                                                  questions=q, class_names=names)
        cub = (q, names, qwen, {n: [int(qwen.probs[k, qwen.question_slice(j)].argmax()) + 1
                                    for j in range(qwen.num_questions)] for k, n in enumerate(names)})
    print(f"{'scoring':<12}{'demo vs drawn attributes':>28}{'CUB vs Qwen2.5-7B argmax':>28}")
    for scoring in SCORINGS:
        ans = EmbeddingAnswerer(args.model, scoring=scoring)
        d = attribute_agreement(ans.extract(demo_q, list(attrs)), attrs)
        c = attribute_agreement(ans.extract(cub[0], cub[1]), cub[3]) if cub else None
        print(f"{scoring:<12}{f'{d[0]}/{d[1]}':>28}{(f'{c[0]}/{c[1]}' if c else 'reference absent'):>28}")
    if cub:
        target = mean_top(cub[2].targets, cub[0])
        scale = calibrate(EmbeddingAnswerer(args.model), demo_q, list(attrs), target)
        print(f"Qwen CUB mean top-option probability {target:.3f}; statement scale giving it on the demo "
              f"questions: {scale:.2f}")


if __name__ == "__main__":
    main()
