"""Hugging Face-style folders: ``model.save_pretrained(folder)`` and
``Class.from_pretrained(folder)``.

A folder holds two files:

* ``config.json``: the format version, the model kind (``"fl_i2moe"``, ``"dense"`` or
  ``"projected"``), the class name, the constructor configuration, the parameters' dtype and the
  package version that wrote it;
* ``model.safetensors``: the weights (no pickle), with the model kind and a ``sha256`` digest of
  the tensors in its metadata (written and verified by :mod:`fl_i2moe_layer.storage`).

Both are written through a temporary file and a rename, the weights first, so a folder whose
``config.json`` is present never pairs it with half-written weights. Only local folders are read:
``from_pretrained`` never contacts the Hugging Face Hub, and a Hub-like name that is not a folder
here raises a :class:`FileNotFoundError` saying so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from fl_i2moe_layer.storage import (
    CorruptFileError,
    atomic_save_file,
    atomic_write_text,
    load_file,
)

PRETRAINED_FORMAT = "fl_i2moe_layer.pretrained/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_RESAVE = "save the model again with save_pretrained(folder)"

#: model kind -> class, filled by the classes that set ``model_kind``.
MODEL_KINDS: dict[str, type[PretrainedMixin]] = {}

T = TypeVar("T", bound="PretrainedMixin")


def package_version() -> str:
    """The installed version of the distribution that ships ``fl_i2moe_layer``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("captum-interactions")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        from captum_interactions import __version__

        return __version__


def model_kind(model: nn.Module) -> str | None:
    """``"fl_i2moe"`` or ``"dense"`` for a fusion layer or a ``ProjectedFusion`` around one
    (what a training run records), None for any other module."""
    fusion = getattr(model, "fusion", model)
    kind = getattr(type(fusion), "model_kind", None)
    return kind if kind in ("fl_i2moe", "dense") else None


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for the package's models.

    A subclass sets ``model_kind`` and implements :meth:`pretrained_config` (JSON-able
    constructor configuration) and :meth:`_from_pretrained_config` (build an untrained model
    from it).
    """

    model_kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("model_kind")
        if kind is not None:
            MODEL_KINDS[kind] = cls

    def pretrained_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_pretrained_config(cls: type[T], config: dict[str, Any]) -> T:  # pragma: no cover
        raise NotImplementedError

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/config.json`` and ``folder/model.safetensors`` (the folder is created
        if missing; earlier files there are replaced atomically). Returns the folder.

        Examples::

            >>> layer.save_pretrained("models/fl_i2moe")
            >>> same = FLI2MoE.from_pretrained("models/fl_i2moe")
        """
        if not isinstance(self, nn.Module):  # pragma: no cover - mixin misuse
            raise TypeError("save_pretrained needs an nn.Module.")
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"save_pretrained: {str(folder)!r} is a file; pass a folder (it is "
                             "created if missing).")
        config = self.pretrained_config()
        state = self.state_dict()
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        dtype = str(next(iter(dtypes))).removeprefix("torch.") if len(dtypes) == 1 else None
        atomic_save_file(dict(state), folder / WEIGHTS_NAME,
                         {"format": PRETRAINED_FORMAT, "model_kind": self.model_kind})
        document = {
            "format": PRETRAINED_FORMAT,
            "model_kind": self.model_kind,
            "class": type(self).__name__,
            "config": config,
            "torch_dtype": dtype,
            "library_version": package_version(),
        }
        atomic_write_text(folder / CONFIG_NAME, json.dumps(document, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls: type[T], folder: str | os.PathLike[str], *,
                        device: str | torch.device | None = None) -> T:
        """The model saved in ``folder`` by :meth:`save_pretrained`, in eval mode.

        Only local folders are read (never the Hugging Face Hub).

        Args:
            folder (str or Path): the folder holding ``config.json`` and ``model.safetensors``.
            device (str or torch.device, optional): where to put the model. Default: CPU.

        Raises:
            FileNotFoundError: ``folder`` is not a folder (a Hub name is not downloaded), or
                one of its two files is missing.
            ValueError: ``config.json`` is not a configuration written by ``save_pretrained``
                (:class:`~fl_i2moe_layer.storage.CorruptFileError`), it describes another
                kind of model than ``cls``, or the weights do not fit it (every message names
                the file and what to do).
        """
        document = read_pretrained_config(folder)
        kind = document["model_kind"]
        config_path = Path(folder) / CONFIG_NAME
        expected = getattr(cls, "model_kind", None)  # None on a base class: any kind
        if expected is not None and expected != kind:
            loader = MODEL_KINDS[kind].__name__
            raise ValueError(
                f"{str(config_path)!r} describes a {kind!r} model ({loader}), not a "
                f"{expected!r} one ({cls.__name__}); load it with "
                f"{loader}.from_pretrained(folder) or fl_i2moe_layer.load_pretrained(folder)."
            )
        target: type[PretrainedMixin] = cls if expected is not None else MODEL_KINDS[kind]
        try:
            model = target._from_pretrained_config(document["config"])
        except (TypeError, ValueError, KeyError) as error:
            raise CorruptFileError(
                f"{str(config_path)!r} holds an invalid {kind!r} configuration ({error}); "
                f"{_RESAVE}."
            ) from error
        assert isinstance(model, nn.Module)
        dtype = document.get("torch_dtype")
        if dtype is not None:
            torch_dtype = getattr(torch, str(dtype), None)
            if not isinstance(torch_dtype, torch.dtype):
                raise CorruptFileError(f"{str(config_path)!r} has an unknown torch_dtype "
                                       f"{dtype!r}; {_RESAVE}.")
            model.to(torch_dtype)
        weights = Path(folder) / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(
                f"{str(weights)!r} is missing: a save_pretrained folder holds {CONFIG_NAME} "
                f"and {WEIGHTS_NAME}; copy the whole folder, or {_RESAVE}."
            )
        tensors, meta = load_file(weights, what="weights file")
        if meta.get("format") != PRETRAINED_FORMAT or meta.get("model_kind") != kind:
            raise CorruptFileError(
                f"{str(weights)!r} does not hold the weights {CONFIG_NAME} describes (format "
                f"{meta.get('format')!r}, model kind {meta.get('model_kind')!r}; expected "
                f"{PRETRAINED_FORMAT!r}, {kind!r}); {_RESAVE}."
            )
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as error:
            summary = " ".join(str(error).split())
            raise CorruptFileError(
                f"{str(weights)!r} does not fit the model {CONFIG_NAME} describes "
                f"({summary[:400]}); {_RESAVE}."
            ) from error
        if device is not None:
            model.to(device)
        model.eval()
        return model  # type: ignore[return-value]  # an instance of ``cls`` (checked above)


def read_pretrained_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/config.json`` of a :meth:`~PretrainedMixin.save_pretrained` folder, checked
    (format, model kind, configuration object); errors name the path and the remedy."""
    path = Path(folder)
    if not path.is_dir():
        if path.exists():
            raise FileNotFoundError(
                f"{str(path)!r} is a file: from_pretrained takes the folder written by "
                "save_pretrained (holding config.json and model.safetensors)."
            )
        if _HUB_NAME.match(str(folder)):
            raise FileNotFoundError(
                f"{str(folder)!r} is not a local folder. from_pretrained reads local folders "
                "written by save_pretrained only and never contacts the Hugging Face Hub: "
                "download the folder first and pass its path."
            )
        raise FileNotFoundError(f"no folder {str(path)!r}: pass the folder written by "
                                "save_pretrained (holding config.json and model.safetensors).")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{str(config_path)!r} is missing: {str(path)!r} is not a folder written by "
            "save_pretrained (it holds config.json and model.safetensors); save the model "
            "with model.save_pretrained(folder)."
        )
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{str(config_path)!r} is not valid JSON ({error}); it is "
                               f"truncated or edited by hand: {_RESAVE}.") from error
    if not isinstance(document, dict) or document.get("format") != PRETRAINED_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise CorruptFileError(
            f"{str(config_path)!r} is not an fl_i2moe_layer model configuration (format "
            f"{found!r}, expected {PRETRAINED_FORMAT!r}); {_RESAVE}."
        )
    kind = document.get("model_kind")
    if kind not in MODEL_KINDS:
        raise CorruptFileError(f"{str(config_path)!r} names an unknown model_kind {kind!r} "
                               f"(known: {sorted(MODEL_KINDS)}); {_RESAVE}.")
    if not isinstance(document.get("config"), dict):
        raise CorruptFileError(f"{str(config_path)!r} has no 'config' object; {_RESAVE}.")
    return document


def load_pretrained(folder: str | os.PathLike[str], *,
                    device: str | torch.device | None = None) -> Any:
    """Whatever model ``folder`` holds (``FLI2MoE``, ``DenseFusion`` or ``ProjectedFusion``),
    read through the class its ``config.json`` names; see
    :meth:`PretrainedMixin.from_pretrained`."""
    kind = read_pretrained_config(folder)["model_kind"]
    return MODEL_KINDS[kind].from_pretrained(folder, device=device)
