#!/usr/bin/env python
"""Prompts/s of the batched extractor vs the naive loop (one prompt at a time, full logits).

Same model (random weights, 32k vocabulary), same prompts, one run, side by side:

    python scripts/bench_extract.py [--prompts 520] [--vocab 32000] [--batch-size 16]
"""

import argparse
import json
import time
from pathlib import Path

import torch

from lavid_plugin.signature.llm_backend import AnswerExtractor, resolve_label_token_ids
from reference_answers import naive_answer_logits  # scripts/ is on sys.path when a script runs
from lavid_plugin.signature.prompts import option_labels
from lavid_plugin.signature.questions import read_questions
from lavid_plugin.signature.tiny_lm import build_tiny_causal_lm, build_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "lavid_plugin" / "assets" / "examples"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=520)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    qs, _ = read_questions(ASSETS / "birds_questions.txt")
    base = json.loads((ASSETS / "birds_classes.json").read_text())
    n_classes = -(-args.prompts // len(qs))
    names = [f"{base[i % len(base)]} {i}" for i in range(n_classes)]
    corpus = [q.text + " " + " ".join(q.options) for q in qs] + base + ["Answer only with the option number."]
    tok = build_tokenizer(corpus, args.vocab)
    model = build_tiny_causal_lm(len(tok), hidden=args.hidden, layers=args.layers).to(args.device)
    if args.device.startswith("cuda"):
        model = model.to(torch.bfloat16)
    ex = AnswerExtractor(model, tok, model_id="bench")
    prompts = ex.build_prompts(qs, names)
    n = len(prompts)
    tids = resolve_label_token_ids(tok, option_labels(max(q.num_options for q in qs)))

    naive_answer_logits(model, tok, prompts[:4], tids)  # warm-up
    t = time.perf_counter()
    naive_answer_logits(model, tok, prompts, tids)
    naive = time.perf_counter() - t
    t = time.perf_counter()
    ex.extract(qs, names, batch_size=args.batch_size, progress=False)
    fast = time.perf_counter() - t

    print(f"device={args.device} vocab={len(tok)} hidden={args.hidden} layers={args.layers} prompts={n} "
          f"threads={torch.get_num_threads()}")
    print(f"{'method':<44}{'seconds':>10}{'prompts/s':>12}")
    print(f"{'naive (1 prompt, full logits)':<44}{naive:>10.2f}{n / naive:>12.1f}")
    print(f"{'extractor (batch %d, sorted, last logits)' % args.batch_size:<44}{fast:>10.2f}{n / fast:>12.1f}")
    print(f"speed-up: {naive / fast:.2f}x")


if __name__ == "__main__":
    main()
