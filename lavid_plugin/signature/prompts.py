"""Prompt texts of Stage 1: the question-generation prompt and the answer prompt."""

from __future__ import annotations

from typing import Sequence

from .questions import Question

#: The authors' answer prompt (user message only; the chat template adds its default system prompt).
#: ``{label_kind}`` is "number" or "letter"; ``{question}`` the instantiated question; ``{options}``
#: the labelled options joined by spaces ("1. Red 2. Black ...").
AUTHORS_ANSWER_TEMPLATE = "Answer only with the option {label_kind}. No additional commentary. {question} {options}"

#: For base models without a chat template.
PLAIN_CHAT_WRAPPER = "{content}\nAnswer:"


def option_labels(num_options: int, kind: str = "number") -> list[str]:
    if kind == "number":
        return [str(i) for i in range(1, num_options + 1)]
    if kind == "letter":
        if num_options > 26:
            raise ValueError(f"letter labels support at most 26 options, got {num_options}")
        return [chr(ord("A") + i) for i in range(num_options)]
    raise ValueError(f"option label kind must be 'number' or 'letter', got {kind!r}")


def answer_message(question_text: str, options: Sequence[str], *, template: str = AUTHORS_ANSWER_TEMPLATE,
                   label_kind: str = "number") -> str:
    labels = option_labels(len(options), label_kind)
    opts = " ".join(f"{lab}. {o}" for lab, o in zip(labels, options))
    return template.format(label_kind=label_kind, question=question_text, options=opts)


#: The question-generation prompt of the paper's appendix A.5, verbatim ("Its best" included), with
#: the paper's 50 questions and 5 options as ``{num_questions}``/``{num_options}`` and its
#: ``<classes>`` as ``{classes}``; the appendix's line breaks are typesetting and are not kept.
PAPER_GENERATION_TEMPLATE = """Your task:
1. Generate {num_questions} questions for distinguishing between the classes in a dataset with the requirements below.
2. Each question should be centered around visual concepts while slight deviation is acceptable. An example of a deviation would be about the environment.
3. Each question should have {num_options} answer options and each class can only have one correct answer option. Its best to maximize the number classes that each pick a different answer option.
4. Each question should contain the class in the question.
5. Questions should maximize the separation between classes like a decision tree maximizing entropy.
6. Use your understanding of all of the classes and their visual differences to create these questions.
7. Only output ALL of the questions and answer options.
8. Do not repeat questions.
9. Do not write code.
10. Do not include class names in the answer options.
The classes:
{classes}
Output format:
- For each question, use the specific format:
    [Question]
    1. [Option 1]
- Do not add additional commentary.
- Do not include the square brackets in the answer.
- Do not number the questions."""


def _plugin_prompt(class_names: Sequence[str], num_questions: int, num_options: int, description: str | None) -> str:
    """The plugin's own wording of the same requirements (names "the class" as the placeholder, asks
    to spread the classes over the options, spells out the output format)."""
    lines = [
        "Your task:",
        f"1. Write {num_questions} multiple-choice questions that tell apart the classes of an image "
        "classification dataset" + (f" ({description})." if description else "."),
        "2. Each question is about a visual concept (colour, shape, pattern, size, parts); a small "
        "deviation such as the typical environment is acceptable.",
        f"3. Each question has exactly {num_options} answer options. Every class has exactly one correct "
        "option; spread the classes over the options as evenly as you can.",
        '4. Each question refers to the class with the words "the class", e.g. "What colour is the beak of the class?".',
        "5. Together the questions separate the classes like a decision tree that maximises information: "
        "avoid questions every class answers the same way.",
        "6. Use what you know of all the classes and their visual differences.",
        "7. Never name a class in an answer option.",
        "8. Do not repeat a question. Do not write code or commentary.",
        "",
        "The classes: " + "; ".join(class_names),
        "",
        "Output format, exactly, with a blank line between questions:",
        "[Question]",
        "1. [Option 1]",
        "...",
        f"{num_options}. [Option {num_options}]",
        "Do not number the questions and do not include the square brackets.",
    ]
    return "\n".join(lines)


def _paper_prompt(class_names: Sequence[str], num_questions: int, num_options: int, description: str | None) -> str:
    text = PAPER_GENERATION_TEMPLATE.format(num_questions=num_questions, num_options=num_options,
                                            classes=", ".join(class_names))
    if description:  # not in the paper: said only when the user gives one
        text = text.replace("\nThe classes:", f"\nThe dataset: {description}\nThe classes:", 1)
    return text


#: ``lavid signature questions --prompt NAME``: "paper" (appendix A.5, the default) or "plugin"
GENERATION_PROMPTS = {"paper": _paper_prompt, "plugin": _plugin_prompt}


def generation_prompt(class_names: Sequence[str], num_questions: int, num_options: int,
                      description: str | None = None, existing: Sequence[Question] = (), *,
                      template: str = "paper") -> str:
    """The question-generation prompt: the paper's appendix A.5 text by default.

    ``existing`` lists questions already accepted, so a follow-up request asks only for new ones.
    """
    if template not in GENERATION_PROMPTS:
        raise ValueError(f"generation prompt must be one of {sorted(GENERATION_PROMPTS)}, got {template!r}")
    text = GENERATION_PROMPTS[template](class_names, num_questions, num_options, description)
    if existing:
        text += "\n\n" + "\n".join([f"These {len(existing)} questions are already written; do not repeat them or "
                                     "ask the same thing:"] + [f"- {q.text}" for q in existing])
    return text
