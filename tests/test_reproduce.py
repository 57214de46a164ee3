"""scripts/reproduce.py: every run of a table, teachers first, finished runs skipped, partial resumed."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dry_run(*args):
    """``scripts/reproduce.py --dry-run ARGS``'s output lines, run in this process."""
    import contextlib
    import io

    from lavid_plugin.reproduce import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--dry-run", *args]) == 0
    return buf.getvalue().splitlines()


def test_table1_lists_every_run_with_the_teacher_first(tmp_path):
    lines = dry_run("--table", "1", "--seeds", "3", "--prefix", str(tmp_path))
    # 6 teachers + 6 x 3 x 11 x 3; per dataset a LLaVA feature bank, a MaKD aspect bank and a signature: the
    # authors' released ones, except Caltech-101's (no released bank nor Qwen2.5-7B answers: 2 files each)
    assert lines[0] == "Table 1: 600 runs, 0 finished, 600 to run; 20 teacher file(s) to write first (Stage 1 / 1b)"
    cub = [x for x in lines[1:] if "configs/lavid/cub/" in x]
    assert "res50_vanilla.yaml" in cub[0] and "EXPERIMENT.SEED 0" in cub[0]
    assert sum("cub/res18.yaml" in x for x in cub) == 3
    kd = next(x for x in cub if "res18_kd.yaml" in x and "SEED 2" in x)
    assert f"DISTILLER.TEACHER_CKPT {tmp_path}/lavid_cub/res50_vanilla/student_best" in kd
    assert "EXPERIMENT.NAME res18_kd_seed2" in kd


def test_finished_runs_are_skipped_and_partial_ones_resumed(tmp_path):
    done = tmp_path / "lavid_flowers" / "res18_seed0"
    done.mkdir(parents=True)
    (done / "worklog.txt").write_text("epoch: 240\ntest_acc: 1.00\nbest_acc\t1.00")
    half = tmp_path / "lavid_flowers" / "res18_seed1"
    half.mkdir(parents=True)
    (half / "latest").write_bytes(b"")
    lines = dry_run("--table", "1", "--seeds", "2", "--datasets", "flowers", "--students", "res18",
                    "--methods", "lavid", "--prefix", str(tmp_path))
    # the run to resume reads the signature: the authors' released one is fetched first
    assert lines[0] == "Table 1: 2 runs, 1 finished, 1 to run; 1 teacher file(s) to write first (Stage 1 / 1b)"
    assert lines[1].startswith("teacher file signatures/flowers/qwen2.5-7b_chat_50-5.safetensors: the authors' "
                               "released answers (questions/flowers/logits/qwen2.5-7b_chat_50-5.json at ")
    assert "signature released flowers" in lines[2]
    assert lines[3].startswith("skip (finished):") and "res18_seed0" in lines[3]
    assert lines[4].startswith("would run:") and "--resume" in lines[4] and "res18_seed1" in lines[4]
    # both finished: nothing to fetch
    (half / "worklog.txt").write_text("epoch: 240\ntest_acc: 1.00\nbest_acc\t1.00")
    lines = dry_run("--table", "1", "--seeds", "2", "--datasets", "flowers", "--students", "res18",
                    "--methods", "lavid", "--prefix", str(tmp_path))
    assert lines[0] == "Table 1: 2 runs, 2 finished, 0 to run" and len(lines) == 3


def test_tables_3_and_4(tmp_path):
    # one released signature per ImageNet group; Waterbirds reads CUB's
    three = dry_run("--table", "3", "--seeds", "1", "--prefix", str(tmp_path))
    assert three[0] == "Table 3: 18 runs, 0 finished, 18 to run; 9 teacher file(s) to write first (Stage 1 / 1b)"
    assert sum("signature released imagenet_" in x for x in three) == 9
    four = dry_run("--table", "4", "--seeds", "3", "--prefix", str(tmp_path))
    assert four[0] == "Table 4: 55 runs, 0 finished, 55 to run; 1 teacher file(s) to write first (Stage 1 / 1b)"
    assert any("signature released cub " in x and "-o signatures/cub/qwen2.5-7b_chat_50-5.safetensors" in x
               for x in four)


def test_table_b_lists_every_layer_method_dataset_student_run_after_its_bank(tmp_path):
    lines = dry_run("--table", "B", "--seeds", "1", "--prefix", str(tmp_path))
    assert lines[0] == "Table B: 216 runs, 0 finished, 216 to run; 6 teacher file(s) to write first (Stage 1 / 1b)"
    runs = [x for x in lines[1:] if "tools/train.py" in x]
    for d in ("cub", "caltech101", "flowers", "aircraft", "pets", "cars"):
        for s in ("res18", "mv2", "shuv2"):
            for m in ("fitnet", "crd"):
                for layer in (1, 6, 12, 18, 24, 30):
                    assert sum(f"configs/lavid/{d}/{s}_{m}_llava_l{layer}.yaml" in x for x in runs) == 1
        bank = [i for i, x in enumerate(lines) if "teacher features" in x and f"banks/{d}/" in x]
        first_run = next(i for i, x in enumerate(lines) if f"configs/lavid/{d}/" in x and "train.py" in x)
        assert len(bank) == 1 and bank[0] < first_run  # the bank is written before its first run
        assert "--layers -1 -6 -12 -18 -24 -30" in lines[bank[0]]


def test_makd_needs_its_aspect_questions_first(tmp_path):
    lines = dry_run("--table", "1", "--seeds", "1", "--datasets", "pets", "--students", "res18", "--methods", "makd",
                    "--prefix", str(tmp_path), "--makd-bank", "extract")
    assert lines[1] == ("teacher file ./banks/pets/internvl2-8b_aspects.safetensors: extracted with "
                        "OpenGVLab/InternVL3-8B-hf (--makd-bank extract)")
    assert lines[2].startswith("would need MaKD's aspect questions") and "teacher aspect-questions" in lines[2]
    assert "-o banks/pets/aspect_questions.txt" in lines[2]
    # by default, the authors' released bank of Pets
    lines = dry_run("--table", "1", "--seeds", "1", "--datasets", "pets", "--students", "res18", "--methods", "makd",
                    "--prefix", str(tmp_path))
    assert "the authors' released InternVL2 bank (questions/oxfordpets/logits/internvl2_img.json" in lines[1]
    assert "teacher released pets --cfg configs/lavid/pets/res18_makd.yaml -o ./banks/pets/" in lines[2]


def test_teacher_extract_extracts_every_signature_and_says_so(tmp_path):
    lines = dry_run("--table", "1", "--seeds", "1", "--datasets", "cub", "--students", "res18", "--methods", "lavid",
                    "--prefix", str(tmp_path), "--teacher", "extract")
    assert lines[1:3] == [
        "teacher file signatures/cub/chat_50-5.txt: the authors' released questions (questions/cub200/chat_50-5.txt "
        f"at {lines[1].split(' at ')[1][:-1]})",
        "teacher file signatures/cub/qwen2.5-7b_chat_50-5.safetensors: extracted with Qwen/Qwen2.5-7B-Instruct "
        "(--teacher extract)"]
    assert "signature released cub --questions chat_50-5 --inputs-to signatures/cub" in lines[3]
    assert "signature extract --model Qwen/Qwen2.5-7B-Instruct --questions signatures/cub/chat_50-5.txt" in lines[4]


def test_a_signature_nobody_released_waits_for_what_it_needs():
    from lavid_plugin.reproduce import signature_jobs

    # questions never released: blocked on the user's question file
    (q,) = signature_jobs("./signatures/cub/qwen2.5-7b_gemini_50-5.safetensors", "released")
    assert q.state == "blocked" and q.note.startswith("gemini_50-5.txt from your LLM")
    # an LLM with no known model id: the released questions first, then blocked on the user's model
    fetch, extract = signature_jobs("./signatures/cub/phi4_chat_50-5.safetensors", "released")
    assert fetch.state == "stage1b" and fetch.key == "signatures/cub/chat_50-5.txt"
    assert extract.state == "blocked" and "--model YOUR_LLM" in " ".join(extract.cmd) and extract.deps == [fetch.key]
    # a user's own signature (not a dataset of the paper) is the user's to write
    assert signature_jobs("./signatures/demo/qwen2.5-7b_chat_50-5.safetensors", "released") == []


def test_table5_reads_the_released_embeddings_where_they_exist(tmp_path):
    lines = dry_run("--table", "5", "--datasets", "cub", "flowers", "--seeds", "1", "--prefix", str(tmp_path))
    assert "teacher file ./signatures/cub/bert_768.safetensors: the authors' released vectors " \
           "(questions/cub200/logits/bert_768.json at" in "\n".join(lines)
    assert any("signature released cub --file minilm_384 -o ./signatures/cub/minilm_384.safetensors" in x for x in lines)
    assert any("signature embed --model bert --cfg configs/lavid/flowers/res18_emb_bert.yaml" in x for x in lines)
    extract = dry_run("--table", "5", "--datasets", "cub", "--seeds", "1", "--prefix", str(tmp_path), "--teacher",
                      "extract")
    runs = [x for x in extract if x.startswith("would run:")]
    assert sum("signature embed" in x for x in runs) == 2 and not any("signature released" in x for x in extract)
