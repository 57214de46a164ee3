import pytest

from conftest import EXAMPLES
from lavid_plugin.errors import LavidError
from lavid_plugin.signature.questions import (Instantiator, Question, apply_validation, format_questions,
                                              parse_placeholder_specs, parse_questions_text, read_questions,
                                              validate_questions)


def test_every_reference_question_file_parses(reference):
    files = sorted((reference / "questions").glob("*/*.txt"))
    assert len(files) >= 9
    for f in files:
        qs, _ = read_questions(f)
        assert len(qs) >= 20, f
        assert all(q.num_options >= 2 and all(q.options) for q in qs), f
        assert all(not q.text[0].isdigit() for q in qs), f  # no option line taken for a question


def test_reference_known_facts(reference):
    qs, _ = read_questions(reference / "questions/cub200/chat_50-4.txt")
    assert len(qs) == 50 and {q.num_options for q in qs} == {4}
    rep = validate_questions(qs, source="chat_50-4")
    assert [i.line for i in rep.by_kind("no_placeholder")] == [175, 253]
    assert not rep.by_kind("option_count")

    qs, _ = read_questions(reference / "questions/flowers/chat_50.txt")  # U+2003 indentation
    assert "\u2003" in (reference / "questions/flowers/chat_50.txt").read_text(encoding="utf-8")
    assert len({q.num_options for q in qs}) > 1
    assert qs[0].options[0] == "Rounded and overlapping"
    rep = validate_questions(qs)
    assert rep.by_kind("option_count")


def test_messy_formatting():
    text = ("\ufeffΨ What colour is the class?  \r\n\t1. Red  \r\n\u2003\u20032) Blue\r\n"
            "Is the class big?\n  1. Yes\n  2. No\n\nHere are more questions:\n\nHow long is <object>?\n 1. Long\n 2. Short\n")
    qs, warns = parse_questions_text(text, "x.txt")
    assert [q.text for q in qs] == ["What colour is the class?", "Is the class big?", "How long is <object>?"]
    assert qs[0].options == ("Red", "Blue") and qs[0].line == 1 and qs[2].line == 10
    assert any("x.txt:8" in w and "stray" in w for w in warns)
    again, _ = parse_questions_text(format_questions(qs))
    assert [(q.text, q.options) for q in again] == [(q.text, q.options) for q in qs]


def test_placeholder_word_boundaries_only():
    inst = Instantiator()
    assert inst("What is the class's subclass classification?", "Blue Jay") == \
        "What is the Blue Jay's subclass classification?"
    assert inst("The class eats <object>.", "Wren") == "The Wren eats Wren."
    custom = Instantiator(parse_placeholder_specs(["the flower"]))
    assert custom("Is the flower's stem (the flowerbed) long?", "Rose") == "Is the Rose's stem (the flowerbed) long?"
    assert not inst.has_placeholder("What is the typical upperwing coloration?")


def test_validation_report_and_modes():
    qs = [Question("Colour of the class?", ("Red", "Blue Jay", ""), 1), Question("Size?", ("a", "b", "c"), 6),
          Question("colour of the  class?", ("x", "y", "z"), 11), Question("Beak of the class?", ("x", "y"), 16)]
    rep = validate_questions(qs, class_names=["Blue Jay"], source="q.txt")
    kinds = {(i.kind, i.line) for i in rep.issues}
    assert kinds == {("option_has_class", 1), ("empty_option", 1), ("no_placeholder", 6), ("duplicate", 11),
                     ("option_count", 16)}
    with pytest.raises(LavidError, match="q.txt:6"):
        apply_validation(qs, rep, "strict", warn=lambda m: None)
    with pytest.raises(LavidError, match="every question was dropped"):
        apply_validation(qs, rep, "lenient", warn=lambda m: None)
    assert apply_validation(qs, rep, "warn", warn=lambda m: None) == qs


def test_file_without_questions_is_a_clear_error(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("Just some notes\n\nno options here\n")
    with pytest.raises(LavidError, match=r"empty\.txt: no questions found"):
        read_questions(f)


def test_example_files_are_valid_apart_from_variable_m():
    qs, warns = read_questions(EXAMPLES / "birds_questions.txt")
    assert len(qs) == 6 and not warns
    rep = validate_questions(qs)
    assert {i.kind for i in rep.issues} <= {"option_count"}


def test_default_generation_prompt_is_the_papers_a5_text():
    from conftest import SHARED

    paper = SHARED / "paper" / "mcq_generation_prompt.txt"
    if not paper.is_file():
        pytest.skip("../shared/paper is absent (only the project's developers and CI have it)")
    from lavid_plugin.signature.prompts import generation_prompt

    names = ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    ours = generation_prompt(names, 50, 5)
    # the appendix's line breaks are typesetting and its "Ψ" an indentation: equal up to whitespace
    want = paper.read_text(encoding="utf-8").replace("Ψ", " ").replace("<classes>", ", ".join(names))
    assert " ".join(ours.split()) == " ".join(want.split())
    assert "Generate 20 questions" in generation_prompt(names, 20, 3) and "have 3 answer" in generation_prompt(names, 20, 3)
    assert "Write 50 multiple-choice" in generation_prompt(names, 50, 5, template="plugin")
