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


def generation_prompt(class_names: Sequence[str], num_questions: int, num_options: int,
                      description: str | None = None, existing: Sequence[Question] = ()) -> str:
    """The question-generation prompt (the requirements of the paper's appendix A.5).

    ``existing`` lists questions already accepted, so a follow-up request asks only for new ones.
    """
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
        f"...",
        f"{num_options}. [Option {num_options}]",
        "Do not number the questions and do not include the square brackets.",
    ]
    if existing:
        lines += ["", f"These {len(existing)} questions are already written; do not repeat them or ask the same thing:"]
        lines += [f"- {q.text}" for q in existing]
    return "\n".join(lines)
