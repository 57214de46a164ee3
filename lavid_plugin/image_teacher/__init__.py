"""Stage 1b: per-image precomputed teachers (an MLLM's answers or hidden states per training image).

:class:`~.bank.SampleBank` is their file format: safetensors tensors ``[N, ...]`` keyed by the
dataset's sample ids (image paths relative to ``DATASET.ROOT``), with JSON provenance.
"""

from .bank import SampleBank

__all__ = ["SampleBank"]
