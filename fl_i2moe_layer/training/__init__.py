"""Training: the ``Trainer``, per-task ``metrics``, safetensors ``checkpoints`` and datasets."""

from __future__ import annotations

from fl_i2moe_layer.training.checkpoints import (
    checkpoint_model_kind,
    checkpoint_state,
    load_checkpoint,
    save_checkpoint,
)
from fl_i2moe_layer.training.data import FusionDataset, StreamedFusionDataset
from fl_i2moe_layer.training.metrics import classification_metrics
from fl_i2moe_layer.training.trainer import Trainer, TrainHistory, seed_everything

__all__ = ["FusionDataset", "StreamedFusionDataset", "TrainHistory", "Trainer",
           "checkpoint_model_kind", "checkpoint_state", "classification_metrics",
           "load_checkpoint", "save_checkpoint", "seed_everything"]
