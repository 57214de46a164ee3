"""Stage 1b (per-image teachers from a vision-language model) and the distillers that read them.

A tiny random LLaVA (CLIP vision tower + Llama, built from configs) and a processor assembled here;
images are a CUB-layout tree. Nothing downloads."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fake_trees import write_cub
from lavid_plugin.config import load_cfg
from lavid_plugin.errors import LavidError
from lavid_plugin.image_teacher import SampleBank
from lavid_plugin.cli.teacher import training_images
from lavid_plugin.image_teacher.jobs import aspect_job, extract_bank, feature_job
from lavid_plugin.image_teacher.tiny_vlm import build_tiny_llava
from lavid_plugin.image_teacher.vlm import PAPER_ASPECT_TEMPLATE, PAPER_FEATURE_TEMPLATE, VLMTeacher

ASPECTS = ["Is the beak long?", "Does the bird have a dark back and pale belly?", "Is it swimming?"]
NAMES = ("Black footed Albatross", "Laysan Albatross", "Groove billed Ani")  # prompts of different lengths


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    write_cub(root, NAMES)
    return root


def _cfg(root, *extra):
    return load_cfg(None, ["DATASET.TYPE", "cub", "DATASET.ROOT", str(root), "DATASET.IMAGE_SIZE", "32",
                           "DATASET.NUM_WORKERS", "0", *extra])


@pytest.fixture(scope="module")
def teacher():
    model, processor = build_tiny_llava(list(NAMES) + ASPECTS, layers=4)
    return VLMTeacher(model, processor, model_id="tiny-llava")


def _one_at_a_time(teacher, image, prompt):
    """The authors' loop: one image, one prompt, no padding."""
    enc = teacher.processor(text=[prompt], images=[image], return_tensors="pt")
    with torch.inference_mode():
        return teacher.model(**enc, output_hidden_states=True)


def test_batched_features_equal_one_image_at_a_time(cub, teacher, tmp_path):
    images = training_images(_cfg(cub))
    assert len(images) == 6 and images.sample_ids[0].startswith("CUB_200_2011/images/001.")
    job = feature_job(teacher, images, [-1, -3], PAPER_FEATURE_TEMPLATE)
    bank = extract_bank(teacher, images, job, tmp_path / "f.safetensors", batch_size=4, chunk_size=4, progress=False)
    assert sorted(bank.names) == ["last-1", "last-3", "mean-1", "mean-3"]
    assert bank.tensors()["last-1"].dtype == torch.float16
    lengths = set()
    for i in range(len(images)):
        prompt = teacher.render(PAPER_FEATURE_TEMPLATE, **{"class": images.class_names[images.labels[i]]})
        assert f"Is there a {images.class_names[images.labels[i]]} in this image?" in prompt
        lengths.add(teacher.prompt_length(prompt))
        out = _one_at_a_time(teacher, images.dataset.load(i), prompt)
        for layer in (-1, -3):
            h = out.hidden_states[layer][0]
            torch.testing.assert_close(bank.tensors()[f"last{layer}"][i].float(), h[-1].half().float(),
                                       atol=3e-3, rtol=3e-3)
            torch.testing.assert_close(bank.tensors()[f"mean{layer}"][i].float(), h.mean(0).half().float(),
                                       atol=3e-3, rtol=3e-3)
    assert len(lengths) > 1  # batches mixed prompt lengths: padding was exercised
    loaded = SampleBank.load(tmp_path / "f.safetensors")
    prov = loaded.provenance
    assert prov["model"] == "tiny-llava" and prov["layers"] == [-1, -3] and prov["template"] == PAPER_FEATURE_TEMPLATE
    assert prov["dataset"]["type"] == "cub" and prov["content_hash"] == bank.content_hash()
    assert not (tmp_path / "f.safetensors.parts").exists()  # parts removed once the bank is written


def test_batched_aspects_equal_one_image_at_a_time(cub, teacher, tmp_path):
    images = training_images(_cfg(cub))
    job = aspect_job(teacher, ASPECTS, PAPER_ASPECT_TEMPLATE)
    assert job.run_image is not None  # the image and "USER: " go through the model once per image
    bank = extract_bank(teacher, images, job, tmp_path / "a.safetensors", batch_size=2, progress=False)
    plain = aspect_job(teacher, ASPECTS, PAPER_ASPECT_TEMPLATE, shared_prefix=False)  # (image, question) batches
    flat = extract_bank(teacher, images, plain, tmp_path / "b.safetensors", batch_size=5, progress=False)
    torch.testing.assert_close(bank.tensors()["p_yes"], flat.tensors()["p_yes"], atol=1e-5, rtol=1e-4)
    p = bank.tensors()["p_yes"]
    assert p.shape == (6, 3) and ((p > 0) & (p < 1)).all()
    yes, no = job.provenance["label_token_ids"]
    for i in (0, 5):
        for j, q in enumerate(ASPECTS):
            logits = _one_at_a_time(teacher, images.dataset.load(i), teacher.render(PAPER_ASPECT_TEMPLATE, question=q)).logits
            want = logits[0, -1, [yes, no]].softmax(-1)[0]
            torch.testing.assert_close(p[i, j], want, atol=1e-5, rtol=1e-4)


def test_a_killed_extraction_resumes_to_the_same_bank(cub, teacher, tmp_path, monkeypatch):
    import lavid_plugin.utils as ck

    images = training_images(_cfg(cub))
    job = feature_job(teacher, images, [-2], PAPER_FEATURE_TEMPLATE)
    whole = extract_bank(teacher, images, job, tmp_path / "whole.safetensors", batch_size=2, chunk_size=2,
                         progress=False)

    class Killed(BaseException):
        pass

    def kill(name, n):
        if (name, n) == ("teacher-chunk", 1):
            raise Killed

    monkeypatch.setattr(ck, "fault_point", kill)
    out = tmp_path / "cut.safetensors"
    with pytest.raises(Killed):
        extract_bank(teacher, images, job, out, batch_size=2, chunk_size=2, progress=False)
    assert not out.exists() and len(list((tmp_path / "cut.safetensors.parts").glob("chunk-*"))) == 2
    monkeypatch.setattr(ck, "fault_point", lambda *a: None)
    calls = []
    run = job.run
    job.run = lambda imgs, texts: calls.append(len(imgs)) or run(imgs, texts)
    resumed = extract_bank(teacher, images, job, out, batch_size=2, chunk_size=2, progress=False)
    assert calls == [2]  # only the third chunk was computed
    assert resumed.content_hash() == whole.content_hash()
    # a different extraction refuses the finished parts of another
    (tmp_path / "x.safetensors.parts").mkdir()
    (tmp_path / "x.safetensors.parts" / "manifest.json").write_text('{"kind": "aspects"}')
    shutil.copy(tmp_path / "whole.safetensors", tmp_path / "x.safetensors.parts" / "chunk-000000.safetensors")
    with pytest.raises(LavidError, match="parts of a different extraction"):
        extract_bank(teacher, images, job, tmp_path / "x.safetensors", progress=False)


def test_bad_inputs_are_named(cub, teacher, tmp_path):
    images = training_images(_cfg(cub))
    with pytest.raises(LavidError, match=r"layer\(s\) \[-9, 7\] out of range for 'tiny-llava', which has 4 layers"):
        feature_job(teacher, images, [-1, -9, 7], PAPER_FEATURE_TEMPLATE)
    with pytest.raises(LavidError, match="answer label 'Certainly' is not a single token"):
        aspect_job(teacher, ASPECTS, PAPER_ASPECT_TEMPLATE, labels=("Certainly", "No"))
    with pytest.raises(LavidError, match="no {image} placeholder"):
        feature_job(teacher, images, [-1], "Is there a {class}?").prompts(0)
    with pytest.raises(LavidError, match="bad placeholder 'species'"):
        feature_job(teacher, images, [-1], "{image} a {species}?").prompts(0)
    from lavid_plugin.image_teacher.aspects import read_aspect_questions

    (tmp_path / "q.txt").write_text("Is it red?\n\nIs it red?\n")
    with pytest.raises(LavidError, match=r"q.txt:3: question 'Is it red\?' repeats line 1"):
        read_aspect_questions(tmp_path / "q.txt")


def test_a_bank_of_another_split_is_refused_naming_the_first_missing_image(cub, tmp_path):
    from lavid_plugin.engine.build import build_distiller, setup_data

    cfg = _cfg(cub)
    run = setup_data(load_cfg(None, list(_opts(cub)) + ["DISTILLER.TYPE", "MAKD", "MAKD.BANK", "x"]))
    train_ids = run.context.sample_ids
    test_ids = ["CUB_200_2011/images/" + p for p in ("001.Black_footed_Albatross/Albatross_0002_3.jpg",)]
    SampleBank(test_ids, {"p_yes": torch.rand(1, 3)}).save(tmp_path / "test_split.safetensors")
    cfg = load_cfg(None, list(_opts(cub)) + ["DISTILLER.TYPE", "MAKD", "MAKD.BANK", str(tmp_path / "test_split.safetensors")])
    with pytest.raises(LavidError, match=f"test_split.safetensors \\(MAKD.BANK\\).*first '{train_ids[0]}'"):
        build_distiller(cfg, setup_data(cfg).context)
    nan = torch.rand(len(train_ids), 3)
    nan[2, 1] = float("nan")
    with pytest.raises(LavidError, match=f"non-finite values for sample '{train_ids[2]}'"):
        SampleBank(train_ids, {"p_yes": nan})


def _opts(root):
    return ["DATASET.TYPE", "cub", "DATASET.ROOT", str(root), "DATASET.IMAGE_SIZE", "32", "DATASET.NUM_WORKERS", "0",
            "DISTILLER.STUDENT", "resnet_tiny", "SOLVER.BATCH_SIZE", "4", "SOLVER.LR", "0.05"]


@pytest.fixture(scope="module")
def banks(cub, tmp_path_factory):
    """A features bank (layers -1, -12; dim 48) and an aspects bank (5 questions) of the CUB tree, in shuffled order."""
    from lavid_plugin.engine.build import setup_data

    out = tmp_path_factory.mktemp("banks")
    ids = setup_data(load_cfg(None, _opts(cub))).context.sample_ids
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ids), generator=g).tolist()
    feats = {n: torch.randn(len(ids), 48, generator=g).half() for n in ("last-1", "last-12", "mean-12")}
    SampleBank([ids[i] for i in order], {n: t[order] for n, t in feats.items()}).save(out / "f.safetensors")
    SampleBank([ids[i] for i in order], {"p_yes": torch.rand(len(ids), 5, generator=g)[order]}).save(out / "a.safetensors")
    return out


KINDS = {
    "MAKD": ["MAKD.BANK", "a.safetensors"],
    "FITNET_MLLM": ["FITNET_MLLM.BANK", "f.safetensors", "FITNET_MLLM.LOSS.FEAT_WEIGHT", "400.0"],
    "CRD_MLLM": ["CRD_MLLM.BANK", "f.safetensors", "CRD_MLLM.NCE.K", "4", "CRD_MLLM.FEAT_DIM", "16"],
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_mllm_distillers_learn_their_teacher_on_a_fixed_batch(kind, cub, banks):
    from lavid_plugin.engine.build import build_distiller, setup_data

    key, file, *rest = KINDS[kind]
    cfg = load_cfg(None, _opts(cub) + ["DISTILLER.TYPE", kind, key, str(banks / file), *rest])
    run = setup_data(cfg)
    torch.manual_seed(0)
    model = build_distiller(cfg, run.context)
    batch = next(iter(run.train_loader))
    image, target, index = batch[:3]
    extra = {"contrastive_index": batch[3]} if kind == "CRD_MLLM" else {}
    if kind == "CRD_MLLM":  # the loader draws the sample itself then K other-class samples
        assert batch[3].shape == (4, 5) and torch.equal(batch[3][:, 0], index)
    with pytest.raises(LavidError, match="by training sample: pass the batch's sample indices"):
        model.train().forward_train(image=image, target=target)
    opt = torch.optim.SGD(model.get_learnable_parameters(), lr=0.02, momentum=0.9)
    first = None
    for _ in range(25):
        _, losses = model.forward_train(image=image, target=target, index=index, **extra)
        loss = losses["loss_feat"].detach()
        first = float(loss) if first is None else first
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert float(loss) < 0.85 * first, (first, float(loss))


def test_mllm_distillers_train_evaluate_and_resume_through_the_trainer(cub, banks, tmp_path):
    from lavid_plugin.engine.launch import train

    opts = _opts(cub) + ["DISTILLER.TYPE", "CRD_MLLM", "CRD_MLLM.BANK", str(banks / "f.safetensors"),
                         "CRD_MLLM.NCE.K", "4", "SOLVER.EPOCHS", "2", "LOG.PREFIX", str(tmp_path), "EXPERIMENT.NAME", "crd"]
    whole = train(load_cfg(None, opts), progress=False)
    opts2 = opts[:-1] + ["crd2"]
    train(load_cfg(None, opts2), stop_after_epoch=1, progress=False)
    resumed = train(load_cfg(None, opts2), resume=True, progress=False)
    a = torch.load(whole.log_path / "latest", weights_only=True)["model"]
    b = torch.load(resumed.log_path / "latest", weights_only=True)["model"]
    assert "memory.memory_s" in a  # CRD's memory travels with the checkpoint
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_teacher_cli_help_names_the_papers_defaults_and_runs_end_to_end(cub, tmp_path, capsys):
    from lavid_plugin.cli import main

    def help_of(cmd):  # argparse wraps at spaces and hyphens
        with pytest.raises(SystemExit):
            main(["teacher", cmd, "--help"])
        return "".join(capsys.readouterr().out.split())

    text = help_of("features")
    assert "llava-hf/llava-1.5-7b-hf" in text and "[-1,-6,-12,-18,-24,-30]" in text and "Table1uses-12" in text
    assert "Istherea{class}inthisimage?" in text and "takenfromitslabel" in text
    text = help_of("aspects")
    assert "InternVL2-8B" in text and "(default:YesNo)" in text
    opts = ["--opts", "DATASET.TYPE", "cub", "DATASET.ROOT", str(cub), "DATASET.NUM_WORKERS", "0"]
    assert main(["teacher", "make-tiny-vlm", str(tmp_path / "vlm"), *opts]) == 0
    features = ["teacher", "features", "--cfg", "", "--model", str(tmp_path / "vlm"), "-o", str(tmp_path / "b.safetensors"),
                "--no-progress", *opts, "--layers"]
    capsys.readouterr()
    assert main(features + ["-1", "-40"]) == 2
    assert "layer(s) [-40] out of range" in capsys.readouterr().err and not (tmp_path / "b.safetensors").exists()
    assert main(features + ["-1"]) == 0
    assert SampleBank.load(tmp_path / "b.safetensors").names == ["last-1", "mean-1"]


def test_aspect_questions_prompt_names_the_datasets_classes(cub, capsys):
    from lavid_plugin.cli import main

    assert main(["teacher", "aspect-questions", "--cfg", "", "-n", "7", "--description", "photographs of birds",
                 "--print-prompt", "--opts", "DATASET.TYPE", "cub", "DATASET.ROOT", str(cub)]) == 0
    prompt = capsys.readouterr().out
    assert "images of photographs of birds" in prompt and "List 7 distinct yes/no questions" in prompt
    assert "Black footed Albatross, Laysan Albatross, Groove billed Ani" in prompt
    assert main(["teacher", "aspect-questions", "--classes", "x.json", "-n", "3"]) == 2  # no file: named error


def test_aspect_questions_are_generated_until_enough_distinct_ones():
    from lavid_plugin.image_teacher.aspects import generate_aspect_questions

    replies = iter(["1. Is the beak long?\n2) Is it a Laysan Albatross?\nSure!\n- Is the back dark?",
                    "1. Is the beak long?\n2. Does it swim?"])
    got = generate_aspect_questions(lambda prompt: next(replies), NAMES, 3, log=lambda m: None)
    assert got == ["Is the beak long?", "Is the back dark?", "Does it swim?"]  # no class name, no repeat
    with pytest.raises(LavidError, match="only 0 usable aspect questions of the 2"):
        generate_aspect_questions(lambda prompt: "no questions here", NAMES, 2, max_rounds=2, log=lambda m: None)


def test_ddp_leaves_banks_and_crd_memory_alone_and_trains_two_processes(cub, banks, tmp_path):
    import os
    from pathlib import Path

    from lavid_plugin.engine.build import build_distiller, setup_data
    from lavid_plugin.engine.launch import local_buffers

    opts = _opts(cub) + ["DISTILLER.TYPE", "CRD_MLLM", "CRD_MLLM.BANK", str(banks / "f.safetensors"),
                         "CRD_MLLM.NCE.K", "4"]
    cfg = load_cfg(None, opts)
    names = set(local_buffers(build_distiller(cfg, setup_data(cfg).context)))
    assert {"bank.last-12", "memory.memory_s", "memory.memory_t", "memory.z"} <= names
    assert not any(n.startswith("student.") for n in names)  # BatchNorm statistics are still broadcast
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not found next to the Python interpreter")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    train_py = Path(__file__).resolve().parents[1] / "tools" / "train.py"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(train_py), "--cfg", "", *opts, "SOLVER.EPOCHS", "1",
                        "LOG.PREFIX", str(tmp_path), "EXPERIMENT.NAME", "ddp"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "world 2" in r.stdout and (tmp_path / "distill" / "ddp" / "latest").is_file()
    assert "leave a last batch of one image per process" in r.stderr  # 6 images, global batch 4, 2 ranks


def test_chat_prompts_wrap_the_message_in_the_processors_template(cub, teacher):
    from lavid_plugin.image_teacher.vlm import CHAT_FEATURE_TEMPLATE

    chat = VLMTeacher(teacher.model, teacher.processor, model_id="tiny-llava", chat=True)
    # the tiny LLaVA's chat template is LLaVA-1.5's conversation format: the authors' prompt, exactly
    assert chat.render(CHAT_FEATURE_TEMPLATE, **{"class": "Laysan Albatross"}) == \
        teacher.render(PAPER_FEATURE_TEMPLATE, **{"class": "Laysan Albatross"})
    import copy

    bare = copy.copy(teacher.processor)
    bare.chat_template = None
    with pytest.raises(LavidError, match="has no chat template"):
        VLMTeacher(teacher.model, bare, chat=True)


def test_a_killed_teacher_command_resumes_from_its_parts(cub, tmp_path):
    """SIGKILL after the second chunk (LAVID_FAULT), then the same command: the bank equals an uninterrupted run's."""
    import os

    from lavid_plugin.cli import main

    opts = ["--opts", "DATASET.TYPE", "cub", "DATASET.ROOT", str(cub), "DATASET.NUM_WORKERS", "0"]
    assert main(["teacher", "make-tiny-vlm", str(tmp_path / "vlm"), *opts]) == 0
    args = ["teacher", "features", "--cfg", "", "--model", str(tmp_path / "vlm"), "--layers", "-1", "--chunk-size", "2",
            "--no-progress", *opts, "-o"]
    # only the killed run needs its own process; the restart and the uninterrupted run are the same command here
    killed = subprocess.run([sys.executable, "-m", "lavid_plugin.cli", *args, str(tmp_path / "b.safetensors")],
                            env=dict(os.environ, LAVID_FAULT="teacher-chunk:1"), capture_output=True)
    assert killed.returncode == -9 and not (tmp_path / "b.safetensors").exists()
    assert len(list((tmp_path / "b.safetensors.parts").glob("chunk-*.safetensors"))) == 2
    assert main(args + [str(tmp_path / "b.safetensors")]) == 0
    assert main(args + [str(tmp_path / "whole.safetensors")]) == 0
    assert SampleBank.load(tmp_path / "b.safetensors").content_hash() == \
        SampleBank.load(tmp_path / "whole.safetensors").content_hash()


def test_a_layer_the_bank_lacks_is_named_with_the_command_that_writes_it(cub, banks):
    from lavid_plugin.engine.build import build_distiller, setup_data

    cfg = load_cfg(None, _opts(cub) + ["DISTILLER.TYPE", "FITNET_MLLM", "FITNET_MLLM.BANK", str(banks / "f.safetensors"),
                                       "FITNET_MLLM.LAYER", "-18"])
    with pytest.raises(LavidError, match=r"has no tensor 'last-18'; it has \['last-1', 'last-12', 'mean-12'\] "
                                         r"\(lavid teacher features --layers -18 writes it\)"):
        build_distiller(cfg, setup_data(cfg).context)
    cfg = load_cfg(None, _opts(cub) + ["DISTILLER.TYPE", "CRD_MLLM", "CRD_MLLM.BANK", str(banks / "f.safetensors"),
                                       "CRD_MLLM.TOKEN", "first"])
    with pytest.raises(LavidError, match="CRD_MLLM.TOKEN must be 'last' or 'mean', got 'first'"):
        build_distiller(cfg, setup_data(cfg).context)


def test_the_docs_cpu_example_runs_as_written_on_the_demo_data(tmp_path, monkeypatch):
    """docs/multimodal-baselines.md's CPU example, command by command (its /tmp paths under tmp_path)."""
    import re
    import shlex

    from helpers import small_demo
    from lavid_plugin.cli import main as lavid

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "multimodal-baselines.md").read_text()
    block = re.search(r"To try the commands on a CPU.*?```bash\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    small_demo(tmp_path / "data" / "demo_birds", train=1, test=1)  # the demo's tree, small
    env = {}
    for line in [ln.strip() for ln in block.splitlines() if ln.strip()]:
        line = line.replace("/tmp/", f"{tmp_path}/").replace("lavid_plugin/", f"{root}/lavid_plugin/")
        if re.match(r"^[A-Z]+=", line):
            k, v = line.split("=", 1)
            env[k] = v
            continue
        for k, v in env.items():
            line = line.replace(f"${k}", v)
        args = shlex.split(line)
        assert args[0] == "lavid" and lavid(args[1:]) == 0, line
    assert SampleBank.load(tmp_path / "aspects.safetensors").tensors()["p_yes"].shape == (12, 6)
    assert sorted(SampleBank.load(tmp_path / "features.safetensors").names) == ["last-1", "last-2", "mean-1", "mean-2"]


def test_yes_no_ids_are_the_authors_convert_tokens_to_ids_not_the_word_start_token():
    """On a Llama-style tokenizer "Yes" encodes to the word-start token "▁Yes"; the authors read the logit
    of convert_tokens_to_ids("Yes"), the token spelled exactly "Yes". That is the default; encode stays
    an option, and the provenance says which."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from lavid_plugin.hf import answer_token_ids

    vocab = {"<unk>": 0, "▁Yes": 1, "▁No": 2, "Yes": 3, "No": 4, "▁Is": 5, "▁it": 6, "?": 7}
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>")
    assert tok.encode("Yes", add_special_tokens=False) == [1]  # the word-start token
    assert answer_token_ids(tok, ["Yes", "No"]) == [tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")] \
        == [3, 4]
    assert answer_token_ids(tok, ["Yes", "No"], "encode") == [1, 2]
    with pytest.raises(LavidError, match="'Maybe' is not a single token"):
        answer_token_ids(tok, ["Maybe", "No"])


def test_aspect_banks_record_how_yes_and_no_became_ids(cub, teacher):
    images = training_images(_cfg(cub))
    job = aspect_job(teacher, ASPECTS, PAPER_ASPECT_TEMPLATE)
    assert job.provenance["label_ids"] == "token"
    assert job.provenance["label_token_ids"] == [teacher.tokenizer.convert_tokens_to_ids(w) for w in ("Yes", "No")]
    assert len(images) == 6


def _released_flowers(tmp_path, drop=None):
    """A fake Flowers tree and a bank file in the authors' internvl2_img.json format: keyed by image file
    name, 50 P(Yes) each, with rows of images outside the training split too."""
    from fake_trees import write_flowers

    write_flowers(tmp_path / "flowers")
    g = torch.Generator().manual_seed(0)
    rows = {f"image_{i:05d}.jpg": torch.rand(50, generator=g).tolist() for i in range(1, 13) if i != drop}
    (tmp_path / "internvl2_img.json").write_text(json.dumps(rows, indent=4))
    return rows


def test_the_authors_released_aspect_bank_imports_and_trains_makd(tmp_path, capsys):
    from lavid_plugin.cli import main as lavid
    from lavid_plugin.engine.launch import train

    rows = _released_flowers(tmp_path)
    opts = ["DATASET.TYPE", "flowers", "DATASET.ROOT", str(tmp_path / "flowers"), "DATASET.IMAGE_SIZE", "32",
            "DATASET.NUM_WORKERS", "0"]
    assert lavid(["teacher", "import", str(tmp_path / "internvl2_img.json"), "--cfg", "", "--opts", *opts,
                  "-o", str(tmp_path / "bank.safetensors")]) == 0
    assert "6 images x 50 aspects" in capsys.readouterr().out  # train + val of the fake split; 6 rows left out
    bank = SampleBank.load(tmp_path / "bank.safetensors")
    for sid, row in zip(bank.sample_ids, bank.p_yes):
        assert torch.allclose(row, torch.tensor(rows[Path(sid).name]))  # aligned by image, not by position
    assert bank.provenance["source"] == "released" and bank.provenance["rows_in_file"] == 12
    cfg = load_cfg(None, [*opts, "DISTILLER.TYPE", "MAKD", "MAKD.BANK", str(tmp_path / "bank.safetensors"),
                          "DISTILLER.STUDENT", "resnet_tiny", "SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE", "3",
                          "LOG.PREFIX", str(tmp_path / "out"), "EXPERIMENT.NAME", "makd"])
    trainer = train(cfg, progress=False)
    assert "loss_feat" in (trainer.log_path / "worklog.txt").read_text()


def test_a_released_bank_missing_a_training_image_is_refused_naming_it(tmp_path, capsys):
    from lavid_plugin.cli import main as lavid

    _released_flowers(tmp_path, drop=5)  # image 5 is in the training split (trnid)
    assert lavid(["teacher", "import", str(tmp_path / "internvl2_img.json"), "--cfg", "", "--opts", "DATASET.TYPE",
                  "flowers", "DATASET.ROOT", str(tmp_path / "flowers"), "-o", str(tmp_path / "bank.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "image_00005.jpg" in err and "no row for 1 of the 6 training images" in err
    assert not (tmp_path / "bank.safetensors").exists()
