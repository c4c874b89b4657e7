"""A plain PyTorch training loop: seeded, Adam, early stopping, resumable checkpoints."""

from __future__ import annotations

import copy
import logging
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from captum_interactions.validation import (
    check_bool,
    check_float,
    check_positive_int,
    check_seed,
)
from fl_i2moe_layer.model.inputs import check_labels
from fl_i2moe_layer.model.losses import task_loss
from fl_i2moe_layer.progress import progress
from fl_i2moe_layer.training.checkpoints import (
    checkpoint_state,
    load_checkpoint,
    save_checkpoint,
)
from fl_i2moe_layer.training.metrics import METRICS, classification_metrics

DEFAULT_MONITOR = {"multiclass": "accuracy", "multilabel": "micro_f1", "binary": "auroc"}
LAST, BEST = "last.safetensors", "best.safetensors"
#: Trainer options that a resumed run must share with its checkpoint (they shape every step);
#: ``max_epochs`` and ``patience`` may change, they only decide when the run stops.
RESUME_FIXED = ("lr", "weight_decay", "batch_size", "monitor", "seed", "grad_clip")

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) in one call."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainHistory:
    """What :meth:`Trainer.fit` did.

    Attributes:
        train_loss: mean training loss per epoch.
        val_metrics: validation metrics per epoch (``loss`` and the task metrics).
        best_epoch: epoch (0-based) of the best monitored value; its weights are restored.
        best_value: that value.
        stopped_early: True if patience ran out before ``max_epochs``.
    """

    train_loss: list[float] = field(default_factory=list)
    val_metrics: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_value: float | None = None
    stopped_early: bool = False


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(b, device) for b in batch)
    return batch


class Trainer:
    """Train a fusion model (``FLI2MoE``, ``DenseFusion`` or ``ProjectedFusion``) with Adam.

    Every epoch is seeded from ``(seed, epoch)`` (shuffling, dropout, replacement noise), so a
    run is reproducible and a run resumed from its last checkpoint continues exactly as if it
    had never stopped: bit-identical weights and history at an unchanged number of intra-op
    threads (``torch.get_num_threads()``; multithreaded CPU kernels sum in an order that
    depends on it, so another count changes the last bits). With ``checkpoint_dir``,
    ``last.safetensors`` (model, optimizer, trainer state: epoch, patience counter, history,
    the options of :data:`RESUME_FIXED` plus ``max_epochs`` and ``patience``, and
    ``run_info``) is written after every epoch and ``best.safetensors`` when the monitored
    metric improves. At the end the best weights are restored.

    Args:
        model (nn.Module): has ``forward(inputs, masks)``, ``loss(out, labels)`` and
            ``config.task``.
        lr (float, optional): Adam learning rate. Default: 1e-3.
        weight_decay (float, optional): Adam weight decay. Default: 0.
        batch_size (int, optional): Default: 32.
        max_epochs (int, optional): Default: 20.
        patience (int, optional): epochs without improvement before stopping. Default: 5.
        monitor (str, optional): ``"loss"`` or one of accuracy, macro_f1, micro_f1, auroc
            (validation). ``"loss"`` is the task loss, or the whole training objective for
            a model whose ``monitors_objective`` is True (FL-I2MoE with
            ``objective="specialised"``: its routing keeps improving after the task loss has
            bottomed out). Default: accuracy (multiclass), micro_f1 (multilabel), auroc
            (binary).
        seed (int, optional): Default: 0.
        device (str or torch.device, optional): Default: the model's device.
        checkpoint_dir (str or Path, optional): where to write checkpoints. Default: none.
        grad_clip (float, optional): clip the gradient norm. Default: none.
        progress (bool, optional): progress over epochs and batches: tqdm bars on a terminal,
            periodic log lines otherwise (see :mod:`fl_i2moe_layer.progress`). Default: True.
        run_info (mapping, optional): a JSON-able description of the run, stored in every
            ``last.safetensors`` under ``"run"`` (read it back with
            :func:`~fl_i2moe_layer.training.checkpoints.checkpoint_state`), e.g. to check a
            resumed run's settings. Default: none.

    Examples::

        >>> trainer = Trainer(layer, lr=1e-3, max_epochs=30, patience=5,
        ...                   checkpoint_dir="runs/mmimdb")
        >>> history = trainer.fit(FusionDataset(train_x, train_m, train_y),
        ...                       FusionDataset(val_x, val_m, val_y))
        >>> trainer.evaluate(FusionDataset(test_x, test_m, test_y))["macro_f1"]
        >>> trainer.fit(train, val, resume=True)   # continue an interrupted run
    """

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 32, max_epochs: int = 20, patience: int = 5,
                 monitor: str | None = None, seed: int = 0,
                 device: str | torch.device | None = None,
                 checkpoint_dir: str | os.PathLike[str] | None = None,
                 grad_clip: float | None = None, progress: bool = True,
                 run_info: Mapping[str, Any] | None = None) -> None:
        task = getattr(getattr(model, "config", None), "task", None)
        if task is None:
            raise TypeError("model must have a config.task (an FLI2MoE, DenseFusion or "
                            "ProjectedFusion).")
        for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs),
                            ("patience", patience)):
            check_positive_int(name, value)
        check_seed(seed)
        lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
        weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        if grad_clip is not None:  # a negative norm would scale gradients up and flip them
            grad_clip = check_float("grad_clip", grad_clip, minimum=0.0, strict_minimum=True)
        progress = check_bool("progress", progress)
        if checkpoint_dir is not None and Path(checkpoint_dir).exists() \
                and not Path(checkpoint_dir).is_dir():
            raise ValueError(f"checkpoint_dir {str(checkpoint_dir)!r} is a file; pass a folder "
                             "(it is created if missing).")
        self.monitor = monitor or DEFAULT_MONITOR[task]
        if self.monitor not in (*METRICS, "loss"):
            raise ValueError(f"monitor must be 'loss' or one of {METRICS}, got {monitor!r}.")
        self.model: Any = model  # duck-typed: config, loss and forward of a fusion model
        self.task = task
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_epochs, self.patience, self.seed = max_epochs, patience, seed
        self.grad_clip, self.progress = grad_clip, progress
        self.device = torch.device(device) if device is not None else next(
            model.parameters()).device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.run_info = dict(run_info) if run_info is not None else None
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr,
                                          weight_decay=weight_decay)

    # -- helpers --------------------------------------------------------------------------
    def _loader(self, data: Dataset, *, shuffle: bool, epoch: int = 0) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          generator=generator)

    def options(self) -> dict[str, Any]:
        """The training options recorded in ``last.safetensors`` (``"options"``)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                "max_epochs": self.max_epochs, "patience": self.patience,
                "monitor": self.monitor, "seed": self.seed, "grad_clip": self.grad_clip}

    def _check_resumable(self, last: Path, state: dict[str, Any]) -> None:
        """Refuse to continue a checkpoint trained with other step-shaping options, or past
        ``max_epochs``."""
        saved, now = state.get("options"), self.options()
        if isinstance(saved, dict):  # checkpoints written before options were recorded: none
            diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}"
                    for k in RESUME_FIXED if k in saved and saved[k] != now[k]]
            if diff:
                raise ValueError(
                    f"cannot resume from {str(last)!r}: it was trained with other options "
                    f"({'; '.join(diff)}); only max_epochs and patience may change.")
        done = int(state["epoch"]) + 1
        if done > self.max_epochs:
            raise ValueError(
                f"cannot resume from {str(last)!r} with max_epochs={self.max_epochs}: it has "
                f"trained {done} epochs already; pass max_epochs >= {done}.")

    def _better(self, value: float, best: float | None) -> bool:
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value < best if self.monitor == "loss" else value > best

    # -- public ---------------------------------------------------------------------------
    def train_epoch(self, data: Dataset, epoch: int) -> float:
        """One pass over ``data``; returns the mean training loss."""
        seed_everything(self.seed * 100_003 + epoch)
        self.model.train()
        total, count = 0.0, 0
        batches = progress(self._loader(data, shuffle=True, epoch=epoch), desc=f"epoch {epoch}",
                           leave=False, disable=not self.progress, unit="batch")
        for inputs, masks, labels in batches:
            inputs, masks, labels = _move((inputs, masks, labels), self.device)
            out = self.model(inputs, masks)
            loss = self.model.loss(out, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            total += float(loss.detach()) * labels.shape[0]
            count += labels.shape[0]
            batches.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    @torch.no_grad()
    def predict(self, data: Dataset) -> tuple[Tensor, Tensor]:
        """(logits, labels) over ``data`` in eval mode."""
        _check_data("data", data)
        self.model.eval()
        logits, labels = [], []
        for inputs, masks, y in self._loader(data, shuffle=False):
            inputs, masks = _move((inputs, masks), self.device)
            logits.append(self.model(inputs, masks).logits.cpu())
            labels.append(y)
        return torch.cat(logits), torch.cat(labels)

    @torch.no_grad()
    def evaluate(self, data: Dataset) -> dict[str, float]:
        """Task loss and metrics (accuracy, macro_f1, micro_f1, auroc) on ``data``; for a
        model whose ``monitors_objective`` is True (FL-I2MoE with
        ``objective="specialised"``) also ``"objective"``, its whole training objective
        (eval mode, with the variants)."""
        logits, labels = self.predict(data)
        metrics = classification_metrics(logits, labels, self.task)
        config = self.model.config
        metrics["loss"] = float(task_loss(logits, check_labels(labels, config, len(labels)),
                                          self.task))
        if getattr(self.model, "monitors_objective", False):
            metrics["objective"] = self._objective(data)
        return metrics

    @torch.no_grad()
    def _objective(self, data: Dataset) -> float:
        """Mean training objective over ``data`` in eval mode (variants included)."""
        self.model.eval()
        total, count = 0.0, 0
        for inputs, masks, labels in self._loader(data, shuffle=False):
            inputs, masks, labels = _move((inputs, masks, labels), self.device)
            out = self.model(inputs, masks, compute_interactions=True)
            total += float(self.model.loss(out, labels)) * labels.shape[0]
            count += labels.shape[0]
        return total / max(count, 1)

    def fit(self, train_data: Dataset, val_data: Dataset | None = None, *,
            resume: bool = False) -> TrainHistory:
        """Train until ``max_epochs`` or early stopping; restore the best weights.

        Args:
            train_data (Dataset): items ``(inputs, masks, label)``, e.g. a
                :class:`~fl_i2moe_layer.training.FusionDataset`.
            val_data (Dataset, optional): for early stopping; without it the training loss
                is monitored.
            resume (bool, optional): continue from ``checkpoint_dir/last.safetensors`` if it
                exists (needs ``checkpoint_dir``; without the file, training starts at epoch
                0). ``max_epochs`` and ``patience`` may differ from the interrupted run's
                (e.g. to train longer); the options of :data:`RESUME_FIXED` may not.
                Default: False.

        Raises:
            ValueError: ``resume`` with a checkpoint trained with other options of
                :data:`RESUME_FIXED`, or more epochs than ``max_epochs``.
        """
        _check_data("train_data", train_data)
        if val_data is not None:
            _check_data("val_data", val_data)
        resume = check_bool("resume", resume)
        history, start, bad_epochs = TrainHistory(), 0, 0
        best_state: dict[str, Tensor] | None = None
        if resume:
            if self.checkpoint_dir is None:
                raise ValueError("resume=True needs a checkpoint_dir.")
            last = self.checkpoint_dir / LAST
            if last.is_file():
                self._check_resumable(last, checkpoint_state(last))
                state = load_checkpoint(last, self.model, self.optimizer)
                start, bad_epochs = state["epoch"] + 1, state["bad_epochs"]
                history = TrainHistory(**state["history"])
                history.stopped_early = False  # decided again below (patience may have grown)
                logger.info("resuming from epoch %d of %d (%s)", start, self.max_epochs, last)
                if (self.checkpoint_dir / BEST).is_file():
                    best_model = copy.deepcopy(self.model)
                    load_checkpoint(self.checkpoint_dir / BEST, best_model)
                    best_state = copy.deepcopy(best_model.state_dict())
            else:
                logger.info("no %s in %s: training from epoch 0", LAST,
                            str(self.checkpoint_dir))
        epochs = progress(range(start, self.max_epochs), desc="training",
                          disable=not self.progress, unit="epoch")
        for epoch in epochs:
            if bad_epochs >= self.patience:
                history.stopped_early = True
                break
            train_loss = self.train_epoch(train_data, epoch)
            history.train_loss.append(train_loss)
            if val_data is not None:
                metrics = self.evaluate(val_data)
                # "loss" watches the whole objective where the model asks for it
                value = metrics.get("objective", metrics["loss"]) if self.monitor == "loss" \
                    else metrics[self.monitor]
            else:
                metrics = {"loss": train_loss}
                value = train_loss if self.monitor == "loss" else -train_loss
            history.val_metrics.append(metrics)
            if self._better(value, history.best_value):
                history.best_epoch, history.best_value, bad_epochs = epoch, value, 0
                best_state = copy.deepcopy(self.model.state_dict())
                if self.checkpoint_dir is not None:
                    save_checkpoint(self.checkpoint_dir / BEST, self.model)
            else:
                bad_epochs += 1
            epochs.set_postfix({"train_loss": f"{train_loss:.4f}",
                                f"val_{self.monitor}": f"{value:.4f}"})
            if self.checkpoint_dir is not None:
                state = {"epoch": epoch, "bad_epochs": bad_epochs, "seed": self.seed,
                         "history": history.__dict__, "options": self.options()}
                if self.run_info is not None:
                    state["run"] = self.run_info
                save_checkpoint(self.checkpoint_dir / LAST, self.model, self.optimizer, state)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return history


def _check_data(name: str, data: Dataset) -> None:
    """A dataset with at least one item (an empty split would train on nothing and report
    NaN metrics)."""
    if not hasattr(data, "__len__"):
        raise TypeError(f"{name} must be a map-style Dataset with a length, got "
                        f"{type(data).__name__}.")
    if len(data) == 0:
        raise ValueError(f"{name} is empty: it holds no example (check the split and any "
                         "skipped items).")
