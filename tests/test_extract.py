import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from conftest import EXAMPLES
from lavid_plugin.cli import main as lavid_main
from lavid_plugin.errors import LavidError
from helpers import load_script
from lavid_plugin.signature.llm_backend import AnswerExtractor, ExtractionStats, resolve_label_token_ids
from lavid_plugin.signature.prompts import option_labels
from lavid_plugin.signature.questions import Question
from lavid_plugin.signature.llm_signature import LLMSignature


def _mixed_length_questions(qs):
    long_q = Question("Considering every visible detail of plumage , posture , feet , eyes , bill , wings and "
                      "tail of the class seen in the field from far away in poor light , " * 3 + "what colour is it ?",
                      ("Red", "Blue", "Yellow", "Brown", "Black"))
    return [Question("Red the class ?", ("Red", "Blue")), long_q] + list(qs)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_equals_naive_reference(tiny_lm, batch_size):
    model, tok, qs, names = tiny_lm
    qs = _mixed_length_questions(qs)
    ex = AnswerExtractor(model, tok, model_id="tiny")
    sig = ex.extract(qs, names, batch_size=batch_size, progress=False)
    prompts = ex.build_prompts(qs, names)
    lengths = [len(ex.encode(p)) for p in prompts]
    assert max(lengths) > 3 * min(lengths)  # very different lengths really are batched together
    tids = resolve_label_token_ids(tok, option_labels(5))
    ref = load_script("reference_answers").naive_answer_logits(model, tok, prompts, tids)  # one prompt at a time, full logits
    Q = len(qs)
    for c in range(len(names)):
        for q, question in enumerate(qs):
            m = question.num_options
            s = sig.question_slice(q)
            ref_logits = ref[c * Q + q, :m]
            assert torch.allclose(sig.logits[c, s], ref_logits, atol=1e-5, rtol=0)
            assert torch.allclose(sig.probs[c, s], torch.softmax(ref_logits, -1), atol=1e-5, rtol=0)


def test_temperature_and_provenance(tiny_lm):
    model, tok, qs, names = tiny_lm
    ex = AnswerExtractor(model, tok, model_id="tiny")
    s1 = ex.extract(qs, names, progress=False)
    s2 = ex.extract(qs, names, progress=False, temperature=2.0)
    sl = s1.question_slice(0)
    assert torch.allclose(s2.targets[:, sl], torch.softmax(s1.logits[:, sl] / 2, -1), atol=1e-6)
    p = s2.provenance
    assert p["temperature"] == 2.0 and p["answering_model"] == "tiny" and "torch" in p["library_versions"]
    assert "{question}" in p["prompt_template"]


class _Stop(Exception):
    pass


def test_interrupted_extraction_resumes_and_matches(tiny_lm, tmp_path):
    model, tok, qs, names = tiny_lm
    ex = AnswerExtractor(model, tok, model_id="tiny")
    cache = tmp_path / "cache"

    def stop_after_two(b, n):
        if b == 1:
            raise _Stop

    first = ExtractionStats()
    with pytest.raises(_Stop):
        ex.extract(qs, names, batch_size=5, cache_dir=cache, progress=False, on_batch_end=stop_after_two, stats=first)
    assert first.num_computed == 10
    second = ExtractionStats()
    resumed = ex.extract(qs, names, batch_size=5, cache_dir=cache, progress=False, stats=second)
    total = len(qs) * len(names)
    assert second.num_computed == total - 10
    assert not set(first.computed_keys) & set(second.computed_keys)
    plain = ex.extract(qs, names, batch_size=5, progress=False)
    resumed.save(tmp_path / "a.safetensors")
    plain.save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    third = ExtractionStats()
    ex.extract(qs, names, batch_size=5, cache_dir=cache, progress=False, stats=third)
    assert third.num_computed == 0


def test_two_token_label_is_a_clear_error(tiny_lm):
    model, tok, qs, names = tiny_lm
    many = [Question("How many spots does the class have?", tuple(f"opt{i}" for i in range(12)))]
    ex = AnswerExtractor(model, tok, model_id="tiny")
    with pytest.raises(LavidError, match=r"option label '10' is not a single token in tokenizer"):
        ex.extract(many, names, progress=False)
    letters = AnswerExtractor(model, tok, model_id="tiny", label_kind="letter").extract(many, names, progress=False)
    assert letters.option_counts == [12]


def test_cli_extract_and_inspect_end_to_end(tmp_path, capsys):
    q, c = str(EXAMPLES / "birds_questions.txt"), str(EXAMPLES / "birds_classes.json")
    assert lavid_main(["signature", "make-tiny-lm", str(tmp_path / "lm"), "--questions", q, "--classes", c]) == 0
    out = tmp_path / "sig.safetensors"
    assert lavid_main(["signature", "extract", "--model", str(tmp_path / "lm"), "--questions", q, "--classes", c,
                       "-o", str(out), "--no-progress"]) == 0
    sig = LLMSignature.load(out)
    assert sig.num_classes == 6 and sig.num_questions == 6
    assert torch.allclose(sig.probs[:, sig.question_slice(0)].sum(1), torch.ones(6))
    assert lavid_main(["signature", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classes K=6" in text and "lowest-entropy questions" in text
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "classes.json"
    bad.write_text('["A", "B", "A"]')
    rc = lavid_main(["signature", "extract", "--model", "x", "--questions", str(EXAMPLES / "birds_questions.txt"),
                     "--classes", str(bad), "-o", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "class 'A' appears twice" in err and "Traceback" not in err
    assert not (tmp_path / "o.safetensors").exists()


class _ColourAnswerer:
    """A backend written against the answerer interface alone: logit 1 for an option the class name contains."""
    from lavid_plugin.signature.questions import Instantiator

    instantiator = Instantiator()

    @classmethod
    def from_options(cls, opts, instantiator):
        return cls(), {"bonus": 2.0}

    def option_logits(self, questions, class_names, bonus=0.0):
        return torch.tensor([[bonus * (o.lower() in n.lower()) for q in questions for o in q.options]
                             for n in class_names])

    def provenance(self):
        return {"source": "test", "answering_model": "colour words"}


def test_a_registered_backend_answers_through_the_cli(tmp_path, capsys, monkeypatch):
    from lavid_plugin.signature import answerers

    monkeypatch.setitem(answerers.ANSWERERS, "colours", _ColourAnswerer)
    qf, cf = tmp_path / "q.txt", tmp_path / "c.json"
    qf.write_text("What colour is the class?\n1. Red\n2. Blue\n3. Green\n")
    cf.write_text('["Red Wren", "Blue Jay"]')
    out = tmp_path / "s.safetensors"
    args = ["signature", "extract", "--model", "-", "--questions", str(qf), "--classes", str(cf), "-o", str(out)]
    assert lavid_main(args + ["--backend", "colours", "--temperature", "0.5"]) == 0
    sig = LLMSignature.load(out)
    e4 = torch.exp(torch.tensor(4.0))
    assert torch.allclose(sig.probs[0], torch.stack([e4, torch.tensor(1.0), torch.tensor(1.0)]) / (e4 + 2))
    prov = sig.provenance  # the backend's own provenance plus what the shared path records
    assert (prov["answering_model"], prov["temperature"], prov["question_source"]) == ("colour words", 0.5, str(qf))
    assert lavid_main(args + ["--backend", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown answer backend 'nope'; registered: ['colours', 'embedding', 'llm', 'vllm']" in err


def test_embedding_backend_with_tiny_encoder(tmp_path):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + "what colour is the red blue bird wren jay ?".split()
    tk = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    from lavid_plugin.signature.embedding import EmbeddingAnswerer

    ans = EmbeddingAnswerer(str(tmp_path / "enc"), scale=10.0, scoring="question")
    qs = [Question("what colour is the class ?", ("red", "blue"))]
    sig = ans.extract(qs, ["wren", "jay"])
    e = ans.embed(["what colour is the wren ?", "red", "blue"])
    expected = torch.softmax(10.0 * (e[1:] @ e[0]), -1)
    assert torch.allclose(sig.probs[0], expected, atol=1e-5)
    assert "not an LLM" in sig.provenance["answer_backend"]
    # statement scoring: cos(name, "question: option"), minus the option's mean over classes, standardised
    ans = EmbeddingAnswerer(str(tmp_path / "enc"), scale=3.0)
    sig = ans.extract(qs, ["wren", "jay"])
    n, st = ans.embed(["wren", "jay"]), ans.embed(["what colour is the class : red", "what colour is the class : blue"])
    sim = n @ st.T
    sim = sim - sim.mean(0, keepdim=True)
    assert torch.allclose(sig.probs, torch.softmax(3.0 * sim / sim.std(), -1), atol=1e-5)
    assert sig.provenance["scoring"] == "statement"


class _FakeChat(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((body, self.headers.get("Authorization")))
        text = type(self).replies.pop(0)
        data = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_question_generation_over_http_retries_for_the_rest(tmp_path, monkeypatch):
    _FakeChat.replies = [
        "Here you go:\n\nWhat colour is the class?\n1. Red\n2. Blue\n\nIs the class big?\n1. Yes\n2. Blue Jay\n",
        "What colour is the class?\n1. Red\n2. Blue\n\nDoes the class sing?\n1. Often\n2. Rarely\n",
    ]
    _FakeChat.seen = []
    srv = HTTPServer(("127.0.0.1", 0), _FakeChat)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    monkeypatch.setenv("MY_KEY", "sk-secret")
    classes = tmp_path / "c.json"
    classes.write_text(json.dumps(["Blue Jay", "Wren"]))
    out = tmp_path / "q.txt"
    try:
        rc = lavid_main(["signature", "questions", "--classes", str(classes), "-q", "2", "-m", "2", "--backend",
                         "openai", "--model", "m", "--base-url", f"http://127.0.0.1:{srv.server_port}/v1",
                         "--api-key-env", "MY_KEY", "-o", str(out)])
    finally:
        srv.shutdown()
    assert rc == 0
    from lavid_plugin.signature.questions import read_questions

    qs, _ = read_questions(out)
    assert [q.text for q in qs] == ["What colour is the class?", "Does the class sing?"]
    assert len(_FakeChat.seen) == 2 and _FakeChat.seen[0][1] == "Bearer sk-secret"
    second_prompt = _FakeChat.seen[1][0]["messages"][0]["content"]
    assert "1. Generate 1 questions for distinguishing" in second_prompt  # the paper's A.5 prompt, by default
    assert "- What colour is the class?" in second_prompt
    prov = json.loads((tmp_path / "q.txt.provenance.json").read_text())
    assert (prov["prompt_template"], prov["num_questions"], prov["num_options"]) == ("paper", 2, 2)
    assert "sk-secret" not in json.dumps(prov)


def test_question_generation_fails_naming_the_count(tmp_path):
    from lavid_plugin.signature.generate import generate_questions

    replies = iter(["What colour is the class?\n1. Red\n2. Blue\n"] * 3)
    with pytest.raises(LavidError, match="only 1 valid questions of the 3"):
        generate_questions(lambda p: next(replies), ["Wren"], 3, 2, max_rounds=3, log=lambda m: None)


def test_sharded_extraction_merges_to_the_unsharded_signature_exactly(tmp_path, capsys):
    q, c = str(EXAMPLES / "birds_questions.txt"), str(EXAMPLES / "birds_classes.json")
    assert lavid_main(["signature", "make-tiny-lm", str(tmp_path / "lm"), "--questions", q, "--classes", c]) == 0
    base = ["signature", "extract", "--model", str(tmp_path / "lm"), "--questions", q, "--classes", c, "--no-progress",
            "--batch-size", "4"]
    assert lavid_main(base + ["-o", str(tmp_path / "whole.safetensors")]) == 0
    for i in range(3):
        assert lavid_main(base + ["-o", str(tmp_path / f"s{i}.safetensors"), "--shard", f"{i}/3"]) == 0
    shards = [str(tmp_path / f"s{i}.safetensors") for i in range(3)]
    assert lavid_main(["signature", "merge", *shards[::-1], "-o", str(tmp_path / "merged.safetensors")]) == 0
    whole, merged = LLMSignature.load(tmp_path / "whole.safetensors"), LLMSignature.load(tmp_path / "merged.safetensors")
    assert torch.equal(whole.targets, merged.probs) and torch.equal(whole.logits, merged.logits)
    assert whole.content_hash() == merged.content_hash() and merged.provenance["merged_from"] == 3
    capsys.readouterr()
    assert lavid_main(["signature", "merge", *shards[:2], "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "shard(s) 2/3 missing" in capsys.readouterr().err
    assert lavid_main(["signature", "merge", shards[0], shards[0], shards[1], shards[2], "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "are both shard 0/3" in capsys.readouterr().err
    assert lavid_main(base + ["-o", str(tmp_path / "t0.safetensors"), "--shard", "0/2", "--temperature", "2"]) == 0
    assert lavid_main(["signature", "merge", str(tmp_path / "t0.safetensors"), *shards[1:], "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "shards of different extractions" in capsys.readouterr().err
    assert lavid_main(base + ["-o", str(tmp_path / "x.safetensors"), "--shard", "3/3"]) == 2
    assert "need 0 <= i < n" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


CHAT_TEMPLATES = {  # the shapes of the Qwen2, Llama-3 and Mistral chat templates, written here
    "qwen2": "{%- for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
             "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
             "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "llama3": "{{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
              "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    "mistral": "{{ '<s>' }}{% for message in messages %}{% if message['role'] == 'user' %}"
               "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + '</s>' }}{% endif %}"
               "{% endfor %}",
    "inspects-content": "{% for message in messages %}{% if 'Red' in message['content'] %}RED {% endif %}"
                        "{{ message['content'] }}{% endfor %}",
}


@pytest.mark.parametrize("family", sorted(CHAT_TEMPLATES))
def test_prompts_rendered_once_equal_prompts_rendered_one_by_one(tiny_lm, family, monkeypatch):
    import copy

    from lavid_plugin.signature.llm_backend import PromptBuilder

    _, tok, qs, names = tiny_lm
    tok = copy.deepcopy(tok)
    tok.chat_template = CHAT_TEMPLATES[family]
    builder = PromptBuilder(tok)
    messages = builder.messages(qs, names)
    want = [tok.apply_chat_template([{"role": "user", "content": m}], tokenize=False, add_generation_prompt=True)
            for m in messages]
    renders = []
    real = PromptBuilder.render
    monkeypatch.setattr(PromptBuilder, "render", lambda self, m: renders.append(m) or real(self, m))
    assert builder.build_prompts(qs, names) == want
    fast = family != "inspects-content"  # that one must fall back to rendering every prompt
    assert (len(renders) <= len(qs) + 1) == fast
    assert builder.encode_all(want) == [builder.encode(p) for p in want]


class _EngineOverHF:
    """vLLM's ``LLM`` interface (``get_tokenizer``, ``generate`` with ``prompt_logprobs``), answered by
    the tiny HF model: what the vllm backend is built on, without a GPU."""

    def __init__(self, model, tok):
        self.model, self.tok, self.calls = model, tok, 0

    def get_tokenizer(self):
        return self.tok

    def generate(self, requests, params, use_tqdm=False):
        from types import SimpleNamespace

        assert params.max_tokens == 1 and params.prompt_logprobs == 0
        self.calls += 1
        outs = []
        with torch.inference_mode():
            for r in requests:
                ids = r["prompt_token_ids"]
                logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0, -2].float(), -1)
                outs.append(SimpleNamespace(prompt_logprobs=[None] * (len(ids) - 1) + [
                    {ids[-1]: SimpleNamespace(logprob=float(logp[ids[-1]]))}]))
        return outs


def test_vllm_backend_reads_the_same_answers_as_the_hf_backend(tiny_lm, tmp_path, monkeypatch):
    import sys
    from types import ModuleType, SimpleNamespace

    from lavid_plugin.signature.vllm_backend import VLLMAnswerer

    fake = ModuleType("vllm")  # SamplingParams only; the engine is the stand-in above
    fake.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model, tok, qs, names = tiny_lm
    qs = _mixed_length_questions(qs)
    hf = AnswerExtractor(model, tok, model_id="tiny").extract(qs, names, progress=False)
    engine = _EngineOverHF(model, tok)
    ans = VLLMAnswerer("tiny", llm=engine)
    sig = ans.extract(qs, names, cache_dir=tmp_path / "cache", progress=False)
    assert torch.allclose(sig.probs, hf.targets, atol=1e-5)
    assert sig.provenance["answer_backend"].startswith("vLLM") and sig.provenance["label_token_ids"]
    calls = engine.calls
    again = ans.extract(qs, names, cache_dir=tmp_path / "cache", progress=False)  # resumed from the cache
    assert engine.calls == calls and torch.equal(again.targets, sig.probs)
    part = ans.answer_prompts(qs, names, shard=(1, 3), progress=False)
    assert sorted(part) == list(range(1, len(qs) * len(names), 3))


def test_vllm_on_a_gpu_agrees_with_hf_within_bf16(tiny_lm, tmp_path):
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'lavid-plugin[vllm]' on a CUDA machine)")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA device")
    from lavid_plugin.signature.vllm_backend import VLLMAnswerer

    model, tok, qs, names = tiny_lm
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    hf = AnswerExtractor(model.cuda().bfloat16(), tok, model_id="tiny").extract(qs, names, progress=False)
    sig = VLLMAnswerer(str(tmp_path / "lm"), gpu_memory_utilization=0.3).extract(qs, names, progress=False)
    assert torch.allclose(sig.probs, hf.targets, atol=2e-2)


def test_signature_provenance_keeps_its_key_order_so_files_stay_byte_identical(tiny_lm, tmp_path):
    """The provenance's key order is part of the file's bytes: an extraction that did not change writes
    the same file as before (the order the extractor always used)."""
    from lavid_plugin.signature.answerers import build_signature
    from lavid_plugin.signature.llm_backend import AnswerExtractor

    model, tok, qs, names = tiny_lm
    sig = build_signature(AnswerExtractor(model, tok, model_id="tiny"), qs[:2], names[:2], question_source="q.txt")
    assert list(sig.provenance) == ["source", "answer_backend", "answering_model", "model_fingerprint",
                                    "question_source", "prompt_template", "chat_template", "label_kind",
                                    "label_token_ids", "placeholders", "temperature", "dtype", "library_versions"]
