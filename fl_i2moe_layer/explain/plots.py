"""matplotlib figures for explanations: routing bars, token × patch heatmaps, highlighted
text, image patch overlays. Each function returns the Figure and saves it when given a path.
matplotlib is imported lazily so that the layer itself does not need it."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'captum-interactions[plots]'.") \
            from exc
    return plt


def _finish(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def _numpy(t: Tensor) -> Any:
    return t.detach().float().cpu().numpy()


def plot_routing_weights(weights: Tensor, names: Sequence[str], *,
                         path: str | os.PathLike[str] | None = None) -> Any:
    """Bars of routing weights (E,), or mean ± std bars of a batch (B, E)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3))
    if weights.dim() == 2:
        mean = weights.mean(0)
        std = weights.std(0) if weights.shape[0] > 1 else torch.zeros_like(mean)
        ax.bar(list(names), _numpy(mean), yerr=_numpy(std), capsize=3, color="tab:blue")
    else:
        ax.bar(list(names), _numpy(weights), color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel("routing weight")
    ax.tick_params(axis="x", rotation=30)
    return _finish(fig, path)


def plot_routing_distribution(weights: Tensor, names: Sequence[str], *,
                              path: str | os.PathLike[str] | None = None) -> Any:
    """Box plot of each expert's routing weight over a dataset (N, E)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3))
    ax.boxplot([_numpy(weights[:, e]) for e in range(weights.shape[1])])
    ax.set_xticks(range(1, len(names) + 1), list(names), rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("routing weight")
    return _finish(fig, path)


def plot_interaction_heatmap(matrix: Tensor, *, row_labels: Sequence[str] | None = None,
                             col_labels: Sequence[str] | None = None, title: str = "",
                             path: str | os.PathLike[str] | None = None) -> Any:
    """Heatmap of a (rows, cols) interaction block, colours centred at 0 (red = positive)."""
    plt = _pyplot()
    values = _numpy(matrix)
    bound = float(abs(values).max()) or 1.0
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * cols, 14), min(1.5 + 0.3 * rows, 12)))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8)
    if row_labels is not None:
        ax.set_yticks(range(rows), list(row_labels)[:rows])
    if col_labels is not None:
        ax.set_xticks(range(cols), list(col_labels)[:cols], rotation=90)
    ax.set_title(title)
    return _finish(fig, path)


def plot_text_attributions(tokens: Sequence[str], scores: Tensor, *, title: str = "",
                           per_line: int = 12,
                           path: str | os.PathLike[str] | None = None) -> Any:
    """Tokens laid out in lines, each on a background coloured by its score."""
    plt = _pyplot()
    from matplotlib import colormaps

    values = _numpy(scores)
    bound = float(abs(values).max()) or 1.0
    cmap = colormaps["RdBu_r"]
    n_lines = max(1, math.ceil(len(tokens) / per_line))
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * n_lines))
    ax.axis("off")
    for i, (token, value) in enumerate(zip(tokens, values, strict=False)):
        line, col = divmod(i, per_line)
        colour = cmap(0.5 + 0.5 * float(value) / bound)
        ax.text(col / per_line, 1 - (line + 0.5) / n_lines, token, fontsize=10,
                ha="left", va="center", transform=ax.transAxes,
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 2})
    ax.set_title(title)
    return _finish(fig, path)


def plot_image_patches(image: Tensor, scores: Tensor, *, grid: tuple[int, int] | None = None,
                       title: str = "", alpha: float = 0.5,
                       path: str | os.PathLike[str] | None = None) -> Any:
    """An image (3, H, W) or (H, W, 3) in [0, 1] with patch scores (P,) overlaid on a grid
    (default: square, P = g²)."""
    plt = _pyplot()
    img = image.detach().float().cpu()
    if img.dim() == 3 and img.shape[0] in (1, 3):
        img = img.permute(1, 2, 0)
    n = scores.numel()
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch scores are not a square grid: pass grid=(rows, cols).")
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid {grid} does not hold {n} patch scores.")
    values = _numpy(scores.reshape(grid))
    bound = float(abs(values).max()) or 1.0
    h, w = img.shape[0], img.shape[1]
    fig, ax = plt.subplots(figsize=(4, 4 * h / max(w, 1)))
    ax.imshow(img.clamp(0, 1).numpy())
    ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, alpha=alpha,
              extent=(0, w, h, 0), interpolation="nearest")
    ax.axis("off")
    ax.set_title(title)
    return _finish(fig, path)
