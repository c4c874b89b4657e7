"""Experiments: the glue from datasets to trained, evaluated and explained runs, and the demo.

* :mod:`.config`: :class:`RunConfig`, what ``run.json`` records.
* :mod:`.datasets`: one entry per dataset (planted, MM-IMDb, ENRICO, MMHS150K) and
  :func:`load_split`, which encodes any split the same way.
* :mod:`.runs`: :func:`build_model`, :func:`fit_run`, :func:`train_run`, :func:`load_run`.
* :mod:`.evaluation`: pair-masking faithfulness, planted-pair recovery.
* :mod:`.explanations`: SII / RG figures of chosen examples.
* :mod:`.demo`: ``fl-i2moe demo``.

Everything here builds on ``fl_i2moe_layer.model``, ``training``, ``explain`` and ``data``;
nothing there imports from here.
"""

from __future__ import annotations

from fl_i2moe_layer.experiments.config import RunConfig, run_folder
from fl_i2moe_layer.experiments.datasets import DATASETS, Split, load_split, new_config
from fl_i2moe_layer.experiments.runs import build_model, fit_run, load_run, train_run

__all__ = [
    "DATASETS",
    "RunConfig",
    "Split",
    "build_model",
    "fit_run",
    "load_run",
    "load_split",
    "new_config",
    "run_folder",
    "train_run",
]
