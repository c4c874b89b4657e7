"""An append-only store of per-example pair explanations, one file per shard.

A dataset of N examples is cut into shards of ``shard_size`` consecutive examples. Shard s is
the file ``shard-<s>.safetensors``: the values V (n, F, F), their standard errors, the main
effects when known, the example indices, the number of players of each example, and in its
metadata the players' names (JSON) and the fingerprint of the settings that produced it.
Files are written to a temporary name and renamed (:mod:`captum_interactions.storage`), so a
shard file either exists complete, with a digest that :func:`load_file` verifies, or not at
all: a killed run leaves finished shards intact and nothing half-written.

``manifest.json`` records the settings (the attribution method and its arguments, the
dataset's size, the shard and batch sizes), the software versions and the finished shards.
Reopening a folder with other settings is refused, so a store never mixes two experiments.

Why safetensors: tensors load without unpickling code, files are memory-mappable and carry a
string metadata header (the names and the fingerprint), and the project already verifies them
with a digest. One file per shard keeps writes independent across ranks.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_interactions.result import PairOrder
from captum_interactions.storage import atomic_save_file, atomic_write_text, load_file
from captum_interactions.validation import check_choice, check_positive_int

FORMAT = "captum-interactions-store/1"
MANIFEST = "manifest.json"


def versions() -> dict[str, str]:
    """The software that produced a store."""
    import captum

    import captum_interactions
    return {"python": platform.python_version(), "torch": torch.__version__,
            "captum": str(getattr(captum, "__version__", "?")),
            "captum_interactions": captum_interactions.__version__}


def fingerprint(settings: dict[str, Any]) -> str:
    """A short digest of the settings (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Shard:
    """The examples of one shard.

    Attributes:
        index: (n,) dataset indices.
        values, stderr: (n, F, F), F the largest player count of the shard (zero-padded).
        main_effects: (n, F) or None.
        n_players: (n,) players of each example.
        player_names: per example, its F_b names.
        target: (n,) target per example, or None.
    """

    index: Tensor
    values: Tensor
    stderr: Tensor
    main_effects: Tensor | None
    n_players: Tensor
    player_names: list[list[str]]
    target: Tensor | None


class ResultStore:
    """A folder of shard files and a manifest (see the module docstring).

    Args:
        folder: where the store lives (created if missing).
        settings: what produced the results; a store opened with other settings is refused.
        n_shards: shards of the dataset.
    """

    def __init__(self, folder: str | Path, settings: dict[str, Any], n_shards: int) -> None:
        self.folder = Path(folder)
        self.settings = settings
        self.n_shards = n_shards
        self.key = fingerprint(settings)

    # -- the manifest --------------------------------------------------------------------------
    def check_or_create(self, *, write: bool) -> None:
        """Refuse a folder made with other settings; write the manifest if ``write`` (rank 0)
        and there is none."""
        path = self.folder / MANIFEST
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise ValueError(f"{str(path)!r} is not a manifest of a result store "
                                 f"({error}); use an empty folder.") from error
            if manifest.get("format") != FORMAT:
                raise ValueError(f"{str(path)!r} is not a {FORMAT} manifest; use another "
                                 "folder.")
            if manifest.get("settings") != self.settings:
                old = manifest.get("settings", {})
                differ = sorted(k for k in set(old) | set(self.settings)
                                if old.get(k) != self.settings.get(k))
                raise ValueError(
                    f"the store in {str(self.folder)!r} was made with other settings (they "
                    f"differ in {differ}); rerun with the same settings to resume, or give "
                    "another output folder.")
            return
        if self.folder.exists() and any(self.folder.glob("shard-*.safetensors")):
            raise ValueError(f"{str(self.folder)!r} holds shard files but no manifest; use an "
                             "empty folder.")
        if write:
            self._write_manifest(finished=[])

    def _write_manifest(self, finished: list[int]) -> None:
        manifest = {"format": FORMAT, "settings": self.settings, "key": self.key,
                    "versions": versions(), "n_shards": self.n_shards,
                    "finished": finished, "complete": len(finished) == self.n_shards}
        atomic_write_text(self.folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")

    def finalise(self) -> None:
        """Record the finished shards in the manifest (rank 0, after every rank is done)."""
        self._write_manifest(self.finished())

    # -- shards --------------------------------------------------------------------------------
    def path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:06d}.safetensors"

    def is_finished(self, shard: int) -> bool:
        """Whether shard ``shard`` was written (by these settings)."""
        return self.path(shard).is_file()

    def finished(self) -> list[int]:
        return [s for s in range(self.n_shards) if self.is_finished(s)]

    def write(self, shard: int, part: Shard) -> Path:
        """Write one shard atomically."""
        tensors = {"index": part.index.long(), "values": part.values, "stderr": part.stderr,
                   "n_players": part.n_players.long()}
        if part.main_effects is not None:
            tensors["main_effects"] = part.main_effects
        if part.target is not None:
            tensors["target"] = part.target
        metadata = {"key": self.key, "player_names": json.dumps(part.player_names)}
        return atomic_save_file(tensors, self.path(shard), metadata)

    def read(self, shard: int) -> Shard:
        """One finished shard, verified against its digest and the store's settings."""
        tensors, metadata = load_file(self.path(shard), what="result shard",
                                      require_digest=True)
        if metadata.get("key") != self.key:
            raise ValueError(f"{str(self.path(shard))!r} was written with other settings.")
        return Shard(index=tensors["index"], values=tensors["values"],
                     stderr=tensors["stderr"], main_effects=tensors.get("main_effects"),
                     n_players=tensors["n_players"],
                     player_names=json.loads(metadata["player_names"]),
                     target=tensors.get("target"))

    def shards(self) -> Iterator[Shard]:
        """Every finished shard, in order."""
        for shard in self.finished():
            yield self.read(shard)

    # -- dataset-level summaries ----------------------------------------------------------------
    def strongest_pairs(self, k: int = 20, *, order: PairOrder = "largest"
                        ) -> list[dict[str, Any]]:
        """The pairs with the largest mean value over the dataset, grouped by the players'
        names (e.g. word × image region): mean, standard error of the mean over the examples
        where the pair occurs, and the count. Pairs with value exactly 0 everywhere (not
        requested) are left out.

        Args:
            k: how many groups.
            order: ``"largest"``, ``"smallest"`` or ``"magnitude"`` (of the mean).

        Examples::

            >>> store.strongest_pairs(3)
            [{'first': 'red', 'second': 'patch 3,4', 'mean': 0.41, 'stderr': 0.05,
              'count': 12}, ...]
        """
        return self.strongest_pairs_by(None, k, order=order)[0]

    def strongest_pairs_by(self, membership: Tensor | None, k: int = 5, *,
                           order: PairOrder = "largest") -> list[list[dict[str, Any]]]:
        """:meth:`strongest_pairs` within groups of examples, in one pass over the shards.

        Args:
            membership: (N, G) bool, example n (dataset index) belongs to group g (e.g. the
                one-hot or multi-hot labels: "strongest pairs of the examples labelled
                Comedy"); an example may be in several groups or none. None: one group of
                every example.
            k: pairs per group.
            order: as in :meth:`strongest_pairs`.

        Returns:
            One list of at most ``k`` pairs per group.

        Examples::

            >>> by_label = store.strongest_pairs_by(torch.nn.functional.one_hot(labels) > 0)
        """
        k = check_positive_int("k", k)
        order = check_choice("order", order, PairOrder)
        n_groups = 1
        if membership is not None:
            given: object = membership
            size = self.settings.get("dataset_size")
            if not isinstance(given, Tensor) or given.dim() != 2 \
                    or given.shape[0] != (size if size is not None else given.shape[0]):
                shown = tuple(given.shape) if isinstance(given, Tensor) else repr(given)
                raise ValueError(f"membership must be an (N, G) bool tensor with N = {size} "
                                 f"(the dataset size), got {shown}.")
            membership = membership.bool().cpu()
            n_groups = membership.shape[1]
        vocabulary: dict[str, int] = {}
        groups_of, keys, values = [], [], []
        for part in self.shards():
            for row in range(part.index.shape[0]):
                n = int(part.n_players[row])
                ids = torch.tensor([vocabulary.setdefault(name, len(vocabulary))
                                    for name in part.player_names[row][:n]], dtype=torch.long)
                upper = torch.triu(part.values[row, :n, :n].double(), 1)
                i, j = torch.nonzero(upper, as_tuple=True)
                member = (torch.zeros(1, dtype=torch.long) if membership is None else
                          torch.nonzero(membership[int(part.index[row])], as_tuple=True)[0])
                key = ids[i] * (1 << 31) + ids[j]
                groups_of.append(member.repeat_interleave(key.shape[0]))
                keys.append(key.repeat(member.shape[0]))
                values.append(upper[i, j].repeat(member.shape[0]))
        if not keys or not sum(k_.shape[0] for k_ in keys):
            return [[] for _ in range(n_groups)]
        pairs = torch.stack([torch.cat(groups_of), torch.cat(keys)], 1)
        found, inverse = torch.unique(pairs, dim=0, return_inverse=True)
        data = torch.cat(values)
        count = torch.zeros(found.shape[0], dtype=torch.float64).index_add_(
            0, inverse, torch.ones_like(data))
        mean = torch.zeros_like(count).index_add_(0, inverse, data) / count
        square = torch.zeros_like(count).index_add_(0, inverse, data * data) / count
        var = (square - mean * mean).clamp_min(0) * count / (count - 1).clamp_min(1)
        se = torch.where(count > 1, (var / count).sqrt(), torch.zeros_like(var))
        score = {"largest": mean, "smallest": -mean, "magnitude": mean.abs()}[order]
        names = list(vocabulary)
        out: list[list[dict[str, Any]]] = []
        for g in range(n_groups):  # a loop over groups (labels), each one vectorised
            rows = torch.nonzero(found[:, 0] == g, as_tuple=True)[0]
            top = rows[torch.argsort(score[rows], descending=True, stable=True)[:k]].tolist()
            out.append([{"first": names[int(found[t, 1]) >> 31],
                         "second": names[int(found[t, 1]) & ((1 << 31) - 1)],
                         "mean": float(mean[t]), "stderr": float(se[t]),
                         "count": int(count[t])} for t in top])
        return out
