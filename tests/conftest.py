"""Shared fixtures: a tiny fusion Transformer trained once per test session."""

from __future__ import annotations

import os

import pytest
import torch

from captum_interactions.testing import train_tiny_fusion

#: Intra-op threads of every test: 1 by default; ``TEST_TORCH_THREADS=2 make test`` runs the
#: suite at two (torch 2.13's batched LU solve is wrong on CPU above one thread for ~200+
#: unknowns, so the estimators must be right at any count).
TEST_THREADS = int(os.environ.get("TEST_TORCH_THREADS", "1"))


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Test tensors are tiny: intra-op threads only add synchronisation, which gets costly when
    another process holds one of CI's two cores. Restored after each test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def trained_fusion() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A 6 + 6 player fusion Transformer (trained ~2 s on CPU), double precision, and 4
    held-out examples (text (4, 6, 16), image (4, 6, 16))."""
    # Session fixtures are set up before the function-scoped thread pinning above, so pin here
    # too: with two threads on a busy 2-core machine, training took 17-25 s instead of 5 s.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, text, image = train_tiny_fusion(seed=0, steps=250, n_text=6, n_image=6)
    finally:
        torch.set_num_threads(previous)
    return model.double(), text[:4].double(), image[:4].double()


@pytest.fixture(scope="module")
def clip():
    """A tiny random CLIP (tests/hf_fixtures.py); skips without transformers."""
    pytest.importorskip("transformers", reason="needs the [hf] extra")
    from hf_fixtures import tiny_clip

    return tiny_clip()


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    """Two 3 x 32 x 32 float64 images."""
    from hf_fixtures import image_batch

    return image_batch()
