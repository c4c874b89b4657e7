"""A dataset explanation job for tests/test_datasets.py, run directly or under torchrun:

    python tests/dataset_job.py OUT [--kill-rank R --kill-after K] [--n-samples N]

It explains a fixed synthetic dataset of 20 examples with a tiny fusion Transformer into OUT
and appends "rank shard" lines to OUT/../computed-<rank>.log as shards are written. With
--kill-rank, that rank SIGKILLs itself after writing K shards (a crash mid-run)."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.datasets import explain_dataset, rank_and_world
from captum_interactions.testing import TinyFusionTransformer


def data_and_model() -> tuple[TensorDataset, torch.nn.Module]:
    torch.manual_seed(0)
    model = TinyFusionTransformer(hidden=8, n_classes=3).double().eval()
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(20, 3, 8, dtype=torch.float64, generator=gen)
    image = torch.randn(20, 4, 8, dtype=torch.float64, generator=gen)
    target = torch.randint(0, 3, (20,), generator=gen)
    return TensorDataset(text, image, target), model


def prepare(batch: list[torch.Tensor]) -> dict[str, object]:
    return {"inputs": (batch[0], batch[1]), "target": batch[2]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--kill-rank", type=int, default=-1)
    parser.add_argument("--kill-after", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=3)
    args = parser.parse_args()
    dataset, model = data_and_model()
    out = Path(args.out)
    written: list[int] = []

    def on_shard(shard: int) -> None:
        rank, _ = rank_and_world()
        with open(out.parent / f"computed-{rank}.log", "a") as log:
            log.write(f"{rank} {shard}\n")
        written.append(shard)
        if rank == args.kill_rank and len(written) >= args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    explain_dataset(ShapleyInteractionIndex(model), dataset, out, prepare=prepare,
                    batch_size=args.batch_size, shard_size=4, device="cpu",
                    on_shard=on_shard, n_samples=args.n_samples, seed=0)


if __name__ == "__main__":
    main()
