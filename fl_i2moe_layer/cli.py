"""The ``fl-i2moe`` command line: ``demo``, ``train``, ``evaluate``, ``explain``.

Examples::

    fl-i2moe demo --quick                  # planted data, both models, report/index.html
    fl-i2moe train --dataset planted --out runs/planted
    fl-i2moe evaluate --checkpoint runs/planted
    fl-i2moe explain --checkpoint runs/planted --index 0 3
    fl-i2moe train --dataset mmimdb --data-dir data/mmimdb --out runs/mmimdb
    fl-i2moe evaluate --checkpoint runs/mmimdb --data-dir data/mmimdb --faithfulness
    fl-i2moe explain --checkpoint runs/mmimdb --data-dir data/mmimdb --index 0 4
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fl_i2moe_layer.experiments.datasets import DATASETS


def _count(minimum: int) -> Any:
    """An argparse type: an int >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


POSITIVE, INDEX = _count(1), _count(0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fl-i2moe", description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `fl-i2moe demo --quick`; see docs/data.md.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="planted data -> FL-I2MoE + dense -> report/index.html")
    d.add_argument("--out", default="report", help="report folder (default: report)")
    d.add_argument("--quick", action="store_true", help="small data, few epochs (~1 min)")
    d.add_argument("--seed", type=INDEX, default=0)
    d.add_argument("--cache-dir", default=None,
                   help="feature cache (default: $FL_I2MOE_CACHE or ~/.cache/fl_i2moe)")
    t = sub.add_parser("train", help="train FL-I2MoE (or the dense baseline) on a dataset; "
                                     "writes best.safetensors and run.json")
    t.add_argument("--dataset", choices=tuple(DATASETS), default="planted")
    t.add_argument("--data-dir", default=None,
                   help="dataset folder (real datasets; default: data/<dataset>)")
    t.add_argument("--model", choices=("fl_i2moe", "dense"), default=None,
                   help="default: fl_i2moe")
    t.add_argument("--out", default=None, help="run folder (default: runs/<dataset>)")
    t.add_argument("--n", type=POSITIVE, default=None, help="planted examples (default: 800)")
    t.add_argument("--split-limit", type=POSITIVE, default=None,
                   help="real datasets: use at most N items per split")
    # None means the dataset's default (fl_i2moe_layer.experiments.datasets.DATASETS).
    t.add_argument("--epochs", type=POSITIVE, default=None, help="default: 40")
    t.add_argument("--seed", type=INDEX, default=None, help="default: 0")
    t.add_argument("--hidden-dim", type=POSITIVE, default=None,
                   help="default: 32 (planted), 64 (real datasets)")
    t.add_argument("--num-layers", type=POSITIVE, default=None, help="default: 1")
    t.add_argument("--max-length", type=POSITIVE, default=None,
                   help="real datasets: text tokens (default: 64)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="default: 3e-3 (planted), 1e-3 (real datasets)")
    t.add_argument("--batch-size", type=POSITIVE, default=None, help="default: 32")
    t.add_argument("--patience", type=POSITIVE, default=None,
                   help="default: 10 (planted), 5 (real datasets)")
    t.add_argument("--cache-dir", default=None)
    for name, helptext in (("evaluate", "task metrics, planted-pair recovery and pair-masking "
                                        "faithfulness of a run"),
                           ("explain", "SII / RG maps of chosen examples of a run")):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("--checkpoint", required=True,
                       help="a run folder from `fl-i2moe train` (or its best.safetensors)")
        e.add_argument("--data-dir", default=None, help="dataset folder (real datasets)")
        e.add_argument("--split", default=None, help="split (default: the test split)")
        e.add_argument("--split-limit", type=POSITIVE, default=None,
                       help="real datasets: use at most N items of the split")
        e.add_argument("--seed", type=INDEX, default=0, help="seed of the samplers")
        e.add_argument("--cache-dir", default=None)
        e.add_argument("--n-samples", type=POSITIVE, default=512, help="coalitions per example")
        if name == "evaluate":
            e.add_argument("--faithfulness", action="store_true",
                           help="SII pair-masking faithfulness")
            e.add_argument("--n-faithfulness", type=POSITIVE, default=8,
                           help="examples scored by --faithfulness (default: 8)")
        if name == "explain":
            e.add_argument("--index", "--examples", dest="index", type=INDEX, nargs="+",
                           default=[0], help="example indices in the split (default: 0)")
            e.add_argument("--out", default="explanations", help="figure folder")
    return p


class UsageError(Exception):
    """A mistake on the command line: printed as ``error: ...``, exit status 2."""


def _data_dir(dataset: str, given: str | None) -> Path | None:
    """The dataset folder of a real dataset (None for planted data)."""
    hint = DATASETS[dataset].download
    if hint is None:
        return None
    folder = Path(given or f"data/{dataset}")
    if not folder.is_dir():
        raise UsageError(f"dataset folder {str(folder)!r} not found. {hint.format(dir=folder)}")
    return folder


def _require_folder(option: str, path: str) -> None:
    if Path(path).exists() and not Path(path).is_dir():
        raise UsageError(f"{option} {path!r} is a file; pass a folder (created if missing).")


def _train(args: argparse.Namespace) -> int:
    from fl_i2moe_layer.experiments.datasets import new_config
    from fl_i2moe_layer.experiments.runs import train_run

    planted = args.dataset == "planted"
    if planted and args.split_limit is not None:
        raise UsageError("--split-limit applies to real datasets; use --n for planted data.")
    if not planted and args.n is not None:
        raise UsageError("--n applies to planted data; use --split-limit for real datasets.")
    folder = _data_dir(args.dataset, args.data_dir)
    config = new_config(args.dataset, model=args.model, n=args.n, split_limit=args.split_limit,
                        epochs=args.epochs, seed=args.seed, hidden_dim=args.hidden_dim,
                        num_layers=args.num_layers, max_length=args.max_length, lr=args.lr,
                        batch_size=args.batch_size, patience=args.patience)
    out = args.out or f"runs/{args.dataset}"
    _require_folder("--out", out)
    train_run(config, out, data_dir=folder, cache_dir=args.cache_dir)
    print({k: round(v, 4) for k, v in config.metrics.items()})
    print(f"run: {out} (best.safetensors, run.json)")
    return 0


def _evaluate(args: argparse.Namespace, config: Any, model: Any, split: Any,
              split_name: str) -> int:
    from fl_i2moe_layer.experiments.evaluation import (
        recover_pairs,
        recovery_masking,
        sii_pair_masking,
    )
    from fl_i2moe_layer.training import Trainer

    metrics = Trainer(model, progress=False).evaluate(split.data)
    print(f"{config.dataset} {split_name} ({len(split)} examples):",
          {k: round(v, 4) for k, v in metrics.items()})
    if split.planted is not None:  # ground truth: where do the planted pairs rank?
        for rule in ("synergy", "redundancy"):
            rec = recover_pairs(model, split.planted, rule, n_samples=args.n_samples,
                                seed=args.seed)
            print(f"{rule}: {rec.method} precision@1 {rec.precision_at(1):.3f} "
                  f"@5 {rec.precision_at(5):.3f} over {rec.ranks.numel()} examples")
            if rec.ranks.numel():
                res = recovery_masking(model, split.planted, rec, seed=args.seed)
                print(res.summary(f"{rec.method} pair masking"))
    if args.faithfulness:
        index = list(range(min(args.n_faithfulness, len(split))))
        res = sii_pair_masking(model, split.subset(index).data, n_samples=args.n_samples,
                               seed=args.seed)
        print(res.summary(f"SII pair masking ({len(index)} examples)"))
    return 0


def _explain(args: argparse.Namespace, model: Any, split: Any) -> int:
    from fl_i2moe_layer.experiments.explanations import explain_examples

    summaries = explain_examples(model, split, args.index, args.out,
                                 n_samples=args.n_samples, seed=args.seed)
    for s in summaries:
        print(f"example {s['index']} (id {s['id']}): target {s['target']} "
              f"routing {s['routing']} -> {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fl-i2moe`` and ``python -m fl_i2moe_layer``."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from fl_i2moe_layer.experiments.demo import DemoSettings, run_demo

        settings = DemoSettings.quick(args.seed) if args.quick else DemoSettings(seed=args.seed)
        run_demo(args.out, settings=settings, cache_dir=args.cache_dir)
        return 0
    try:
        if args.command == "train":
            return _train(args)
        from fl_i2moe_layer.experiments.config import run_folder
        from fl_i2moe_layer.experiments.datasets import load_split
        from fl_i2moe_layer.experiments.runs import load_run

        if args.command == "explain":
            _require_folder("--out", args.out)
        config, model = load_run(run_folder(args.checkpoint))
        folder = _data_dir(config.dataset, args.data_dir)
        split_name = args.split or DATASETS[config.dataset].splits[2]
        split = load_split(config, split_name, data_dir=folder, cache_dir=args.cache_dir,
                           limit=args.split_limit)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "evaluate":
        return _evaluate(args, config, model, split, split_name)
    return _explain(args, model, split)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
