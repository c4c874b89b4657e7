"""Build, train, save and reload one run: the model of a :class:`RunConfig`, fitted with the
:class:`~fl_i2moe_layer.training.Trainer`, saved as ``best.safetensors`` + ``run.json``.

A run folder also holds ``last.safetensors`` (weights, Adam state, epoch, history and the run
description, written after every epoch): ``train_run(..., resume=True)`` (``fl-i2moe train
--resume``) continues an interrupted run from it.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from fl_i2moe_layer.experiments.config import RUN_FILE, ModelKind, RunConfig
from fl_i2moe_layer.experiments.datasets import dataset_entry, load_splits
from fl_i2moe_layer.model import DenseFusion, FLI2MoE
from fl_i2moe_layer.model.projected import ProjectedFusion
from fl_i2moe_layer.training import Trainer
from fl_i2moe_layer.training.checkpoints import (
    checkpoint_model_kind,
    checkpoint_state,
    load_checkpoint,
)
from fl_i2moe_layer.training.data import SplitData
from fl_i2moe_layer.training.trainer import BEST, LAST

#: RunConfig fields that a resumed run may change: they only decide when training stops
#: (``metrics`` and ``format`` are outputs).
RESUME_MAY_CHANGE = ("epochs", "patience", "metrics", "format")


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
    options: dict[str, Any] = {"objective": config.objective} if config.model == "fl_i2moe" \
        else {}
    fusion = kinds[config.model](len(config.feature_dims), h, config.num_classes,
                                 task=config.task, num_layers=config.num_layers,
                                 num_heads=config.num_heads, dropout=config.dropout, **options)
    return ProjectedFusion(projections, fusion)


def fit_model(model: nn.Module, config: RunConfig, train: SplitData,
              val: SplitData | None, *, progress: bool = False,
              checkpoint_dir: str | os.PathLike[str] | None = None,
              resume: bool = False) -> dict[str, float]:
    """Fit with the run's training options (every one of them: lr, batch size, epochs,
    patience, monitor, seed); return the validation metrics (training metrics without a
    validation split). With ``checkpoint_dir`` every ``last.safetensors`` also records the
    run description (:func:`run_description`); ``resume`` continues from it
    (:meth:`Trainer.fit <fl_i2moe_layer.training.Trainer.fit>`)."""
    trainer = Trainer(model, lr=config.lr, batch_size=config.batch_size,
                      max_epochs=config.epochs, patience=config.patience, seed=config.seed,
                      monitor=config.monitor, progress=progress, checkpoint_dir=checkpoint_dir,
                      run_info=run_description(config))
    trainer.fit(train, val, resume=resume)
    return {k: float(v) for k, v in trainer.evaluate(val if val is not None else train).items()}


def run_description(config: RunConfig) -> dict[str, Any]:
    """``config`` as recorded in every ``last.safetensors`` (without the metrics), so that a
    resumed run can be checked against the interrupted one."""
    description = asdict(config)
    description.pop("metrics")
    return description


def check_resume(config: RunConfig, out: str | os.PathLike[str]) -> None:
    """Refuse to resume ``out/last.safetensors`` with fewer ``epochs`` than it has trained,
    or with a config that differs from the interrupted run's in anything but
    :data:`RESUME_MAY_CHANGE` (feature sizes that are not filled in yet are not compared).
    Nothing to check without the file; only the epochs for a checkpoint that records no run
    description."""
    last = Path(out) / LAST
    if not last.is_file():
        return
    state = checkpoint_state(last)
    done = int(state.get("epoch", -1)) + 1
    if done > config.epochs:
        raise ValueError(
            f"cannot resume the run in {str(out)!r} with epochs={config.epochs}: it has "
            f"trained {done} epochs already; pass --epochs (epochs) >= {done}, the total.")
    saved = state.get("run")
    if not isinstance(saved, dict):
        return
    now = run_description(config)
    skip = set(RESUME_MAY_CHANGE) | ({"feature_dims"} if not config.feature_dims else set())
    diff = [f"{k}: run {saved.get(k)!r} vs now {now.get(k)!r}"
            for k in sorted(set(saved) | set(now))
            if k not in skip and saved.get(k) != now.get(k)]
    if diff:
        raise ValueError(
            f"cannot resume the run in {str(out)!r} with other options ({'; '.join(diff)}): "
            "pass the options of the interrupted run (only the epochs and the patience may "
            "change), or train into another folder.")


def check_run_folder(out: str | os.PathLike[str], resume: bool) -> None:
    """What :func:`train_run` accepts as its ``out`` folder.

    Without ``resume``, a folder that already holds a run (``last.safetensors``,
    ``best.safetensors`` or ``run.json``) is refused rather than overwritten. With ``resume``,
    the folder must hold ``last.safetensors`` or no run at all (then training starts at
    epoch 0, so that a job can always be restarted with the same command).

    Raises:
        FileExistsError: the folder holds a run and ``resume`` is False.
        FileNotFoundError: ``resume`` and the folder holds a run without
            ``last.safetensors``.
    """
    folder = Path(out)
    present = [name for name in (LAST, BEST, RUN_FILE) if (folder / name).is_file()]
    if not present:
        return
    if not resume:
        raise FileExistsError(
            f"run folder {str(folder)!r} already holds a run ({', '.join(present)}): pass "
            "--resume (resume=True) to continue it, or another --out folder (or delete this "
            "one) to train from scratch.")
    if LAST not in present:
        raise FileNotFoundError(
            f"run folder {str(folder)!r} holds no {LAST} to resume from (only "
            f"{', '.join(present)}); train into another folder.")


def fit_run(config: RunConfig, train: SplitData, val: SplitData | None,
            out: str | os.PathLike[str], *, progress: bool = True,
            resume: bool = False) -> ProjectedFusion:
    """Build the run's model, fit it, and write ``best.safetensors`` and ``run.json`` (with
    the feature sizes and the validation metrics filled in) in ``out``.

    Without ``resume`` an earlier run in ``out`` is overwritten (the demo retrains into the
    same folders; :func:`train_run` refuses instead). With ``resume`` training continues from
    ``out/last.safetensors`` if it exists, bit-identically to an uninterrupted run at the same
    number of intra-op threads; ``config`` must match the interrupted run's except for
    ``epochs`` and ``patience`` (:func:`check_resume`)."""
    config.feature_dims = train.feature_dims
    if resume:
        check_resume(config, out)
    model = build_model(config)
    config.metrics = fit_model(model, config, train, val, progress=progress,
                               checkpoint_dir=out, resume=resume)
    config.save(out)
    return model


def train_run(config: RunConfig, out: str | os.PathLike[str], *,
              data_dir: str | os.PathLike[str] | None = None,
              cache_dir: str | os.PathLike[str] | None = None,
              progress: bool = True, resume: bool = False) -> ProjectedFusion:
    """Load and encode the training and validation splits of the run's dataset, then
    :func:`fit_run`.

    ``out`` must not hold a run yet unless ``resume`` is True; then training continues from
    ``out/last.safetensors`` (see :func:`check_run_folder`, :func:`check_resume`). Both are
    checked before any data is loaded.

    Examples::

        >>> config = new_config("planted", epochs=5)
        >>> model = train_run(config, "runs/planted")
        >>> sorted(config.metrics)[:2]
        ['accuracy', 'auroc']
        >>> config = new_config("planted", epochs=10)   # train 5 more epochs
        >>> model = train_run(config, "runs/planted", resume=True)
    """
    entry = dataset_entry(config.dataset)
    check_run_folder(out, resume)
    if resume:
        check_resume(config, out)
    train, val = load_splits(config, entry.splits[:2], data_dir=data_dir, cache_dir=cache_dir,
                             limit=config.split_limit, progress=progress)
    return fit_run(config, train.data, val.data, out, progress=progress, resume=resume)


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
