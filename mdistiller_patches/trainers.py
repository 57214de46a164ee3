"""The bridge, trainer part: trainers the plugin's distillers need that mdistiller lacks.

* ``ours`` (the fork's two-view trainer) for upstream mdistiller. Upstream's ``BaseTrainer.train_iter``
  passes one ``image`` tensor to the distiller. The two-view trainer packs the ``(weak, strong)`` pair
  into one ``[B, 2, C, H, W]`` tensor and runs the base trainer's own ``train_iter``; the plugin's
  distillers unpack it (``Distiller.forward``).
* ``sample``: mdistiller's ``train_iter`` does not hand the distiller the batch's sample ``index``,
  which a per-image teacher bank (MaKD, FitNet/CRD on MLLM features) is looked up by. This trainer
  runs the base trainer's own ``train_iter`` with the distiller called with ``index=`` (and
  ``contrastive_index=`` when the loader yields it) added; under ``DataParallel`` they are scattered
  with the images."""

from __future__ import annotations


def two_view_trainer(base):
    class TwoViewTrainer(base):
        def train_iter(self, data, epoch, train_meters):
            import torch

            (weak, strong), target, index, *rest = data
            return super().train_iter((torch.stack((weak, strong), 1), target, index, *rest), epoch, train_meters)

    return TwoViewTrainer


class _WithSample:
    """The distiller, called with the batch's sample indices added to its keyword arguments."""

    def __init__(self, module, extra: dict):
        self._module, self._extra = module, extra

    def __call__(self, **kwargs):
        return self._module(**kwargs, **self._extra)

    def __getattr__(self, name):
        return getattr(self._module, name)


def sample_trainer(base):
    class SampleTrainer(base):
        def train_iter(self, data, epoch, train_meters):
            image, target, index, *rest = data
            device = next(self.distiller.parameters()).device
            extra = {"index": index.to(device, non_blocking=True)}
            if rest:
                extra["contrastive_index"] = rest[0].to(device, non_blocking=True)
            inner, self.distiller = self.distiller, _WithSample(self.distiller, extra)
            try:
                return super().train_iter((image, target, index), epoch, train_meters)
            finally:
                self.distiller = inner

    return SampleTrainer


def register_trainers(trainer_dict: dict) -> list[str]:
    added = []
    if "ours" not in trainer_dict:
        trainer_dict["ours"] = two_view_trainer(trainer_dict["base"])
        added.append("ours")
    if "sample" not in trainer_dict:
        trainer_dict["sample"] = sample_trainer(trainer_dict["base"])
        added.append("sample")
    return added
