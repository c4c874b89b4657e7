"""``run.json``: everything a run needs to be rebuilt, evaluated and explained.

Every ``fl-i2moe train`` (and every model the demo trains) writes one next to its
checkpoints. It records the dataset and how it was cut (planted examples ``n``, the item
limit of real splits), the model kind and sizes, every training option, the seed, the task
and the encoders; ``evaluate`` and ``explain`` read it instead of asking again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

RUN_FILE = "run.json"
RUN_FORMAT = "fl_i2moe_layer.run/2"
ModelKind = Literal["fl_i2moe", "dense"]
#: What a run.json without these fields means: the objective and dropout of every run
#: trained before they were recorded.
LEGACY_DEFAULTS: dict[str, Any] = {"objective": "i2moe", "dropout": 0.0}


@dataclass
class RunConfig:
    """One run: the data, the model and its training.

    Attributes:
        dataset: ``"planted"``, ``"mmimdb"``, ``"enrico"`` or ``"mmhs150k"``.
        model: ``"fl_i2moe"`` or ``"dense"``.
        n: planted examples (planted data only).
        split_limit: at most this many items per training split (real datasets).
        hidden_dim, num_layers, num_heads: the fusion layer.
        objective: FL-I2MoE's training objective, ``"specialised"`` (default: experts that
            specialise by cue case, docs/fl_i2moe.md) or ``"i2moe"`` (the paper's).
        dropout: dropout inside the fusion layer's experts.
        max_length: text tokens (real datasets; planted text has ``n_words + 2`` tokens).
        image_size: image side in pixels (real datasets).
        seed: the data (planted), initialisation and training seed.
        epochs, lr, batch_size, patience: training; ``monitor`` is the early-stopping
            metric (None: the task's default).
        task, num_classes, modalities, encoders, feature_dims: filled in from the dataset.
        metrics: validation metrics of the trained model.
    """

    dataset: str
    model: ModelKind = "fl_i2moe"
    n: int | None = None
    split_limit: int | None = None
    hidden_dim: int = 64
    num_layers: int = 1
    num_heads: int = 4
    objective: str = "specialised"
    dropout: float = 0.1
    max_length: int = 64
    image_size: int = 224
    seed: int = 0
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 32
    patience: int = 5
    monitor: str | None = None
    task: str = ""
    num_classes: int = 0
    modalities: list[list[str]] = field(default_factory=list)
    encoders: dict[str, str] = field(default_factory=dict)
    feature_dims: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    format: str = RUN_FORMAT

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/run.json``."""
        path = Path(folder) / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RunConfig:
        """Read ``folder/run.json`` written by :meth:`save`."""
        path = Path(folder) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing: pass the folder written by "
                                    "`fl-i2moe train --dataset ... --out DIR`.")
        values: dict[str, Any] = json.loads(path.read_text())
        if values.get("format") != RUN_FORMAT:
            raise ValueError(f"{str(path)!r} is not an fl_i2moe_layer run description "
                             f"(format {values.get('format')!r}, expected {RUN_FORMAT!r}); "
                             "train the run again with this version.")
        # Runs recorded before these options existed were trained this way.
        for name, before in LEGACY_DEFAULTS.items():
            values.setdefault(name, before)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{str(path)!r} has unknown fields {unknown}.")
        return cls(**values)


def run_folder(checkpoint: str | os.PathLike[str]) -> Path:
    """The run folder of ``checkpoint`` (the folder itself or its ``best.safetensors``)."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    if not (folder / RUN_FILE).is_file():
        raise FileNotFoundError(
            f"no {RUN_FILE} next to {str(path)!r}: pass a folder written by `fl-i2moe train` "
            "(it holds best.safetensors and run.json)."
        )
    return folder
