"""The `fl-i2moe` command's conventions: --version, help with defaults, one-line user errors
(exit 2, no traceback unless --debug), and progress output without carriage returns when
stderr is not a terminal."""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fl_fixtures import mmimdb_tree

from fl_i2moe_layer import __version__
from fl_i2moe_layer.cli import _parser, main
from fl_i2moe_layer.progress import Progress, progress

ROOT = Path(__file__).resolve().parents[1]


def _cli(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``python -m fl_i2moe_layer ARGV`` with stdout and stderr captured (not terminals), as
    text with every ``\r`` kept (``text=True`` would turn them into newlines)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    raw = subprocess.run([sys.executable, "-m", "fl_i2moe_layer", *argv], capture_output=True,
                         timeout=timeout, env=env, cwd=ROOT)
    return subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(),
                                       raw.stderr.decode())


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"fl-i2moe {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", __version__)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_help_lists_every_option_with_a_help_text_and_its_default(capsys):
    parser = _parser()
    commands = {"": parser, **_subparsers(parser)}
    assert sorted(commands) == ["", "demo", "evaluate", "explain", "train"]
    for name, sub in commands.items():
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"] if name else ["--help"])
        assert stop.value.code == 0
        text = capsys.readouterr().out
        # one block per option: from its line to the next option's line
        blocks = re.split(r"\n(?=  -)", text.split("options:", 1)[1])
        for action in sub._actions:
            if not action.option_strings or isinstance(
                    action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            option = action.option_strings[0]
            assert action.help, f"{name} {option} has no help text"
            block = next((b for b in blocks if re.match(rf"\s*{re.escape(option)}\b", b)), None)
            assert block is not None, f"{name} --help does not list {option}"
            block = " ".join(block.split())
            assert "(default:" in block or "required" in block, \
                f"{name} --help: {option} does not show its default: {block!r}"
            if action.default not in (None, False, argparse.SUPPRESS) and \
                    not isinstance(action.default, list):
                assert f"default: {action.default}" in block, block


def test_user_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    result = _cli("evaluate", "--checkpoint", str(tmp_path / "nope"))  # a real process
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("fl-i2moe: error: no run.json next to ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    # wrong options (argparse) too
    with pytest.raises(SystemExit) as stop:
        main(["train", "--batch-size", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("fl-i2moe: error: argument --batch-size: must be >= 1, got 0")


def test_debug_shows_the_traceback(tmp_path, capsys):
    result = _cli("evaluate", "--checkpoint", str(tmp_path), "--debug")
    assert result.returncode == 2
    assert result.stderr.startswith("Traceback (most recent call last):"), result.stderr
    assert "FileNotFoundError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("fl-i2moe: error: no run.json")
    assert main(["--debug", "evaluate", "--checkpoint", str(tmp_path)]) == 2  # before COMMAND
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "fl-i2moe: error: no run.json" in err


def test_library_errors_in_process(tmp_path, capsys, monkeypatch):
    """Exceptions of the package's validation become the one line too (here a --model that
    contradicts the checkpoint's record), and --debug prints their traceback."""
    from fl_i2moe_layer.experiments import new_config
    from fl_i2moe_layer.experiments.runs import build_model
    from fl_i2moe_layer.training.checkpoints import save_checkpoint

    config = new_config("planted", model="dense", hidden_dim=8)
    config.feature_dims = [6, 5]
    save_checkpoint(tmp_path / "best.safetensors", build_model(config))
    config.save(tmp_path)

    def stop(*args, **kwargs):
        raise AssertionError("must fail before loading data")

    monkeypatch.setattr("fl_i2moe_layer.experiments.datasets.load_split", stop)
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--model", "fl_i2moe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(r"fl-i2moe: error: the model kind 'fl_i2moe' was given \(--model\) but "
                    r"checkpoint .* records a 'dense' model; leave the option out", err)
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--model", "fl_i2moe",
                 "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError" in err


def test_progress_lines_when_stderr_is_not_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("fl_i2moe_layer.progress.interactive", lambda: False)
    with caplog.at_level(logging.INFO, logger="fl_i2moe_layer.progress"):
        bar = progress(range(4), desc="training", interval=0.0, unit="epoch")
        for i in bar:
            bar.set_postfix(loss=f"{1 / (i + 1):.2f}")
        assert [r.getMessage().split(",")[0] for r in caplog.records] == [
            "training: 1/4 epoch (25%)", "training: 2/4 epoch (50%)", "training: 3/4 epoch (75%)",
            "training: done"]
        assert caplog.records[-1].getMessage().endswith("loss=0.25")
        caplog.clear()
        for i in progress(range(10), desc="epochs", unit="epoch"):  # default interval: 30 s
            if i == 2:
                break
        assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
            "epochs: stopped, 2/10 epoch"]
        caplog.clear()
        assert list(progress(iter("ab"), desc="inner", leave=False, interval=1e9)) == ["a", "b"]
        assert list(progress(range(3), desc="off", disable=True)) == [0, 1, 2]
        assert caplog.records == []


def test_progress_is_a_tqdm_bar_on_a_terminal(monkeypatch):
    monkeypatch.setattr("fl_i2moe_layer.progress.interactive", lambda: True)
    bar = Progress(range(3), desc="x", leave=False)
    assert bar.mode == "bar" and list(bar) == [0, 1, 2]
    bar.set_postfix({"loss": 1.0})


def test_trainer_progress_has_no_carriage_returns(tmp_path):
    """A whole `fl-i2moe train` with stderr piped: every progress report is a plain line."""
    data = mmimdb_tree(tmp_path / "mmimdb")
    result = _cli("train", "--dataset", "mmimdb", "--data-dir", str(data), "--cache-dir",
                  str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--epochs", "2",
                  "--hidden-dim", "8", "--max-length", "12", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\r" not in result.stdout
    assert re.search(r"^\[\d\d:\d\d:\d\d\] training: done, 2/2 epoch in \d+s, train_loss=",
                     result.stderr, flags=re.M), result.stderr
    assert "encoding" in result.stderr and "run: " in result.stdout
    # the checkpoint records the model kind: `evaluate` needs no --model
    from fl_i2moe_layer.training.checkpoints import checkpoint_model_kind

    assert checkpoint_model_kind(tmp_path / "run" / "best.safetensors") == "fl_i2moe"
