"""Build, train, save and reload one run: the model of a :class:`RunConfig`, fitted with the
:class:`~fl_i2moe_layer.training.Trainer`, saved as ``best.safetensors`` + ``run.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import torch
from torch import nn

from fl_i2moe_layer.experiments.config import RUN_FILE, ModelKind, RunConfig
from fl_i2moe_layer.experiments.datasets import dataset_entry, load_splits
from fl_i2moe_layer.model import DenseFusion, FLI2MoE
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.training import FusionDataset, Trainer
from fl_i2moe_layer.training.checkpoints import checkpoint_model_kind, load_checkpoint
from fl_i2moe_layer.training.trainer import BEST


def build_model(config: RunConfig) -> ProjectedFusion:
    """A ``ProjectedFusion``: Linear + LayerNorm per modality from the backbone features to
    ``hidden_dim``, then FL-I2MoE or the dense baseline, initialised from ``config.seed``.

    Examples::

        >>> config = new_config("planted")
        >>> config.feature_dims = [384, 1280]
        >>> model = build_model(config)
    """
    kinds: dict[str, type[FLI2MoE] | type[DenseFusion]] = {"fl_i2moe": FLI2MoE,
                                                           "dense": DenseFusion}
    if config.model not in kinds:
        raise ValueError(f"model must be 'fl_i2moe' or 'dense', got {config.model!r}.")
    if not config.feature_dims:
        raise ValueError("config.feature_dims is empty: set the backbone feature sizes.")
    torch.manual_seed(config.seed)
    h = config.hidden_dim
    projections = [nn.Sequential(nn.Linear(d, h), nn.LayerNorm(h)) for d in config.feature_dims]
    fusion = kinds[config.model](len(config.feature_dims), h, config.num_classes,
                                 task=config.task, num_layers=config.num_layers,
                                 num_heads=config.num_heads, dropout=0.0)
    return ProjectedFusion(projections, fusion)


def fit_model(model: nn.Module, config: RunConfig, train: FusionDataset,
              val: FusionDataset | None, *, progress: bool = False,
              checkpoint_dir: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Fit with the run's training options; return the validation metrics (training
    metrics without a validation split)."""
    trainer = Trainer(model, lr=config.lr, batch_size=config.batch_size,
                      max_epochs=config.epochs, patience=config.patience, seed=config.seed,
                      monitor=config.monitor, progress=progress, checkpoint_dir=checkpoint_dir)
    trainer.fit(train, val)
    return {k: float(v) for k, v in trainer.evaluate(val if val is not None else train).items()}


def fit_run(config: RunConfig, train: FusionDataset, val: FusionDataset | None,
            out: str | os.PathLike[str], *, progress: bool = True) -> ProjectedFusion:
    """Build the run's model, fit it, and write ``best.safetensors`` and ``run.json`` (with
    the feature sizes and the validation metrics filled in) in ``out``."""
    config.feature_dims = [int(x.shape[-1]) for x in train.inputs]
    model = build_model(config)
    config.metrics = fit_model(model, config, train, val, progress=progress,
                               checkpoint_dir=out)
    config.save(out)
    return model


def train_run(config: RunConfig, out: str | os.PathLike[str], *,
              data_dir: str | os.PathLike[str] | None = None,
              cache_dir: str | os.PathLike[str] | None = None,
              progress: bool = True) -> ProjectedFusion:
    """Load and encode the training and validation splits of the run's dataset, then
    :func:`fit_run`.

    Examples::

        >>> config = new_config("planted", epochs=5)
        >>> model = train_run(config, "runs/planted")
        >>> sorted(config.metrics)[:2]
        ['accuracy', 'auroc']
    """
    entry = dataset_entry(config.dataset)
    train, val = load_splits(config, entry.splits[:2], data_dir=data_dir, cache_dir=cache_dir,
                             limit=config.split_limit, progress=progress)
    return fit_run(config, train.data, val.data, out, progress=progress)


def load_run(folder: str | os.PathLike[str], *, model: str | None = None
             ) -> tuple[RunConfig, ProjectedFusion]:
    """The run config and the model with its best weights, in eval mode.

    The model kind comes from the checkpoint, which records it (``"kind"`` in its model
    description); ``config.model`` is set from it.

    Args:
        folder: a run folder (``run.json`` and ``best.safetensors``).
        model (str, optional): ``"fl_i2moe"`` or ``"dense"``. Only needed for checkpoints
            written before the kind was recorded (default there: ``run.json``'s ``model``);
            with a checkpoint that records its kind, it must agree with it.

    Raises:
        ValueError: ``model`` contradicts the checkpoint, or ``run.json`` and the checkpoint
            describe different kinds (the folder mixes two runs).
    """
    config = RunConfig.load(folder)
    best = Path(folder) / BEST
    if model is not None and model not in ("fl_i2moe", "dense"):
        raise ValueError(f"model must be 'fl_i2moe' or 'dense', got {model!r}.")
    recorded = checkpoint_model_kind(best)
    if recorded is not None:
        if model is not None and model != recorded:
            raise ValueError(
                f"the model kind {model!r} was given (--model) but checkpoint {str(best)!r} "
                f"records a {recorded!r} model; leave the option out: the checkpoint's "
                "record is used."
            )
        if config.model != recorded:
            raise ValueError(
                f"{str(Path(folder) / RUN_FILE)!r} says model {config.model!r} but "
                f"{str(best)!r} holds a {recorded!r} model: the folder mixes two runs; train "
                "again into an empty folder."
            )
    config.model = cast(ModelKind, recorded or model or config.model)
    net = build_model(config)
    load_checkpoint(best, net)
    net.eval()
    return config, net
