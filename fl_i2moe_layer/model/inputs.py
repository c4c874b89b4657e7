"""Validation of the layer's inputs: token sequences, padding masks and presence masks.

Every check names the offending argument, so that a user who passes, say, image patches of the
wrong width learns which tensor is wrong before any kernel runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fl_i2moe_layer.model.config import FusionConfig

MaskList = Sequence[Tensor] | None


def _as_sequence(name: str, value: object) -> Sequence[Tensor]:
    if isinstance(value, Tensor) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{name} must be a list or tuple with one tensor per modality, got "
            f"{type(value).__name__}."
        )
    return value


def _bool_mask(name: str, mask: object, rows: int, length: int) -> Tensor:
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(mask).__name__}.")
    if tuple(mask.shape) != (rows, length):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, expected ({rows}, {length}): one flag per "
            "token of the matching input, True (or 1) where the token is present."
        )
    if mask.dtype == torch.bool:
        return mask
    if mask.dtype.is_complex:
        raise TypeError(f"{name} must be boolean or 0/1 numbers, got {mask.dtype}.")
    return mask != 0


def _finite_tokens(name: str, x: Tensor, valid: Tensor) -> Tensor:
    """``x`` with non-finite padded positions zeroed; a non-finite real token raises."""
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return x
    real_bad = ~finite.all(-1) & valid
    if bool(real_bad.any()):
        b, t = real_bad.nonzero()[0].tolist()
        raise ValueError(
            f"{name} holds NaN or Inf in a real (unmasked) token, e.g. example {b}, token {t}: "
            "fix the features, or mark the token as padding in masks."
        )
    return torch.where(valid.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))


def check_inputs(
    inputs: object, masks: object, presence: object, config: FusionConfig,
    parameter: Tensor | None = None,
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Validate the forward arguments and combine padding and presence masks.

    Padded positions are set to 0 when they hold NaN or Inf (they are ignored, but NaN times a
    zero attention weight is still NaN); a non-finite real token is an error.

    Args:
        parameter: a parameter of the layer: the inputs must match its dtype and device.

    Returns:
        the inputs as a tuple, and one bool "keep" mask (B, T_m) per modality: True where the
        token is both a real token (``masks``) and present (``presence``).
    """
    seq = _as_sequence("inputs", inputs)
    m = config.num_modalities
    if len(seq) != m:
        raise ValueError(
            f"inputs has {len(seq)} tensors but the layer was built with num_modalities={m}."
        )
    batch: int | None = None
    for i, x in enumerate(seq):
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{i}] must be a tensor, got {type(x).__name__}.")
        if x.dim() != 3:
            raise ValueError(
                f"inputs[{i}] has shape {tuple(x.shape)}; expected (batch, tokens, hidden_dim)."
            )
        if x.shape[-1] != config.hidden_dim:
            raise ValueError(
                f"inputs[{i}] has hidden size {x.shape[-1]} but the layer expects hidden_dim="
                f"{config.hidden_dim}: project every modality to hidden_dim first."
            )
        if x.shape[1] < 1 or x.shape[1] > config.max_len:
            raise ValueError(
                f"inputs[{i}] has {x.shape[1]} tokens; between 1 and max_len={config.max_len} "
                "are supported."
            )
        if batch is None:
            batch = x.shape[0]
        elif x.shape[0] != batch:
            raise ValueError(
                f"inputs[{i}] has batch size {x.shape[0]} but inputs[0] has {batch}."
            )
    assert batch is not None
    if batch == 0:
        raise ValueError("inputs have batch size 0.")
    if not all(x.dtype == seq[0].dtype and x.device == seq[0].device for x in seq):
        raise ValueError("inputs must share one dtype and one device.")
    if not seq[0].dtype.is_floating_point:
        raise TypeError(f"inputs must be float tensors (projected tokens), got {seq[0].dtype}.")
    if parameter is not None and (seq[0].dtype, seq[0].device) != (parameter.dtype,
                                                                    parameter.device):
        raise TypeError(
            f"inputs are {seq[0].dtype} on {seq[0].device} but the layer's parameters are "
            f"{parameter.dtype} on {parameter.device}: cast the inputs (e.g. x.float(), "
            "x.to(device)) or the layer (layer.to(dtype/device))."
        )
    lengths = [x.shape[1] for x in seq]

    if masks is None:
        valid = tuple(torch.ones(batch, t, dtype=torch.bool, device=seq[0].device)
                      for t in lengths)
    else:
        mask_seq = _as_sequence("masks", masks)
        if len(mask_seq) != m:
            raise ValueError(f"masks has {len(mask_seq)} tensors but inputs has {m}.")
        valid = tuple(_bool_mask(f"masks[{i}]", mk, batch, t)
                      for i, (mk, t) in enumerate(zip(mask_seq, lengths, strict=True)))
        # Padding may empty one modality (a missing modality), but an example made only of
        # padding has nothing to fuse: every expert would pool an empty set.
        any_token = torch.stack([v.any(1) for v in valid], 1).any(1)
        if not bool(any_token.all()):
            bad = int((~any_token).nonzero()[0, 0])
            raise ValueError(
                f"masks mark example {bad} as all padding in every modality; each example "
                "needs at least one real token (remove the example instead)."
            )
    seq = [_finite_tokens(f"inputs[{i}]", x, v) for i, (x, v) in enumerate(
        zip(seq, valid, strict=True))]
    if presence is None:
        return tuple(seq), valid
    pres_seq = _as_sequence("presence", presence)
    if len(pres_seq) != m:
        raise ValueError(f"presence has {len(pres_seq)} tensors but inputs has {m}.")
    keep = tuple(v & _bool_mask(f"presence[{i}]", p, batch, t)
                 for i, (v, p, t) in enumerate(zip(valid, pres_seq, lengths, strict=True)))
    return tuple(seq), keep


def check_labels(labels: object, config: FusionConfig, batch: int) -> Tensor:
    """Check labels against the task and return them in the dtype the task loss needs."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a tensor, got {type(labels).__name__}.")
    c = config.num_classes
    if config.task == "multiclass":
        if tuple(labels.shape) != (batch,):
            raise ValueError(
                f"labels has shape {tuple(labels.shape)}; task='multiclass' expects ({batch},) "
                "class indices."
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise TypeError(f"labels for task='multiclass' must be integers, got {labels.dtype}.")
        if bool(((labels < 0) | (labels >= c)).any()):
            raise ValueError(f"labels must be class indices in [0, {c}).")
        return labels.long()
    if config.task == "multilabel":
        if tuple(labels.shape) != (batch, c):
            raise ValueError(
                f"labels has shape {tuple(labels.shape)}; task='multilabel' expects ({batch}, {c})"
                " 0/1 indicators."
            )
    elif tuple(labels.shape) not in ((batch,), (batch, 1)):
        raise ValueError(
            f"labels has shape {tuple(labels.shape)}; task='binary' expects ({batch},) or "
            f"({batch}, 1) 0/1 labels."
        )
    values = labels.float()
    if bool(((values != 0) & (values != 1)).any()):
        raise ValueError(f"labels for task={config.task!r} must be 0 or 1.")
    return values.reshape(batch, c)
