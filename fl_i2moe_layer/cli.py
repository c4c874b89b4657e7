"""The ``fl-i2moe`` command line: ``demo``, ``train``, ``evaluate``, ``explain``.

Examples::

    fl-i2moe demo --quick                  # planted data, both models, report/index.html
    fl-i2moe train --dataset planted --out runs/planted
    fl-i2moe train --dataset planted --out runs/planted --epochs 60 --resume   # continue it
    fl-i2moe evaluate --checkpoint runs/planted
    fl-i2moe explain --checkpoint runs/planted --index 0 3
    fl-i2moe train --dataset mmimdb --data-dir data/mmimdb --out runs/mmimdb
    fl-i2moe evaluate --checkpoint runs/mmimdb --data-dir data/mmimdb --faithfulness
    fl-i2moe explain --checkpoint runs/mmimdb --data-dir data/mmimdb --index 0 4

Errors caused by the arguments or the files they name are printed as one line
(``fl-i2moe: error: ...``, exit status 2); ``--debug`` also prints the traceback. Progress is
a tqdm bar on a terminal and a log line every 30 s otherwise (see fl_i2moe_layer.progress).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

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


def _dropout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


POSITIVE, INDEX = _count(1), _count(0)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: ...)`` to every option
    whose help does not state its default already (dataset-dependent defaults are spelled out
    in the help text)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or action.default is argparse.SUPPRESS or action.required
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, ``fl-i2moe: error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


PROG = "fl-i2moe"
CACHE_HELP = "feature cache folder (default: $FL_I2MOE_CACHE or ~/.cache/fl_i2moe)"
MODEL_KINDS = ("fl_i2moe", "dense")


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite `fl-i2moe --debug <command>`.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the full traceback (default: off)")


def _parser() -> argparse.ArgumentParser:
    from fl_i2moe_layer.model.pretrained import package_version

    p = _Parser(
        prog=PROG, formatter_class=_Formatter,
        description="FL-I2MoE from the command line: `demo` runs the planted-interaction "
                    "pipeline end to end; `train`, `evaluate` and `explain` work on any "
                    "dataset entry (planted, mmimdb, enrico, mmhs150k).",
        epilog="Start with `fl-i2moe demo --quick`; see docs/data.md. Errors are printed as "
               "one line (`fl-i2moe: error: ...`, exit status 2); --debug shows the traceback.")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                   help="print the package version and exit")
    _add_common(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    def command(name: str, helptext: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=helptext, description=helptext,
                                formatter_class=_Formatter)
        _add_common(parser)
        return parser

    d = command("demo", "planted data -> FL-I2MoE + dense -> report/index.html")
    d.add_argument("--out", default="report", help="report folder")
    d.add_argument("--quick", action="store_true",
                   help="small data, few epochs (~1 min) (default: off)")
    d.add_argument("--seed", type=INDEX, default=0, help="data, initialisation and training seed")
    d.add_argument("--cache-dir", default=None, help=CACHE_HELP)

    t = command("train", "train FL-I2MoE (or the dense baseline) on a dataset; writes "
                         "best.safetensors, last.safetensors and run.json")
    t.add_argument("--dataset", choices=tuple(DATASETS), default="planted",
                   help="the dataset")
    t.add_argument("--data-dir", default=None,
                   help="real datasets: the dataset folder (default: data/<dataset>)")
    t.add_argument("--model", choices=MODEL_KINDS, default="fl_i2moe",
                   help="the fusion model (recorded in the checkpoints)")
    t.add_argument("--out", default=None,
                   help="run folder; one that already holds a run is refused unless "
                        "--resume is given (default: runs/<dataset>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.safetensors (after the "
                        "last finished epoch) instead of refusing the folder; pass the same "
                        "options, only --epochs (the total) and --patience may change; "
                        "with no run in --out, train from epoch 0 (default: off)")
    t.add_argument("--n", type=POSITIVE, default=None,
                   help="planted examples (default: 800)")
    t.add_argument("--split-limit", type=POSITIVE, default=None,
                   help="real datasets: use at most N items per split (default: all)")
    # None means the dataset's default (fl_i2moe_layer.experiments.datasets.DATASETS).
    t.add_argument("--epochs", type=POSITIVE, default=None,
                   help="most epochs, in total (default: 40)")
    t.add_argument("--seed", type=INDEX, default=None,
                   help="data (planted), initialisation and training seed (default: 0)")
    t.add_argument("--hidden-dim", type=POSITIVE, default=None,
                   help="fusion width (default: 32 planted, 64 real datasets)")
    t.add_argument("--num-layers", type=POSITIVE, default=None,
                   help="Transformer layers per expert (default: 1)")
    t.add_argument("--objective", choices=("specialised", "i2moe"), default=None,
                   help="FL-I2MoE's objective: experts that specialise by cue case, or the "
                        "I2MoE paper's (default: specialised)")
    t.add_argument("--dropout", type=_dropout, default=None,
                   help="dropout inside the experts (default: 0.1)")
    t.add_argument("--max-length", type=POSITIVE, default=None,
                   help="real datasets: text tokens (default: 64)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam learning rate (default: 3e-3 planted, 1e-3 real datasets)")
    t.add_argument("--batch-size", type=POSITIVE, default=None, help="batch size (default: 32)")
    t.add_argument("--patience", type=POSITIVE, default=None,
                   help="epochs without improvement before stopping "
                        "(default: 10 planted, 5 real datasets)")
    t.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    for name, helptext in (("evaluate", "task metrics, planted-pair recovery and pair-masking "
                                        "faithfulness of a run"),
                           ("explain", "SII / RG maps of chosen examples of a run")):
        e = command(name, helptext)
        e.add_argument("--checkpoint", required=True,
                       help="a run folder from `fl-i2moe train` (or its best.safetensors); "
                            "required")
        e.add_argument("--model", choices=MODEL_KINDS, default=None,
                       help="model kind, only for checkpoints written before checkpoints "
                            "recorded it (default: the kind the checkpoint records, else "
                            "run.json's)")
        e.add_argument("--data-dir", default=None,
                       help="dataset folder of a real dataset (default: data/<dataset>)")
        e.add_argument("--split", default=None,
                       help="split (default: the dataset's test split)")
        e.add_argument("--split-limit", type=POSITIVE, default=None,
                       help="real datasets: use at most N items of the split (default: all)")
        e.add_argument("--seed", type=INDEX, default=0, help="seed of the samplers")
        e.add_argument("--cache-dir", default=None, help=CACHE_HELP)
        e.add_argument("--n-samples", type=POSITIVE, default=512,
                       help="SII / RG coalitions per example")
        if name == "evaluate":
            e.add_argument("--faithfulness", action="store_true",
                           help="also SII pair-masking faithfulness (default: off)")
            e.add_argument("--n-faithfulness", type=POSITIVE, default=8,
                           help="examples scored by --faithfulness")
        if name == "explain":
            e.add_argument("--index", "--examples", dest="index", type=INDEX, nargs="+",
                           default=[0], help="example indices in the split")
            e.add_argument("--out", default="explanations",
                           help="figure folder (with --all: the result stores and summary)")
            e.add_argument("--all", action="store_true",
                           help="explain every example of the split into resumable result "
                                "stores, one per component, and summarise them (runs under "
                                "torchrun: shards are spread over the ranks); --index is "
                                "ignored")
            e.add_argument("--components", nargs="+", default=["mixture"],
                           help="with --all: 'mixture' and/or expert names")
            e.add_argument("--batch-size", type=POSITIVE, default=8,
                           help="with --all: examples per explain call")
            e.add_argument("--shard-size", type=POSITIVE, default=64,
                           help="with --all: examples per result file")
    return p


class UsageError(Exception):
    """A mistake on the command line: printed as ``fl-i2moe: error: ...``, exit status 2."""


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
    if planted and args.max_length is not None:
        raise UsageError("--max-length applies to real datasets; planted texts have 10 tokens "
                         "([CLS], 8 words, [SEP]).")
    if planted and args.data_dir is not None:
        raise UsageError("--data-dir applies to real datasets; planted data is generated "
                         "(and cached in --cache-dir).")
    if not planted and args.n is not None:
        raise UsageError("--n applies to planted data; use --split-limit for real datasets.")
    folder = _data_dir(args.dataset, args.data_dir)
    config = new_config(args.dataset, model=args.model, n=args.n, split_limit=args.split_limit,
                        epochs=args.epochs, seed=args.seed, hidden_dim=args.hidden_dim,
                        num_layers=args.num_layers, objective=args.objective,
                        dropout=args.dropout, max_length=args.max_length, lr=args.lr,
                        batch_size=args.batch_size, patience=args.patience)
    out = args.out or f"runs/{args.dataset}"
    _require_folder("--out", out)
    train_run(config, out, data_dir=folder, cache_dir=args.cache_dir, resume=args.resume)
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


def _explain(args: argparse.Namespace, config: Any, model: Any, split: Any) -> int:
    from fl_i2moe_layer.experiments.datasets import class_names
    from fl_i2moe_layer.experiments.explanations import explain_examples, explain_split

    if args.all:
        summary = explain_split(model, split, args.out, components=tuple(args.components),
                                n_samples=args.n_samples, seed=args.seed,
                                batch_size=args.batch_size, shard_size=args.shard_size,
                                class_names=class_names(config.dataset))
        from captum_interactions.datasets import rank_and_world

        if rank_and_world()[0] != 0:  # under torchrun, rank 0 reports
            return 0
        for name, rows in summary["strongest_pairs"].items():
            best = rows[0] if rows else None
            print(f"{name}: strongest pair over the split "
                  + (f"{best['first']} x {best['second']} {best['mean']:+.4f} "
                     f"({best['count']} examples)" if best else "(none)"))
        masked = summary["pair_masking"]
        if masked:
            print(f"pair masking over the split ({masked['examples']} examples): removing the "
                  f"top {masked['budgets'][-1]} pairs by SII drops the logit by "
                  f"{masked['ranked_mean'][-1]:.4f}, random pairs by "
                  f"{masked['random_mean'][-1]:.4f} (p = {masked['p_value'][-1]:.3g})")
        print(f"result stores, summary.md and report.html in {args.out}")
        return 0

    summaries = explain_examples(model, split, args.index, args.out,
                                 n_samples=args.n_samples, seed=args.seed)
    for s in summaries:
        print(f"example {s['index']} (id {s['id']}): target {s['target']} "
              f"routing {s['routing']} -> {args.out}")
    return 0


#: Exceptions that a wrong argument, file or environment causes (raised by the package's
#: validation): printed as one ``fl-i2moe: error: ...`` line, exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, ValueError, TypeError, IndexError, FileNotFoundError, FileExistsError,
    IsADirectoryError, NotADirectoryError, PermissionError, ImportError,
)


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (which tests and notebooks may replace)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _LineFormatter(logging.Formatter):
    """``[12:03:04] message``, with ``warning:`` / ``error:`` before warnings and errors."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition("] ")
            text = f"{stamp}] {record.levelname.lower()}: {message}"
        return text


def configure_logging(debug: bool = False) -> None:
    """Log the packages' messages (progress lines, skipped items, warnings) to stderr, once:
    calling it again only updates the level. When stderr is not a terminal, Hugging Face's
    own progress bars are turned off too (they would write carriage returns into logs)."""
    from fl_i2moe_layer.progress import interactive, quiet_foreign_bars

    if not interactive():
        quiet_foreign_bars()
    level = logging.DEBUG if debug else logging.INFO
    for name in ("fl_i2moe_layer", "captum_interactions"):
        log = logging.getLogger(name)
        log.setLevel(level)
        if not any(isinstance(h, _StderrHandler) for h in log.handlers):
            handler = _StderrHandler()
            handler.setFormatter(_LineFormatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
            log.addHandler(handler)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, ImportError) and error.name and "pip install" not in text:
        text += " (install the extras: pip install 'captum-interactions[fl,weights]')"
    return text


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from fl_i2moe_layer.experiments.demo import DemoSettings, run_demo

        _require_folder("--out", args.out)
        settings = DemoSettings.quick(args.seed) if args.quick else DemoSettings(seed=args.seed)
        run_demo(args.out, settings=settings, cache_dir=args.cache_dir)
        return 0
    if args.command == "train":
        return _train(args)
    from fl_i2moe_layer.experiments.config import run_folder
    from fl_i2moe_layer.experiments.datasets import load_split
    from fl_i2moe_layer.experiments.runs import load_run

    if args.command == "explain":
        _require_folder("--out", args.out)
    config, model = load_run(run_folder(args.checkpoint), model=args.model)
    folder = _data_dir(config.dataset, args.data_dir)
    split_name = args.split or DATASETS[config.dataset].splits[2]
    split = load_split(config, split_name, data_dir=folder, cache_dir=args.cache_dir,
                       limit=args.split_limit)
    if args.command == "evaluate":
        return _evaluate(args, config, model, split, split_name)
    return _explain(args, config, model, split)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fl-i2moe`` and ``python -m fl_i2moe_layer``.

    Returns the exit status: 0, 2 for a user error (one ``fl-i2moe: error: ...`` line on
    stderr; with ``--debug`` the traceback first), 130 when interrupted. Wrong options exit
    with status 2 through ``SystemExit`` (argparse).
    """
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    configure_logging(debug)
    try:
        return _run(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        hint = ("; rerun the same command with --resume to continue from the last finished "
                "epoch" if args.command == "train" else "")
        print(f"{PROG}: interrupted{hint}", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
