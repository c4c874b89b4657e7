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
        raise ImportError("plots need matplotlib: pip install 'captum-interactions[plots]' "
                          "(also part of [fl]).") \
            from exc
    return plt


def _finish(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def _numpy(t: Tensor) -> Any:
    return t.detach().float().cpu().numpy()


def _luminance(rgba: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour (components in [0, 1])."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(background: Sequence[float]) -> str:
    """``"black"`` or ``"white"``, whichever contrasts more with ``background`` (WCAG
    contrast ratio): white text on dark backgrounds, black on light ones."""
    lum = _luminance(background)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


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
                             xlabel: str = "", ylabel: str = "",
                             colorbar_label: str = "interaction (red > 0, blue < 0)",
                             signed: bool = True,
                             path: str | os.PathLike[str] | None = None) -> Any:
    """Heatmap of a (rows, cols) interaction block with labelled axes and colour bar:
    ``signed`` scores on a diverging scale centred at 0 (red = positive, blue = negative),
    non-negative ones (``signed=False``, e.g. RG) on a white-to-red scale from 0."""
    plt = _pyplot()
    values = _numpy(matrix)
    bound = float(abs(values).max()) or 1.0
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * cols, 14), min(1.5 + 0.3 * rows, 12)))
    if signed:
        image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    else:
        image = ax.imshow(values, cmap="Reds", vmin=0, vmax=bound, aspect="auto")
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(colorbar_label)
    if row_labels is not None:
        ax.set_yticks(range(rows), list(row_labels)[:rows])
    if col_labels is not None:
        ax.set_xticks(range(cols), list(col_labels)[:cols], rotation=90)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, path)


def plot_text_attributions(tokens: Sequence[str], scores: Tensor, *, title: str = "",
                           per_line: int = 12, colorbar_label: str = "attribution",
                           width: float = 10.0, fontsize: float = 12.0,
                           path: str | os.PathLike[str] | None = None) -> Any:
    """Tokens laid out in lines (wrapped to ``width`` inches, at most ``per_line`` a line),
    each on a background coloured by its score (red = positive, blue = negative, centred at
    0) in black or white text, whichever contrasts more with the background; a labelled
    colour bar underneath gives the scale."""
    plt = _pyplot()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    values = _numpy(scores)
    bound = float(abs(values).max()) if values.size else 0.0
    bound = bound or 1.0
    cmap = colormaps["RdBu_r"]
    norm = Normalize(-bound, bound)
    fig = plt.figure(figsize=(width, 2.0))
    pad = 0.3 * fontsize / 72  # the boxes' padding (inches), on each side
    gap, margin, line_h = 0.1, 0.1, 2.2 * fontsize / 72
    renderer = fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer") else None

    def text_width(token: str) -> float:
        if renderer is None:
            return 0.6 * fontsize / 72 * len(token)
        probe = fig.text(0, 0, token, fontsize=fontsize)
        extent = probe.get_window_extent(renderer).width / fig.dpi
        probe.remove()
        return float(extent)

    places: list[tuple[int, float]] = []  # (line, x in inches)
    line, x, on_line = 0, margin, 0
    for token in tokens:
        w = text_width(token) + 2 * pad
        if on_line and (x + w > width - margin or on_line >= per_line):
            line, x, on_line = line + 1, margin, 0
        places.append((line, x + pad))
        x, on_line = x + w + gap, on_line + 1
    n_lines = line + 1
    top, bottom = (0.45 if title else 0.15), 1.0
    height = top + n_lines * line_h + bottom
    fig.set_size_inches(width, height)
    for (line, x), token, value in zip(places, tokens, values, strict=False):
        colour = cmap(norm(float(value)))
        fig.text(x / width, 1 - (top + (line + 0.5) * line_h) / height, token,
                 fontsize=fontsize, ha="left", va="center", color=text_colour(colour),
                 bbox={"facecolor": colour, "edgecolor": "0.55", "linewidth": 0.6,
                       "boxstyle": "round,pad=0.3"})
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=fontsize)
    bar_w = min(0.8, 4.0 / width)
    cax = fig.add_axes(((1 - bar_w) / 2, 0.62 / height, bar_w, 0.13 / height))
    bar = fig.colorbar(ScalarMappable(norm, cmap), cax=cax, orientation="horizontal")
    bar.set_label(colorbar_label, fontsize=9)
    bar.ax.tick_params(labelsize=8)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)
    return fig


def plot_image_patches(image: Tensor, scores: Tensor, *, grid: tuple[int, int] | None = None,
                       title: str = "", alpha: float = 0.5,
                       colorbar_label: str = "patch score (red > 0, blue < 0)",
                       path: str | os.PathLike[str] | None = None) -> Any:
    """An image (3, H, W) or (H, W, 3) in [0, 1] with patch scores (P,) overlaid on a grid
    (default: square, P = g²) and a labelled colour bar."""
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
    fig, ax = plt.subplots(figsize=(5, 4 * h / max(w, 1)))
    ax.imshow(img.clamp(0, 1).numpy())
    overlay = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, alpha=alpha,
                        extent=(0, w, h, 0), interpolation="nearest")
    ax.axis("off")
    ax.set_title(title)
    bar = fig.colorbar(overlay, ax=ax, shrink=0.85)
    if bar.solids is not None:  # the scale in full colour, not faded like the overlay
        bar.solids.set_alpha(1)
    bar.set_label(colorbar_label)
    return _finish(fig, path)
