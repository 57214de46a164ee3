import json

import pytest
import torch

from lavid_plugin.signature.released import import_reference_json
from lavid_plugin.errors import LavidError
from lavid_plugin.signature.questions import read_questions
from lavid_plugin.signature.llm_signature import LLMSignature, read_class_names


@pytest.mark.parametrize("dataset", ["cub200", "flowers", "fgvc_aircraft"])
def test_import_reference_qwen_signatures(reference, dataset, tmp_path):
    path = reference / f"signatures/{dataset}/qwen2.5-7b_chat_50-5.json"
    raw = json.loads(path.read_text())
    qs, _ = read_questions(reference / f"questions/{dataset}/chat_50-5.txt")
    sig = import_reference_json(path, questions=qs)
    assert sig.num_questions == 50 and sig.option_counts == [5] * 50 and sig.num_classes == len(raw)
    sig.save(tmp_path / "s.safetensors")
    back = LLMSignature.load(tmp_path / "s.safetensors")
    assert torch.equal(back.targets, sig.probs) and back.questions == qs
    assert back.provenance["content_hash"] == sig.content_hash()


def test_cub_rows_equal_json_after_alignment(reference):
    path = reference / "signatures/cub200/qwen2.5-7b_chat_50-5.json"
    raw = json.loads(path.read_text())
    classes = read_class_names(reference / "classes/cub200_classes.json")
    sig = import_reference_json(path, class_names=classes)
    assert sig.class_names == classes
    for k, name in enumerate(classes):
        expected = torch.tensor([p for q in raw[name] for p in q], dtype=torch.float32)
        assert torch.equal(sig.probs[k], expected), name
        assert sig.class_matrix(name) == [[float(torch.tensor(p, dtype=torch.float32)) for p in q] for q in raw[name]]


def test_every_reference_signature_imports(reference):
    for path in sorted((reference / "signatures").glob("*/*.json")):
        sig = import_reference_json(path)
        assert sig.num_classes >= 100, path
    emb = import_reference_json(reference / "signatures/cub200/minilm_384.json")
    assert emb.dim == 384 and emb.provenance["kind"] == "embedding"


def test_flowers_54_questions_against_50_question_text_is_an_error(reference):
    path = reference / "signatures/flowers/qwen2.5_chat_50.json"
    qs50, _ = read_questions(reference / "questions/flowers/chat_50-5.txt")
    with pytest.raises(LavidError, match="54 questions per class but .*chat_50-5.txt has 50"):
        import_reference_json(path, questions=qs50, questions_source=str(reference / "questions/flowers/chat_50-5.txt"))
    # its true partner (the file is named chat_50 but holds 54 questions of 3-7 options) pairs
    qs54, _ = read_questions(reference / "questions/flowers/chat_50.txt")
    sig = import_reference_json(path, questions=qs54)
    assert sig.option_counts == [q.num_options for q in qs54]


def _toy(names):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(len(names), 5, generator=g)
    probs = torch.cat([x[:, :2] / x[:, :2].sum(1, keepdim=True), x[:, 2:] / x[:, 2:].sum(1, keepdim=True)], 1)
    return LLMSignature(names, probs, [0, 2, 5])


def test_align_by_name_and_errors():
    sig = _toy(["a", "b", "c"])
    al = sig.align(["c", "a", "b"])
    assert torch.equal(al.targets, sig.probs[[2, 0, 1]])
    with pytest.raises(LavidError, match=r"no class for dataset class\(es\) \['d'\]"):
        sig.align(["a", "b", "c", "d"])
    with pytest.raises(LavidError, match=r"the dataset lacks: \['c'\]"):
        sig.align(["a", "b"])
    assert sig.align(["a", "b"], allow_extra=True).num_classes == 2


def test_align_normalised_names_reports_mapping():
    sig = _toy(["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"])
    raw = ["002.Laysan_Albatross", "001.Black_footed_Albatross", "003.Sooty_Albatross"]
    with pytest.raises(LavidError, match="normalize"):
        sig.align(raw)
    al = sig.align(raw, normalize=True)
    assert torch.equal(al.targets[0], sig.probs[1])
    assert ("002.Laysan_Albatross", "Laysan Albatross") in al.alignment.mapping


def test_class_list_with_duplicate_is_a_clear_error(tmp_path):
    f = tmp_path / "classes.json"
    f.write_text(json.dumps(["Rose", "Tulip", "Rose"]))
    with pytest.raises(LavidError, match=r"classes\.json: class 'Rose' appears twice \(entries 0 and 2\)"):
        read_class_names(f)


def test_load_rejects_non_signature(tmp_path):
    from safetensors.torch import save_file

    f = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(2)}, str(f))
    with pytest.raises(LavidError, match="no 'lavid' metadata"):
        LLMSignature.load(f)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(LavidError, match="not a readable safetensors"):
        LLMSignature.load(tmp_path / "bad.safetensors")


def test_lookup_gives_each_label_its_own_class_row_after_save_load_and_align(tmp_path):
    from helpers import random_signature

    sig = random_signature(["a", "b", "c"], counts=(2, 3))
    loaded = LLMSignature.load(sig.save(tmp_path / "s.safetensors")).align(["c", "a", "b"])  # dataset label order
    rows = loaded(torch.tensor([0, 2, 1, 0]))  # labels: c, b, a, c
    flat = {n: torch.tensor([p for q in sig.class_matrix(n) for p in q]) for n in "abc"}
    assert torch.equal(rows, torch.stack([flat["c"], flat["b"], flat["a"], flat["c"]]))
    assert torch.allclose(rows[:, :2].sum(1), torch.ones(4)) and torch.allclose(rows[:, 2:].sum(1), torch.ones(4))


def test_a_released_file_with_an_empty_question_imports_without_it(tmp_path, capsys):
    from lavid_plugin.cli import main as lavid

    data = {"a": [[0.5, 0.5], [], [0.1, 0.9]], "b": [[0.2, 0.8], [], [0.3, 0.7]]}
    path = tmp_path / "qwen_chat_3-2.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "s.safetensors"
    assert lavid(["signature", "import", str(path), "-o", str(out)]) == 0
    assert "dropping question(s) [2] of 3: no options" in capsys.readouterr().err
    sig = LLMSignature.load(out)
    assert sig.option_counts == [2, 2] and sig.provenance["dropped_empty_questions"] == [2]
    assert torch.allclose(sig.probs[1], torch.tensor([0.2, 0.8, 0.3, 0.7]))
    out.unlink()
    assert lavid(["signature", "import", str(path), "-o", str(out), "--strict"]) == 2
    assert "question(s) [2] have no options" in capsys.readouterr().err and not out.exists()


def _released_standin(path, names, rename=None, drop=()):
    """A file in the released per-group format, its classes named as the released files name them."""
    rename = rename or {}
    g = torch.Generator().manual_seed(0)
    data = {}
    for n in names:
        if n in drop:
            continue
        data[rename.get(n, n)] = torch.softmax(torch.randn(2, 3, generator=g), -1).tolist()
    path.write_text(json.dumps(data))
    return data


def test_released_imagenet_group_files_align_through_aliases(tmp_path):
    """Generated stand-ins with the released files' naming: CLIP-style names, typographic apostrophes,
    reordered alternatives, and the device group's two duplicate names collapsed into one entry each."""
    from lavid_plugin.cli import main as lavid
    from lavid_plugin.data.datasets import imagenet_group_classes

    cases = {
        "bird": ({"drake (male duck)": "duck"}, ()),
        "artifact": ({"handrail / baluster": "baluster / handrail"}, ()),
        "container": ({"coffeepot": "coffeemaker", "motor scooter": "vespa", "crate box": "crate"}, ()),
        "device": ({"cornet trumpet": "cornet", "potter's wheel": "potter\u2019s wheel"}, ("projectile", "dark glasses")),
    }
    for group, (rename, drop) in cases.items():
        names, _ = imagenet_group_classes(group)
        data = _released_standin(tmp_path / f"{group}.json", names, rename, drop)
        out = tmp_path / f"{group}.safetensors"
        assert lavid(["signature", "import", str(tmp_path / f"{group}.json"), "--imagenet-group", group,
                      "-o", str(out)]) == 0, group
        sig = LLMSignature.load(out)
        assert sig.class_names == names, group
        for n in names:
            released = {"projectile": "missile", "dark glasses": "sunglasses"}.get(n, rename.get(n, n))
            assert torch.allclose(sig.probs[names.index(n)], torch.tensor(data[released]).flatten()), (group, n)
    with pytest.raises(LavidError, match="no class for dataset class"):  # without the aliases it does not align
        import_reference_json(tmp_path / "bird.json", class_names=imagenet_group_classes("bird")[0])


def test_the_papers_appendix_names_align_to_every_group_it_lists(tmp_path):
    from conftest import SHARED
    from lavid_plugin.data.datasets import imagenet_group_classes

    path = SHARED / "paper" / "imagenet_groups_appendix.json"
    if not path.is_file():
        pytest.skip("../shared/paper is absent (only the project's developers and CI have it)")
    for group, released in json.loads(path.read_text()).items():
        _released_standin(tmp_path / "g.json", list(dict.fromkeys(released)))
        names, aliases = imagenet_group_classes(group)
        sig = import_reference_json(tmp_path / "g.json", class_names=names, aliases=aliases)
        assert sig.class_names == names and sig.num_classes == len(names), group


def test_written_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    import os

    from helpers import random_signature

    umask = os.umask(0o022)
    try:
        path = random_signature(["a", "b"]).save(tmp_path / "s.safetensors")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
