"""Time one FL-I2MoE training step (forward + loss + backward): vectorised layer vs the
sequential reference, on the same batch and the same parameters.

    .venv/bin/python benchmarks/train_step.py                # M=2, B=32, T=P=32, H=128, 2 layers
    .venv/bin/python benchmarks/train_step.py --device cuda --batch 128

Prints the median time of each over ``--repeats`` interleaved steps (after warm-up) and their
ratio. Run it on an otherwise idle machine: both paths do the same arithmetic, so on a CPU the
difference is per-operation overhead (many small kernels, thread synchronisation) against
cache locality (the vectorised tensors are (M + 1)(M + 2) times larger).
``benchmarks/test_kernels.py`` runs the same comparison inside the benchmark suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

if __package__ in (None, ""):
    # Run as a script (the documented command): make the repository root importable so that
    # the timing helper is shared with the benchmark suite instead of copied.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import interleaved_times
from fl_i2moe_layer import FLI2MoE
from fl_i2moe_layer.model.reference import (
    sequential_forward,
    sequential_loss_terms,
)


@dataclass(frozen=True)
class StepConfig:
    """Shape of one training step: M modalities of B examples × T tokens × H features."""

    modalities: int = 2
    batch: int = 32
    tokens: int = 32
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    classes: int = 10

    def label(self) -> str:
        return (f"M={self.modalities}, B={self.batch}, T=P={self.tokens}, H={self.hidden}, "
                f"{self.layers} layers, {self.heads} heads")


@dataclass
class TrainingSteps:
    """The two training steps on one batch, and the loss each path computes for it."""

    vectorised: Callable[[], None]
    sequential: Callable[[], None]
    loss_vectorised: Tensor
    loss_sequential: Tensor


def training_steps(config: StepConfig, device: torch.device, seed: int = 0) -> TrainingSteps:
    """One FL-I2MoE layer, one batch and a step function per path (same parameters, same
    replacement noise: each step reseeds its generator)."""
    torch.manual_seed(seed)
    # dropout=0 so that both paths compute exactly the same function.
    layer = FLI2MoE(config.modalities, config.hidden, config.classes, num_layers=config.layers,
                    num_heads=config.heads, dropout=0.0).to(device).train()
    shape = (config.batch, config.tokens)
    inputs = [torch.randn(*shape, config.hidden, device=device)
              for _ in range(config.modalities)]
    masks = [torch.ones(shape, dtype=torch.bool, device=device)
             for _ in range(config.modalities)]
    labels = torch.randint(0, config.classes, (config.batch,), device=device)

    def vectorised() -> None:
        gen = torch.Generator(device).manual_seed(seed)
        out = layer(inputs, masks, generator=gen)
        layer.zero_grad(set_to_none=True)
        layer.loss(out, labels).backward()

    def sequential() -> None:
        gen = torch.Generator(device).manual_seed(seed)
        out = sequential_forward(layer, inputs, masks, generator=gen)
        layer.zero_grad(set_to_none=True)
        sequential_loss_terms(layer, out, labels).total.backward()

    with torch.no_grad():
        loss_vec = layer.loss(
            layer(inputs, masks, generator=torch.Generator(device).manual_seed(seed)), labels
        )
        loss_seq = sequential_loss_terms(
            layer, sequential_forward(layer, inputs, masks,
                                      generator=torch.Generator(device).manual_seed(seed)),
            labels,
        ).total
    return TrainingSteps(vectorised, sequential, loss_vec, loss_seq)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32, help="tokens per modality (T = P)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = StepConfig(args.modalities, args.batch, args.tokens, args.hidden, args.layers,
                        args.heads, args.classes)
    steps = training_steps(config, device)
    times = interleaved_times({"vectorised": steps.vectorised, "sequential": steps.sequential},
                              rounds=args.repeats, warmup=args.warmup, device=device)
    t_vec, t_seq = times["vectorised"], times["sequential"]
    med_vec, med_seq = statistics.median(t_vec), statistics.median(t_seq)
    print(f"device={device} threads={torch.get_num_threads()} {config.label()} "
          f"experts={args.modalities + 2} variants={args.modalities + 1}")
    # Same loss on the same batch and parameters: the two paths compute one function.
    print(f"loss vectorised={steps.loss_vectorised.item():.6f} "
          f"sequential={steps.loss_sequential.item():.6f}")
    print(f"vectorised  median {med_vec * 1e3:8.2f} ms  (min {min(t_vec) * 1e3:.2f})")
    print(f"sequential  median {med_seq * 1e3:8.2f} ms  (min {min(t_seq) * 1e3:.2f})")
    print(f"speed-up (sequential / vectorised): {med_seq / med_vec:.2f}x")


if __name__ == "__main__":
    main()
