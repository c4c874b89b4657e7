"""Datasets: the planted-interaction default (``planted``) and loaders of the published
formats of MM-IMDb (``mmimdb``), ENRICO (``enrico``) and MMHS150K (``mmhs150k``).

See ``docs/data.md``.
"""

from __future__ import annotations

from fl_i2moe_layer.data.common import Item, Skips, load_image
from fl_i2moe_layer.data.enrico import load_enrico
from fl_i2moe_layer.data.mmhs150k import load_mmhs150k
from fl_i2moe_layer.data.mmimdb import load_mmimdb, load_mmimdb_hdf5
from fl_i2moe_layer.data.planted import RULES, PlantedData, generate_planted, load_planted

__all__ = [
    "RULES",
    "Item",
    "PlantedData",
    "Skips",
    "generate_planted",
    "load_enrico",
    "load_image",
    "load_mmhs150k",
    "load_mmimdb",
    "load_mmimdb_hdf5",
    "load_planted",
]
