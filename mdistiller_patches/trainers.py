"""The bridge, trainer part: ``ours`` (the fork's two-view trainer) for upstream mdistiller.

Upstream's ``BaseTrainer.train_iter`` passes one ``image`` tensor to the distiller. The two-view
trainer packs the ``(weak, strong)`` pair into one ``[B, 2, C, H, W]`` tensor and runs the base
trainer's own ``train_iter``; the plugin's distillers unpack it (``Distiller.forward``)."""

from __future__ import annotations


def two_view_trainer(base):
    class TwoViewTrainer(base):
        def train_iter(self, data, epoch, train_meters):
            import torch

            (weak, strong), target, index, *rest = data
            return super().train_iter((torch.stack((weak, strong), 1), target, index, *rest), epoch, train_meters)

    return TwoViewTrainer


def register_trainers(trainer_dict: dict) -> list[str]:
    if "ours" in trainer_dict:
        return []
    trainer_dict["ours"] = two_view_trainer(trainer_dict["base"])
    return ["ours"]
