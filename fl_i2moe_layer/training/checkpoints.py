"""Checkpoints as safetensors: model weights, optimizer state and trainer state, with a
description of the model so that a checkpoint never loads into a differently built model.

safetensors stores tensors only (no pickled objects), so loading a checkpoint cannot run code;
the non-tensor parts (configuration, optimizer hyper-parameters, history) travel as JSON in
the file's metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fl_i2moe_layer.model.pretrained import model_kind
from fl_i2moe_layer.storage import atomic_save_file, load_file

FORMAT = "fl_i2moe_layer.checkpoint/1"


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Class, model kind (``"fl_i2moe"`` / ``"dense"``, also for a ``ProjectedFusion``; None
    for other modules), configuration (if any) and parameter shapes: what must match to load
    weights, and what ``load_run`` rebuilds the model from."""
    config: Any = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "kind": model_kind(model),
        "config": config.to_dict() if config is not None and hasattr(config, "to_dict") else None,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def check_compatible(saved: dict[str, Any], model: nn.Module, path: str | os.PathLike[str]
                     ) -> None:
    """Raise a ValueError naming what differs between a checkpoint and ``model``."""
    current = describe_model(model)
    where = f"checkpoint {str(path)!r}"
    if saved["class"] != current["class"]:
        raise ValueError(
            f"{where} holds a {saved['class']} but the model is a {current['class']}."
        )
    if saved.get("kind") is not None and saved["kind"] != current["kind"]:
        raise ValueError(
            f"{where} holds a {saved['kind']!r} model but the model is a "
            f"{current['kind']!r} one."
        )
    if saved["config"] != current["config"]:
        a, b = saved["config"] or {}, current["config"] or {}
        diff = [f"{k}: checkpoint {a.get(k)!r} vs model {b.get(k)!r}"
                for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise ValueError(f"{where} comes from another configuration ({'; '.join(diff)}).")
    if saved["shapes"] != current["shapes"]:
        names = sorted(k for k in set(saved["shapes"]) | set(current["shapes"])
                       if saved["shapes"].get(k) != current["shapes"].get(k))
        raise ValueError(f"{where} does not match the model's parameters: {names[:5]}.")


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            key = f"optim.{idx}.{name}"
            if isinstance(value, Tensor):
                tensors[key] = value.detach().cpu().clone().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    # JSON has no tuples: give hyper-parameters such as Adam's betas their tuple form back.
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v)
               for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def checkpoint_model_kind(path: str | os.PathLike[str]) -> str | None:
    """The model kind (``"fl_i2moe"`` or ``"dense"``) a checkpoint records, or None for a
    checkpoint written before the kind was recorded (only the header is read; loading the
    weights verifies the whole file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this package
            (:class:`~fl_i2moe_layer.storage.CorruptFileError` when unreadable).
    """
    from fl_i2moe_layer.storage import CorruptFileError

    meta = _header(path)
    try:
        description = json.loads(meta["model"])
    except (KeyError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"checkpoint {str(path)!r} has no readable model description "
                               f"({error}); it is not a file of this package.") from error
    if not isinstance(description, dict):
        raise ValueError(f"{str(path)!r} is not an fl_i2moe_layer checkpoint.")
    kind = description.get("kind")
    return kind if isinstance(kind, str) else None


def checkpoint_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The trainer state a checkpoint records (``{}`` if none), without loading its tensors:
    for ``last.safetensors`` written by the :class:`~fl_i2moe_layer.training.Trainer`,
    ``epoch`` (the last finished one, 0-based), ``bad_epochs``, ``seed``, ``history``,
    ``options`` (lr, batch size, epochs, patience, ...) and ``run`` (the ``run_info`` given to
    the trainer, e.g. ``fl-i2moe train``'s run description). Only the header is read; loading
    the weights verifies the whole file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this package
            (:class:`~fl_i2moe_layer.storage.CorruptFileError` when unreadable).

    Examples::

        >>> checkpoint_state("runs/planted/last.safetensors")["epoch"]
        39
    """
    meta = _header(path)
    state = json.loads(meta.get("state") or "{}")
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a malformed trainer state.")
    return state


def _header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a checkpoint of this package (header only)."""
    from fl_i2moe_layer.storage import read_metadata

    meta = read_metadata(path, what="checkpoint")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not an fl_i2moe_layer checkpoint.")
    return meta


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and optionally ``optimizer`` and a JSON-able trainer ``state``).

    Examples::

        >>> save_checkpoint("run/last.safetensors", layer, optimizer, {"epoch": 3})
        >>> load_checkpoint("run/last.safetensors", layer, optimizer)["epoch"]
        3
    """
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous()
               for k, v in model.state_dict().items()}
    meta: dict[str, str] = {
        "format": FORMAT,
        "model": json.dumps(describe_model(model)),
        "state": json.dumps(state or {}),
    }
    if optimizer is not None:
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
        meta["optimizer"] = json.dumps(opt_meta)
    return atomic_save_file(tensors, path, meta)


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) exactly; return the saved trainer state.

    Raises:
        ValueError: the file is not a checkpoint of this package, or it was saved from a
            model of another class, configuration or parameter shapes.
        CorruptFileError: the file is truncated or its tensors changed since it was saved
            (a ValueError; every message names the file).
    """
    path = Path(path)
    tensors, meta = load_file(path, what="checkpoint")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not an fl_i2moe_layer checkpoint.")
    check_compatible(json.loads(meta["model"]), model, path)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    if optimizer is not None:
        if "optimizer" not in meta:
            raise ValueError(f"checkpoint {str(path)!r} holds no optimizer state.")
        opt_tensors = {k: v for k, v in tensors.items() if k.startswith("optim.")}
        optimizer.load_state_dict(_unflatten_optimizer(opt_tensors,
                                                       json.loads(meta["optimizer"])))
    return json.loads(meta["state"])
