"""Time one FL-I2MoE training step (forward + loss + backward): vectorised layer vs the
sequential reference, on the same batch and the same parameters.

    .venv/bin/python benchmarks/train_step.py                # M=2, B=32, T=P=32, H=128, 2 layers
    .venv/bin/python benchmarks/train_step.py --device cuda --batch 128

Prints the median time of each over ``--repeats`` interleaved steps (after warm-up) and their
ratio. Run it on an otherwise idle machine: both paths do the same arithmetic, so on a CPU the
difference is per-operation overhead (many small kernels, thread synchronisation) against
cache locality (the vectorised tensors are (M + 1)(M + 2) times larger).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from fl_i2moe_layer import FLI2MoE
from fl_i2moe_layer.model.reference import sequential_forward, sequential_loss_terms


def time_steps(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
               device: torch.device) -> dict[str, list[float]]:
    """Time each step ``repeats`` times, interleaved (a, b, a, b, ...) so that a change in
    machine load during the run affects both alike."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


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
    torch.manual_seed(0)
    # dropout=0 so that both paths compute exactly the same function.
    layer = FLI2MoE(args.modalities, args.hidden, args.classes, num_layers=args.layers,
                    num_heads=args.heads, dropout=0.0).to(device).train()
    inputs = [torch.randn(args.batch, args.tokens, args.hidden, device=device)
              for _ in range(args.modalities)]
    masks = [torch.ones(args.batch, args.tokens, dtype=torch.bool, device=device)
             for _ in range(args.modalities)]
    labels = torch.randint(0, args.classes, (args.batch,), device=device)

    def vectorised() -> None:
        gen = torch.Generator(device).manual_seed(0)
        out = layer(inputs, masks, generator=gen)
        layer.zero_grad(set_to_none=True)
        layer.loss(out, labels).backward()

    def sequential() -> None:
        gen = torch.Generator(device).manual_seed(0)
        out = sequential_forward(layer, inputs, masks, generator=gen)
        layer.zero_grad(set_to_none=True)
        sequential_loss_terms(layer, out, labels).total.backward()

    # Same loss on the same batch and parameters: the two paths compute one function.
    with torch.no_grad():
        a = layer.loss(layer(inputs, masks, generator=torch.Generator(device).manual_seed(0)),
                       labels)
        b = sequential_loss_terms(
            layer, sequential_forward(layer, inputs, masks,
                                      generator=torch.Generator(device).manual_seed(0)), labels
        ).total
    times = time_steps({"vectorised": vectorised, "sequential": sequential}, args.repeats,
                       args.warmup, device)
    t_vec, t_seq = times["vectorised"], times["sequential"]
    med_vec, med_seq = statistics.median(t_vec), statistics.median(t_seq)
    print(f"device={device} threads={torch.get_num_threads()} M={args.modalities} "
          f"B={args.batch} T=P={args.tokens} H={args.hidden} layers={args.layers} "
          f"heads={args.heads} experts={args.modalities + 2} variants={args.modalities + 1}")
    print(f"loss vectorised={a.item():.6f} sequential={b.item():.6f}")
    print(f"vectorised  median {med_vec * 1e3:8.2f} ms  (min {min(t_vec) * 1e3:.2f})")
    print(f"sequential  median {med_seq * 1e3:8.2f} ms  (min {min(t_seq) * 1e3:.2f})")
    print(f"speed-up (sequential / vectorised): {med_seq / med_vec:.2f}x")


if __name__ == "__main__":
    main()
