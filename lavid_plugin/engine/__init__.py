"""Stage 2 engine: building a run (:mod:`.build`), the trainer, checkpoints, evaluation, logging."""

from .trainer import Trainer  # noqa: F401
