"""Stage 1: class names -> questions -> answers -> :class:`LLMSignature`."""

from .questions import Instantiator, Question, read_questions, validate_questions  # noqa: F401
from .llm_signature import LLMSignature, read_class_names  # noqa: F401
