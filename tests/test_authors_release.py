"""``lavid signature released`` / ``lavid teacher released``: the authors' files at a pinned commit, verified.

The real files come from ``../shared/reference`` (the same bytes as the authors' repository at the pinned
commit), laid out as in their repository: as a clone (``--from``), or served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
import torch

from conftest import REFERENCE, need_reference
from lavid_plugin import authors_release as rel
from lavid_plugin.cli import main as lavid
from lavid_plugin.signature.llm_signature import LLMSignature


def reference_file(path: str) -> Path | None:
    """Where ``../shared/reference`` keeps the authors' file ``path`` (their repository's layout)."""
    parts = path.split("/")
    if path.startswith("lavid/data/classes/"):
        return REFERENCE / "classes" / parts[-1]
    if parts[0] == "questions" and len(parts) == 4 and parts[2] == "logits":
        return REFERENCE / "signatures" / parts[1] / parts[3]
    if parts[0] == "questions" and len(parts) == 3:
        return REFERENCE / "questions" / parts[1] / parts[2]
    return None


def make_clone(root: Path) -> Path:
    """A folder in the layout of a clone of the authors' repository, its files linked from the reference."""
    for path in rel.manifest()["files"]:
        src = reference_file(path)
        if src is not None and src.is_file():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).symlink_to(src)
    return root


class Server:
    """``files`` (repository path -> bytes or a file) over HTTP on 127.0.0.1; ``hits`` counts requests."""

    def __init__(self, files: dict):
        self.files, self.hits = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                outer.hits.append(path)
                body = outer.files.get(path)
                if isinstance(body, Path):
                    body = body.read_bytes()
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def served_reference() -> dict:
    return {p: reference_file(p) for p in rel.manifest()["files"]
            if reference_file(p) is not None and reference_file(p).is_file()}


CUB_ANSWERS, CUB_QUESTIONS = "questions/cub200/logits/qwen2.5-7b_chat_50-5.json", "questions/cub200/chat_50-5.txt"


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_the_manifest_pins_the_reference_files_by_sha256():
    need_reference()
    files = rel.manifest()["files"]
    assert len(rel.manifest()["commit"]) == 40
    pinned = served_reference()
    assert len(pinned) == 19  # every file of ../shared/reference is one of the authors' released files
    for path, src in pinned.items():
        assert files[path]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest(), path


def test_released_from_a_clone_equals_import_of_the_same_files(tmp_path, capsys):
    need_reference()
    clone = make_clone(tmp_path / "clone")
    out = tmp_path / "released.safetensors"
    assert lavid(["signature", "released", "cub", "--from", str(clone), "-o", str(out)]) == 0
    assert "K=200 Q=50" in capsys.readouterr().out
    assert lavid(["signature", "import", str(clone / CUB_ANSWERS), "--questions", str(clone / CUB_QUESTIONS),
                  "-o", str(tmp_path / "imported.safetensors")]) == 0
    a, b = LLMSignature.load(out), LLMSignature.load(tmp_path / "imported.safetensors")
    assert a.content_hash() == b.content_hash() and a.class_names == b.class_names
    assert torch.equal(a.probs, b.probs) and [q.text for q in a.questions] == [q.text for q in b.questions]
    released = a.provenance["released"]
    assert released["answers"]["commit"] == rel.manifest()["commit"]
    assert released["answers"]["sha256"] == rel.manifest()["files"][CUB_ANSWERS]["sha256"]
    assert released["questions"]["path"] == CUB_QUESTIONS


def test_released_over_http_is_cached_and_a_wrong_checksum_writes_nothing(tmp_path, capsys, monkeypatch):
    need_reference()
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    files = served_reference()
    with Server(files) as server:
        assert lavid(["signature", "released", "cub", "--url", server.url, "--cache", str(cache)]) == 0
        out = Path("signatures/cub/qwen2.5-7b_chat_50-5.safetensors")  # where the configs read it
        assert sorted(server.hits) == sorted([CUB_ANSWERS, CUB_QUESTIONS])
        sig = LLMSignature.load(out)
        assert sig.num_classes == 200 and sig.provenance["released"]["answers"]["path"] == CUB_ANSWERS
        cached = files_under(cache)
        assert [p.name for p in cached] == ["chat_50-5.txt", "qwen2.5-7b_chat_50-5.json"]
        assert cached[1].read_bytes() == files[CUB_ANSWERS].read_bytes()
        # a second time reads the cache (verified again), no request
        server.hits.clear()
        assert lavid(["signature", "released", "cub", "--url", server.url, "--cache", str(cache),
                      "-o", "again.safetensors"]) == 0
        assert server.hits == [] and LLMSignature.load("again.safetensors").content_hash() == sig.content_hash()
        # a damaged cache entry is not used: it is fetched again
        cached[0].write_text("damaged")
        assert lavid(["signature", "released", "cub", "--url", server.url, "--cache", str(cache),
                      "-o", "third.safetensors"]) == 0
        assert server.hits == [CUB_QUESTIONS] and cached[0].read_bytes() == files[CUB_QUESTIONS].read_bytes()
        capsys.readouterr()

        # a changed byte: refused by its checksum, nothing written (no output, no cache entry, no temp file)
        tampered = bytearray(files[CUB_ANSWERS].read_bytes())
        tampered[100] = ord("7") if tampered[100] != ord("7") else ord("8")
        server.files[CUB_ANSWERS] = bytes(tampered)
        fresh = tmp_path / "fresh_cache"
        assert lavid(["signature", "released", "cub", "--url", server.url, "--cache", str(fresh),
                      "-o", "bad.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and CUB_ANSWERS in err and rel.manifest()["files"][CUB_ANSWERS]["sha256"] in err
    assert not Path("bad.safetensors").exists() and files_under(fresh) == [] and not fresh.exists()


def test_released_names_what_there_is(tmp_path, capsys):
    assert lavid(["signature", "released", "caltech101", "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no answer file 'qwen2.5-7b_chat_50-5.json'" in err and "qwen2.5-72B_chat_50-5.json" in err
    assert lavid(["signature", "released", "flowers", "--file", "internvl2_img"]) == 2
    assert "a per-image bank, not a per-class signature; import it with lavid teacher released flowers" \
        in capsys.readouterr().err
    assert lavid(["signature", "released", "mnist"]) == 2
    assert "no released files for dataset 'mnist'" in capsys.readouterr().err
    # the authors spell the 72B teacher with a capital B; either spelling finds it
    assert rel.signature_paths(rel.dataset("cub200"), "qwen2.5-72b", "chat_50-5")[0] == \
        "questions/cub200/logits/qwen2.5-72B_chat_50-5.json"
    assert rel.signature_paths(rel.dataset("cub"), "qwen2.5-7b", "chat_60-5")[1] is None  # released without questions


def test_inputs_to_writes_the_question_file_and_class_list_for_extract(tmp_path, monkeypatch):
    need_reference()
    clone = make_clone(tmp_path / "clone")
    assert lavid(["signature", "released", "cub", "--from", str(clone), "--inputs-to", str(tmp_path / "in")]) == 0
    assert (tmp_path / "in" / "chat_50-5.txt").read_bytes() == (REFERENCE / "questions/cub200/chat_50-5.txt").read_bytes()
    assert json.loads((tmp_path / "in" / "classes.json").read_text()) == \
        json.loads((REFERENCE / "classes/cub200_classes.json").read_text())
    # questions whose answers were never released (Fig. 7's M = 3 is extracted from them)
    m3 = clone / "questions/cub200/chat_50-3.txt"
    m3.write_text("What colour is the class?\n1. red\n2. blue\n3. grey\n")
    _pin_file(monkeypatch, "questions/cub200/chat_50-3.txt", m3, "sha256")
    assert lavid(["signature", "released", "cub", "--questions", "chat_50-3", "--from", str(clone),
                  "--inputs-to", str(tmp_path / "m3")]) == 0
    assert (tmp_path / "m3" / "chat_50-3.txt").read_bytes() == m3.read_bytes()


def _pin_file(monkeypatch, path: str, file: Path, by: str) -> None:
    """Pin a test-made file as the release's ``path`` (by sha256, or by git blob id as the large files are)."""
    data = file.read_bytes()
    man = json.loads(json.dumps(rel.manifest()))
    man["files"][path] = {"git_blob": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest() if by == "sha256" else None}
    monkeypatch.setattr(rel, "manifest", lambda: man)


@pytest.mark.parametrize("by", ["sha256", "git_blob"])
def test_teacher_released_imports_the_bank_for_a_config(tmp_path, capsys, monkeypatch, by):
    from fake_trees import write_flowers
    from lavid_plugin.image_teacher import SampleBank

    write_flowers(tmp_path / "flowers")
    g = torch.Generator().manual_seed(0)
    rows = {f"image_{i:05d}.jpg": torch.rand(50, generator=g).tolist() for i in range(1, 13)}
    path = "questions/flowers/logits/internvl2_img.json"
    clone = tmp_path / "clone"
    (clone / path).parent.mkdir(parents=True)
    (clone / path).write_text(json.dumps(rows, indent=4))
    _pin_file(monkeypatch, path, clone / path, by)
    out = tmp_path / "bank.safetensors"
    cmd = ["teacher", "released", "flowers", "--from", str(clone), "--opts", "DATASET.ROOT", str(tmp_path / "flowers"),
           "-o", str(out)]
    assert lavid(cmd) == 0
    assert "6 images x 50 aspects" in capsys.readouterr().out
    bank = SampleBank.load(out)
    for sid, row in zip(bank.sample_ids, bank.p_yes):
        assert torch.allclose(row, torch.tensor(rows[Path(sid).name]))
    assert bank.provenance["released"]["path"] == path and by in bank.provenance["released"]
    # the same file with one value changed is not the pinned one
    rows["image_00001.jpg"][0] = 0.5
    (clone / path).write_text(json.dumps(rows, indent=4))
    out.unlink()
    assert lavid(cmd) == 2
    assert "checksum mismatch" in capsys.readouterr().err and not out.exists()


def test_a_failed_download_is_named_and_writes_no_signature(tmp_path, capsys):
    need_reference()
    files = served_reference()
    del files[CUB_QUESTIONS]
    with Server(files) as server:
        assert lavid(["signature", "released", "cub", "--url", server.url, "--cache", str(tmp_path / "cache"),
                      "-o", str(tmp_path / "sig.safetensors")]) == 2
    err = capsys.readouterr().err
    assert f"cannot download {server.url}{CUB_QUESTIONS}" in err and "--from DIR" in err
    assert not (tmp_path / "sig.safetensors").exists()
    # what did verify is kept for next time; nothing half-downloaded is
    assert [p.name for p in files_under(tmp_path / "cache")] == ["qwen2.5-7b_chat_50-5.json"]


def test_released_embedding_file_for_table_5(tmp_path, capsys):
    need_reference()
    clone = make_clone(tmp_path / "clone")
    out = tmp_path / "minilm_384.safetensors"
    assert lavid(["signature", "released", "cub", "--file", "minilm_384", "--from", str(clone), "-o", str(out)]) == 0
    assert "K=200 Q=1 dim=384" in capsys.readouterr().out
    assert lavid(["signature", "import", str(clone / "questions/cub200/logits/minilm_384.json"), "-o",
                  str(tmp_path / "imported.safetensors")]) == 0
    sig = LLMSignature.load(out)
    assert sig.provenance["kind"] == "embedding"
    assert sig.content_hash() == LLMSignature.load(tmp_path / "imported.safetensors").content_hash()
