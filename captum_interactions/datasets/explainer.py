"""Explain a whole dataset into a :class:`~.store.ResultStore`, on one process or under
``torchrun``.

The dataset (a map-style ``torch.utils.data.Dataset``: ``len`` and indexing) is cut into
shards of ``shard_size`` consecutive examples. Shard s belongs to rank ``s % world_size``; each
rank explains its unfinished shards batch by batch and writes each shard as one file the
moment it is done, so a killed run loses at most the shard in progress, and a rerun with the
same settings (and any world size) computes only the shards that have no file yet. Rank 0
writes the manifest before any rank starts and records the finished shards at the end.

Results do not depend on the batching or on which rank computes a shard: every example is
explained with the same ``seed``, and the SII sampler evaluates the same coalitions for every
example of a batch, so an example's values depend only on its own model outputs.

Under ``torchrun`` the process group comes from the environment (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` ...): gloo on CPU, NCCL when the ranks use CUDA devices (rank r uses
``cuda:LOCAL_RANK``). Synchronisation is two barriers: after the manifest and before the final
record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from captum_interactions.datasets.store import ResultStore, Shard
from captum_interactions.result import PairInteractions
from captum_interactions.validation import check_bool, check_callable, check_positive_int

#: ``prepare(batch)`` -> the keyword arguments of ``explain`` for that batch: ``inputs`` and
#: any of ``target``, ``additional_forward_args``, ``feature_mask``, ``baselines``,
#: ``player_names``.
Prepare = Callable[[Any], Mapping[str, Any]]

#: Arguments of the settings that are recorded by value; tensors are recorded by digest.
_BATCH_KEYS = {"inputs", "target", "additional_forward_args", "feature_mask", "baselines",
               "player_names"}


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (0 and 1 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _init_distributed(device: torch.device) -> bool:
    """Join the ``torchrun`` process group if there is one to join; True if this call
    created it (and must destroy it)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() \
            or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return True


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _default_prepare(batch: Any) -> Mapping[str, Any]:
    if isinstance(batch, Mapping):
        if "inputs" not in batch:
            raise ValueError("a batch given as a mapping needs an 'inputs' entry; pass "
                             "prepare= to turn your batches into explain() arguments.")
        return batch
    if isinstance(batch, Tensor):
        return {"inputs": batch}
    if isinstance(batch, Sequence) and all(isinstance(x, Tensor) for x in batch):
        return {"inputs": tuple(batch)}
    raise TypeError(f"batches are {type(batch).__name__}; pass prepare= that returns "
                    "{'inputs': ..., 'target': ...} for a batch.")


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _first_tensor(inputs: Any) -> Tensor:
    if isinstance(inputs, Tensor):
        return inputs
    return next(x for x in inputs if isinstance(x, Tensor))


def _jsonable(value: Any) -> Any:
    """Settings as JSON: tensors by shape and digest, callables by name."""
    if isinstance(value, Tensor):
        from captum_interactions.storage import tensor_digest
        return {"tensor": list(value.shape), "sha256": tensor_digest({"t": value})[:16]}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return getattr(value, "__qualname__", type(value).__name__)


def explain_dataset(
    attribution: Any,
    dataset: Dataset[Any],
    out: str | os.PathLike[str],
    *,
    prepare: Prepare | None = None,
    batch_size: int = 8,
    shard_size: int = 64,
    device: torch.device | str | None = None,
    names: Callable[[int], Sequence[str]] | None = None,
    on_shard: Callable[[int], None] | None = None,
    show_progress: bool = False,
    **explain_kwargs: Any,
) -> ResultStore:
    r"""Explain every example of ``dataset`` with ``attribution.explain`` into a result store.

    Args:
        attribution: a :class:`~captum_interactions.ShapleyInteractionIndex` or
            :class:`~captum_interactions.RedundancyGap` (anything with ``explain``) of the
            model, already on ``device``.
        dataset (Dataset): a map-style dataset (``len`` and indexing).
        out (str or Path): the store's folder; rerunning with the same settings resumes it.
        prepare (callable, optional): batch (as collated by ``DataLoader``) -> keyword
            arguments of ``explain`` for that batch: ``inputs`` and optionally ``target``,
            ``additional_forward_args``, ``feature_mask``, ``baselines``, ``player_names``.
            Default: a tuple of tensors is the inputs, a mapping is taken as it is.
        batch_size (int, optional): examples per ``explain`` call. Default: 8.
        shard_size (int, optional): examples per shard file. Default: 64.
        device (optional): where batches are moved. Default: ``cuda:LOCAL_RANK`` when CUDA is
            available, else the CPU.
        names (callable, optional): dataset index -> the names of that example's players
            (words, patch coordinates), stored with its values and used by the summaries.
            Default: players described by position.
        on_shard (callable, optional): called with the shard index after each shard file is
            written (a progress hook).
        show_progress (bool, optional): a progress bar over this rank's shards.
        **explain_kwargs: the other arguments of ``explain`` (``n_samples``, ``seed``,
            ``method``, ``pairs``, ``removal``, ``output`` ...), the same for every batch.

    Returns:
        *ResultStore* of the folder (complete when every rank has finished).

    Examples::

        >>> store = explain_dataset(ShapleyInteractionIndex(model), test_set, "explained",
        ...                         prepare=lambda b: {"inputs": (b[0], b[1]), "target": b[2]},
        ...                         n_samples=1024, seed=0)
        >>> store.strongest_pairs(10)    # by the players' names, over the whole split
        >>> # the same on 8 processes: torchrun --nproc-per-node 8 my_script.py
    """
    if not callable(getattr(attribution, "explain", None)):
        raise TypeError(f"attribution must have an explain() method (ShapleyInteractionIndex, "
                        f"RedundancyGap), got {type(attribution).__name__}.")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be a map-style dataset (len and indexing), got "
                        f"{type(dataset).__name__}.")
    batch_size = check_positive_int("batch_size", batch_size)
    shard_size = check_positive_int("shard_size", shard_size)
    show_progress = check_bool("show_progress", show_progress)
    if on_shard is not None:
        check_callable(on_shard, "on_shard")
    if names is not None:
        check_callable(names, "names")
    clash = sorted(_BATCH_KEYS & set(explain_kwargs))
    if clash:
        raise ValueError(f"{clash} vary per batch: return them from prepare= instead.")
    if "return_stderr" in explain_kwargs:
        raise ValueError("explain_dataset always stores standard errors; drop return_stderr.")
    prepare = _default_prepare if prepare is None else prepare
    check_callable(prepare, "prepare")
    device = default_device() if device is None else torch.device(device)
    size = len(dataset)
    if size == 0:
        raise ValueError("dataset is empty.")
    n_shards = -(-size // shard_size)
    settings = {
        "method": type(attribution).__name__, "explain": _jsonable(explain_kwargs),
        "dataset_size": size, "shard_size": shard_size, "batch_size": batch_size,
        "prepare": _jsonable(prepare) if prepare is not _default_prepare else "default",
    }
    created = _init_distributed(device)
    try:
        rank, world = rank_and_world()
        store = ResultStore(Path(out), settings, n_shards)
        if rank == 0:
            store.check_or_create(write=True)
        _barrier()
        store.check_or_create(write=False)
        mine = [s for s in range(rank, n_shards, world) if not store.is_finished(s)]
        for shard in tqdm(mine, desc=f"rank {rank} shards", disable=not show_progress):
            lo, hi = shard * shard_size, min((shard + 1) * shard_size, size)
            loader = DataLoader(Subset(dataset, range(lo, hi)), batch_size=batch_size)
            results, targets = [], []
            offset = lo
            for batch in loader:
                kwargs = dict(prepare(batch))
                kwargs = {k: _to(v, device) if k != "player_names" else v
                          for k, v in kwargs.items()}
                size_b = int(_first_tensor(kwargs["inputs"]).shape[0])
                if names is not None:
                    kwargs["player_names"] = [list(names(i))
                                              for i in range(offset, offset + size_b)]
                offset += size_b
                results.append(attribution.explain(kwargs.pop("inputs"), **kwargs,
                                                   **explain_kwargs))
                targets.append(kwargs.get("target"))
            store.write(shard, _shard_of(results, targets, lo))
            if on_shard is not None:
                on_shard(shard)
        _barrier()
        if rank == 0:
            store.finalise()
    finally:
        if created:
            dist.destroy_process_group()
    return store


def _shard_of(results: list[PairInteractions], targets: list[Any], start: int) -> Shard:
    """Stack the batches of one shard, padding to its largest player count."""
    n_max = max(r.n_players for r in results)

    def pad(t: Tensor, dims: int) -> Tensor:
        extra = n_max - t.shape[-1]
        spec = [0, extra] * dims
        return torch.nn.functional.pad(t.detach().cpu(), spec)

    values = torch.cat([pad(r.values, 2) for r in results])
    stderr = torch.cat([pad(r.stderr, 2) for r in results])
    mains = [r.main_effects for r in results if r.main_effects is not None]
    main = torch.cat([pad(m, 1) for m in mains]) if len(mains) == len(results) else None
    n_players = torch.tensor([r.n_players for r in results for _ in range(r.values.shape[0])])
    names = [list(n) for r in results for n in r.player_names]
    target = None
    if all(isinstance(t, Tensor) and t.dim() == 1 for t in targets):
        target = torch.cat([t.detach().cpu() for t in targets])
    elif all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
        target = torch.tensor([t for t, r in zip(targets, results, strict=True)
                               for _ in range(r.values.shape[0])])
    index = torch.arange(start, start + values.shape[0])
    return Shard(index=index, values=values, stderr=stderr, main_effects=main,
                 n_players=n_players, player_names=names, target=target)
