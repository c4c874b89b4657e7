"""The ``fl-i2moe`` command line: ``demo``, ``train``, ``explain``, ``evaluate``.

Examples::

    fl-i2moe demo --quick                  # planted data, both models, report/index.html
    fl-i2moe train --dataset planted --out runs/planted
    fl-i2moe evaluate --checkpoint runs/planted/best.safetensors
    fl-i2moe explain --checkpoint runs/planted/best.safetensors --examples 0 3
    fl-i2moe train --dataset mmimdb --data-dir data/mmimdb --out runs/mmimdb
    fl-i2moe evaluate --checkpoint runs/mmimdb --data-dir data/mmimdb --faithfulness
    fl-i2moe explain --checkpoint runs/mmimdb --data-dir data/mmimdb --index 0 4
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DATASETS = ("planted", "mmimdb", "enrico", "mmhs150k")
DOWNLOADS = {
    "mmimdb": "MM-IMDb: download mmimdb.tar.gz (raw tree: split.json + dataset/<id>.json and "
              "<id>.jpeg) from http://lisi1.unal.edu.co/mmimdb/ and unpack it so that "
              "{dir}/split.json exists.",
    "enrico": "ENRICO: download design_topics.csv, screenshots/ and wireframes/ from "
              "https://github.com/luileito/enrico into {dir}.",
    "mmhs150k": "MMHS150K: download MMHS150K.zip from https://gombru.github.io/2019/10/09/MMHS/ "
                "and unpack it so that {dir}/MMHS150K_GT.json exists.",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fl-i2moe", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `fl-i2moe demo --quick`; see docs/data.md.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="planted data -> FL-I2MoE + dense -> report/index.html")
    d.add_argument("--out", default="report", help="report folder (default: report)")
    d.add_argument("--quick", action="store_true", help="small data, few epochs (~1 min)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cache-dir", default=None,
                   help="feature cache (default: $FL_I2MOE_CACHE or ~/.cache/fl_i2moe)")
    t = sub.add_parser("train", help="train FL-I2MoE (or the dense baseline) on a dataset")
    t.add_argument("--dataset", choices=DATASETS, default="planted")
    t.add_argument("--data-dir", default=None, help="dataset folder (real datasets)")
    t.add_argument("--model", choices=("fl_i2moe", "dense"), default="fl_i2moe")
    t.add_argument("--out", default="runs/planted", help="checkpoint folder")
    t.add_argument("--n", type=int, default=800, help="planted examples (default: 800)")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--cache-dir", default=None)
    t.add_argument("--split-limit", type=int, default=None,
                   help="real datasets: use at most N items per split")
    t.add_argument("--hidden-dim", type=int, default=64, help="real datasets (default: 64)")
    t.add_argument("--num-layers", type=int, default=1, help="real datasets (default: 1)")
    t.add_argument("--max-length", type=int, default=64,
                   help="real datasets: text tokens (default: 64)")
    t.add_argument("--lr", type=float, default=1e-3, help="real datasets (default: 1e-3)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--patience", type=int, default=5)
    for name, helptext in (("evaluate", "task metrics and pair-masking faithfulness"),
                           ("explain", "SII / RG explanations of chosen examples")):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("--checkpoint", required=True,
                       help="a best.safetensors from train, or a real-dataset run folder")
        e.add_argument("--data-dir", default=None, help="dataset folder (real datasets)")
        e.add_argument("--split", default="test", help="real datasets: split (default: test)")
        e.add_argument("--split-limit", type=int, default=None,
                       help="real datasets: use at most N items of the split")
        e.add_argument("--model", choices=("fl_i2moe", "dense"), default="fl_i2moe")
        e.add_argument("--n", type=int, default=800)
        e.add_argument("--seed", type=int, default=0)
        e.add_argument("--cache-dir", default=None)
        e.add_argument("--n-samples", type=int, default=512, help="coalitions per example")
        if name == "evaluate":
            e.add_argument("--faithfulness", action="store_true",
                           help="real datasets: SII pair-masking faithfulness")
            e.add_argument("--n-faithfulness", type=int, default=8,
                           help="examples scored by --faithfulness (default: 8)")
        if name == "explain":
            e.add_argument("--index", type=int, nargs="+", default=None,
                           help="real datasets: example indices in the split")
            e.add_argument("--examples", type=int, nargs="+", default=[0],
                           help="test-split example indices")
            e.add_argument("--out", default="explanations", help="figure folder")
    return p


def _split(args: argparse.Namespace):
    from fl_i2moe_layer.data.planted import load_planted

    data = load_planted(args.n, seed=args.seed, cache_dir=args.cache_dir, show_progress=True)
    n_train = int(0.7 * len(data))
    return (data.subset(list(range(n_train))),
            data.subset(list(range(n_train, len(data)))))


def _load(args: argparse.Namespace):
    from fl_i2moe_layer.data.evaluation import build_model
    from fl_i2moe_layer.training.checkpoints import load_checkpoint

    model = build_model(args.model)
    load_checkpoint(args.checkpoint, model)
    return model


def _train_real(args: argparse.Namespace, folder: Path) -> int:
    from fl_i2moe_layer.data.real import train_real

    out = args.out if args.out != "runs/planted" else f"runs/{args.dataset}"
    config = train_real(args.dataset, folder, out, epochs=args.epochs,
                        split_limit=args.split_limit, lr=args.lr, batch_size=args.batch_size,
                        patience=args.patience, cache_dir=args.cache_dir, progress=True,
                        model=args.model, hidden_dim=args.hidden_dim,
                        num_layers=args.num_layers, max_length=args.max_length,
                        seed=args.seed)
    print({k: round(v, 4) for k, v in config.metrics.items()})
    print(f"checkpoint: {out} (best.safetensors, run.json)")
    return 0


def _evaluate_or_explain_real(args: argparse.Namespace, run: Path) -> int:
    from fl_i2moe_layer.data.real import (
        Encoders,
        explain_real,
        load_run,
        sii_pair_masking,
        split_data,
        subset,
    )
    from fl_i2moe_layer.training import Trainer

    config, model = load_run(run)
    if args.data_dir is None or not Path(args.data_dir).is_dir():
        hint = DOWNLOADS[config.dataset].format(dir=args.data_dir or f"data/{config.dataset}")
        print(f"error: --data-dir {args.data_dir!r} is not a folder. {hint}", file=sys.stderr)
        return 2
    encoders = Encoders(config)
    items, data = split_data(config, args.data_dir, args.split, limit=args.split_limit,
                             cache_dir=args.cache_dir, encoders=encoders)
    if args.command == "evaluate":
        metrics = Trainer(model, progress=False).evaluate(data)
        print(f"{config.dataset} {args.split} ({len(items)} examples):",
              {k: round(v, 4) for k, v in metrics.items()})
        if args.faithfulness:
            index = list(range(min(args.n_faithfulness, len(items))))
            res = sii_pair_masking(model, subset(data, index), config.task,
                                   n_samples=args.n_samples, seed=args.seed)
            print(res.summary(f"SII pair masking ({len(index)} examples)"))
        return 0
    indices = args.index if args.index is not None else args.examples
    summaries = explain_real(config, model, items, data, indices, args.out,
                             encoders=encoders, n_samples=args.n_samples, seed=args.seed)
    for s in summaries:
        print(f"example {s['index']} (id {s['id']}): target {s['target']} "
              f"routing {s['routing']} -> {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fl-i2moe`` and ``python -m fl_i2moe_layer``."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from fl_i2moe_layer.demo import DemoSettings, run_demo

        settings = DemoSettings.quick(args.seed) if args.quick else DemoSettings(seed=args.seed)
        run_demo(args.out, settings=settings, cache_dir=args.cache_dir)
        return 0
    if args.command == "train":
        if args.dataset != "planted":
            folder = Path(args.data_dir or f"data/{args.dataset}")
            if not folder.is_dir():
                hint = DOWNLOADS[args.dataset].format(dir=folder)
                print(f"error: dataset folder {str(folder)!r} not found. {hint}",
                      file=sys.stderr)
                return 2
            return _train_real(args, folder)
        from fl_i2moe_layer.data.evaluation import build_model, train_model

        train, test = _split(args)
        model = build_model(args.model, seed=args.seed)
        metrics = train_model(model, train, test, epochs=args.epochs, seed=args.seed,
                              progress=True, checkpoint_dir=args.out)
        print({k: round(v, 4) for k, v in metrics.items()})
        print(f"checkpoint: {Path(args.out) / 'best.safetensors'}")
        return 0
    from fl_i2moe_layer.data.real import run_folder

    run = run_folder(args.checkpoint)
    if run is not None:
        return _evaluate_or_explain_real(args, run)
    from fl_i2moe_layer.data.evaluation import pair_masking, recover_pairs
    from fl_i2moe_layer.training.metrics import classification_metrics

    model = _load(args)
    _, test = _split(args)
    if args.command == "evaluate":
        import torch

        ds = test.dataset()
        with torch.no_grad():
            logits = model(ds.inputs, ds.masks).logits
        print({k: round(v, 4) for k, v in classification_metrics(
            logits, test.labels, "binary").items()})
        for rule in ("synergy", "redundancy"):
            rec = recover_pairs(model, test, rule, n_samples=args.n_samples)
            print(f"{rule}: {rec.method} precision@1 {rec.precision_at(1):.3f} "
                  f"@5 {rec.precision_at(5):.3f} over {rec.ranks.numel()} examples")
            if rec.ranks.numel():
                print(pair_masking(model, test, rec).summary(f"{rec.method} pair masking"))
        return 0
    from fl_i2moe_layer.explain import ExpertExplainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sub = test.subset(args.examples)
    ds = sub.dataset()
    report = ExpertExplainer(model).explain(ds.inputs, ds.masks, target=0,
                                            methods=("sii", "redundancy_gap"),
                                            n_samples=args.n_samples, faithfulness=False)
    import matplotlib.pyplot as plt

    for b, idx in enumerate(args.examples):
        for method in ("sii", "redundancy_gap"):
            fig = report.plot_interactions("mixture", method, example=b,
                                           row_labels=sub.tokens(b))
            fig.savefig(out / f"example{idx}_{method}.png", dpi=90, bbox_inches="tight")
            plt.close(fig)
        w = dict(zip(report.expert_names, report.weights[b].tolist(), strict=True))
        print(f"example {idx}: {sub.texts[b]!r} routing {w} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
