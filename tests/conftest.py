import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
EXAMPLES = ROOT / "lavid_plugin" / "assets" / "examples"


def need_reference():
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is absent (only the project's developers and CI have it)")
    return REFERENCE


@pytest.fixture
def reference():
    return need_reference()


@pytest.fixture(scope="session")
def tiny_lm():
    """A random-weight Llama-style causal LM and a word-level tokenizer with a chat template."""
    from lavid_plugin.signature.questions import read_questions
    from lavid_plugin.signature.tiny_lm import build_tiny_causal_lm, build_tokenizer

    qs, _ = read_questions(EXAMPLES / "birds_questions.txt")
    names = json.loads((EXAMPLES / "birds_classes.json").read_text())
    corpus = [q.text + " " + " ".join(q.options) for q in qs] + names + [
        "Answer only with the option number letter. No additional commentary."]
    tok = build_tokenizer(corpus, vocab_size=1024)
    model = build_tiny_causal_lm(len(tok), seed=0)
    return model, tok, qs, names
