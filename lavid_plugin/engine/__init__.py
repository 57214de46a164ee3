"""Stage 2 engine: trainer, checkpoints, evaluation, logging."""

from .trainer import Trainer  # noqa: F401

trainer_dict = {"base": Trainer}
