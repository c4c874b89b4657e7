"""Whole datasets into a resumable store, on one process and on 2 torchrun ranks (gloo, CPU):
results equal a direct explanation, a crash loses only the shard in progress, a rerun
recomputes nothing finished and ends identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_job import data_and_model, prepare

from captum_interactions import ShapleyInteractionIndex
from captum_interactions.datasets import ResultStore, explain_dataset

JOB = Path(__file__).with_name("dataset_job.py")


def stacked(store: ResultStore) -> dict[str, torch.Tensor]:
    parts = list(store.shards())
    return {key: torch.cat([getattr(p, key) for p in parts])
            for key in ("index", "values", "stderr", "main_effects", "n_players", "target")}


def run(out: Path, **kwargs: object) -> ResultStore:
    dataset, model = data_and_model()
    options = {"prepare": prepare, "batch_size": 3, "shard_size": 4, "device": "cpu",
               "n_samples": 64, "seed": 0, **kwargs}
    return explain_dataset(ShapleyInteractionIndex(model), dataset, out, **options)


def test_store_holds_what_explain_gives_and_summaries(tmp_path: Path) -> None:
    store = run(tmp_path / "store")
    dataset, model = data_and_model()
    text, image, target = dataset.tensors
    direct = ShapleyInteractionIndex(model).explain((text, image), target=target,
                                                    n_samples=64, seed=0)
    got = stacked(store)
    assert got["index"].tolist() == list(range(20))
    torch.testing.assert_close(got["values"], direct.values, rtol=0, atol=1e-12)
    torch.testing.assert_close(got["stderr"], direct.stderr, rtol=0, atol=1e-12)
    torch.testing.assert_close(got["main_effects"], direct.main_effects, rtol=0, atol=1e-12)
    assert torch.equal(got["target"], target) and bool((got["n_players"] == 7).all())
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["finished"] == list(range(5))
    assert manifest["settings"]["explain"] == {"n_samples": 64, "seed": 0}
    assert {"torch", "captum", "python"} <= set(manifest["versions"])
    # Dataset level: the mean of each (name, name) pair over the 20 examples.
    top = store.strongest_pairs(3)
    expected = direct.values.double().mean(0)
    flat = torch.triu(expected, 1)
    best = torch.argsort(flat.flatten(), descending=True)[:3]
    assert [(r["first"], r["second"]) for r in top] == [
        (direct.player_names[0][int(k) // 7], direct.player_names[0][int(k) % 7]) for k in best]
    assert top[0]["mean"] == pytest.approx(float(flat.flatten()[best[0]]))
    assert top[0]["count"] == 20 and top[0]["stderr"] > 0
    # Within groups of examples (e.g. by label; example 0 in both, 19 in none): the same
    # means computed over each group's examples only.
    membership = torch.zeros(20, 2, dtype=torch.bool)
    membership[:10, 0], membership[5:19, 1] = True, True
    by_group = store.strongest_pairs_by(membership, 2)
    for g in range(2):
        rows = direct.values.double()[membership[:, g]]
        mean = torch.triu(rows.mean(0), 1).flatten()
        best = torch.argsort(mean, descending=True)[:2]
        assert [(r["first"], r["second"]) for r in by_group[g]] == [
            (direct.player_names[0][int(k) // 7], direct.player_names[0][int(k) % 7])
            for k in best]
        assert by_group[g][0]["mean"] == pytest.approx(float(mean[best[0]]))
        assert by_group[g][0]["count"] == int(membership[:, g].sum())
        sd = rows.flatten(1)[:, best[0]].std()
        assert by_group[g][0]["stderr"] == pytest.approx(float(sd) / rows.shape[0] ** 0.5)
    assert store.strongest_pairs_by(None, 3)[0] == top
    with pytest.raises(ValueError, match=r"membership must be an \(N, G\) bool tensor"):
        store.strongest_pairs_by(membership[:5])


def test_a_crash_loses_only_the_shard_in_progress(tmp_path: Path) -> None:
    written: list[int] = []

    def crash_after_two(shard: int) -> None:
        written.append(shard)
        if len(written) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "store", on_shard=crash_after_two)
    folder = tmp_path / "store"
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.safetensors")}
    assert sorted(before) == ["shard-000000.safetensors", "shard-000001.safetensors"]
    resumed: list[int] = []
    store = run(folder, on_shard=resumed.append)
    assert resumed == [2, 3, 4]  # nothing finished is recomputed
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.safetensors")
            if p.name in before} == before
    fresh = stacked(run(tmp_path / "fresh"))
    for key, value in stacked(store).items():
        assert torch.equal(value, fresh[key]), key
    assert json.loads((folder / "manifest.json").read_text())["complete"]


def test_other_settings_are_refused(tmp_path: Path) -> None:
    run(tmp_path / "store", shard_size=10)
    with pytest.raises(ValueError, match=r"other settings \(they differ in \['explain'\]\)"):
        run(tmp_path / "store", shard_size=10, n_samples=128)
    with pytest.raises(ValueError, match=r"vary per batch: return them from prepare="):
        run(tmp_path / "other", target=0)
    with pytest.raises(TypeError, match=r"map-style dataset"):
        explain_dataset(ShapleyInteractionIndex(data_and_model()[1]), iter([]), tmp_path / "x")
    with pytest.raises(TypeError, match=r"explain\(\) method"):
        explain_dataset(data_and_model()[1], data_and_model()[0], tmp_path / "y")


def torchrun(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(JOB.parent)}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", str(JOB), str(out), *extra], env=env, capture_output=True, text=True,
        timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_two_ranks_a_killed_rank_and_a_rerun(tmp_path: Path) -> None:
    whole = torchrun(tmp_path / "whole" / "store")
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = stacked(ResultStore(tmp_path / "whole" / "store",
                                    _settings(tmp_path / "whole" / "store"), 5))
    single = stacked(run(tmp_path / "single"))
    for key, value in reference.items():
        torch.testing.assert_close(value, single[key], rtol=0, atol=1e-12)

    folder = tmp_path / "killed" / "store"
    killed = torchrun(folder, "--kill-rank", "1", "--kill-after", "1")
    assert killed.returncode != 0  # rank 1 died after its first shard
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in folder.glob("shard-*.safetensors")}
    first_run = _computed(folder.parent)
    assert ("1", "1") in first_run and len(finished) < 5
    (folder.parent / "computed-0.log").unlink(missing_ok=True)
    (folder.parent / "computed-1.log").unlink(missing_ok=True)
    again = torchrun(folder)
    assert again.returncode == 0, again.stderr[-2000:]
    second_run = _computed(folder.parent)
    assert {s for _, s in second_run}.isdisjoint({s for _, s in first_run})
    assert {s for _, s in first_run} | {s for _, s in second_run} == {str(s) for s in range(5)}
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.glob("shard-*.safetensors") if p.name in finished} == finished
    result = stacked(ResultStore(folder, _settings(folder), 5))
    for key, value in reference.items():
        assert torch.equal(value, result[key]), key


def _settings(folder: Path) -> dict[str, object]:
    return json.loads((folder / "manifest.json").read_text())["settings"]


def _computed(folder: Path) -> set[tuple[str, str]]:
    lines: set[tuple[str, str]] = set()
    for log in folder.glob("computed-*.log"):
        lines |= {tuple(line.split()) for line in log.read_text().splitlines()}  # type: ignore[misc]
    return lines
