"""Forward rows per second of an FL-I2MoE layer at a real size, the figure behind
docs/scaling.md: how long explaining a whole split takes.

A perturbed row is one forward call's row (one coalition of one example). The layer takes
T text tokens and P image patches of width H (cached encoder features), as the explainer
evaluates it; rows go in batches of ``--rows``.

    python benchmarks/scaling_rows.py --tokens 64 --patches 49 --hidden 256 --rows 1024
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fl_i2moe_layer import FLI2MoE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="text tokens T")
    parser.add_argument("--patches", type=int, default=49, help="image patches P")
    parser.add_argument("--hidden", type=int, default=256, help="width H")
    parser.add_argument("--rows", type=int, default=1024, help="rows per forward call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    layer = FLI2MoE(2, hidden_dim=args.hidden, num_classes=23, task="multilabel").eval()
    layer = layer.to(device)
    text = torch.randn(args.rows, args.tokens, args.hidden, device=device)
    image = torch.randn(args.rows, args.patches, args.hidden, device=device)
    with torch.no_grad():
        layer([text, image])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.repeats):
            layer([text, image])
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    rate = args.rows * args.repeats / seconds
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                      "tokens": args.tokens, "patches": args.patches, "hidden": args.hidden,
                      "rows_per_call": args.rows, "rows_per_second": round(rate, 1)}))


if __name__ == "__main__":
    main()
