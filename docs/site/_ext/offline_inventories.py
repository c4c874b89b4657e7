"""Intersphinx without network: small local inventories for torch, captum and shapiq.

The site links type hints and docstring references to the PyTorch, Captum and shapiq
documentation. Intersphinx normally downloads each project's ``objects.inv`` at build time,
which fails (and, with ``-W``, fails the build) where there is no network, as in CI. So
``conf.py`` writes, before intersphinx loads, a small inventory per project that lists the
objects this site refers to, with their documented pages, and points intersphinx at it.

With ``DOCS_INTERSPHINX_ONLINE=1`` the projects' published inventories are tried first and the
local ones are only a fallback (intersphinx then merely logs that it used the alternative).

The URLs follow each project's documentation layout: PyTorch's ``docs/stable`` pages; Captum's
API pages, one per ``sphinx/source/<name>.rst`` of its repository; shapiq's autosummary pages
``generated/<module>.<Class>.html``. Each object is listed under its public name and under
its defining module's name (``torch.nn.modules.module.Module``), which is what autodoc writes
for type hints.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

# name -> (documentation root, [(public name, canonical name or None, role, page), ...])
PROJECTS: dict[str, tuple[str, list[tuple[str, str | None, str, str]]]] = {
    "torch": (
        "https://docs.pytorch.org/docs/stable/",
        [
            ("torch.Tensor", None, "class", "tensors.html"),
            ("torch.Size", None, "class", "size.html"),
            ("torch.device", None, "class", "tensor_attributes.html"),
            ("torch.dtype", None, "class", "tensor_attributes.html"),
            ("torch.Generator", "torch._C.Generator", "class", "generated/torch.Generator.html"),
            ("torch.nn.Module", "torch.nn.modules.module.Module", "class",
             "generated/torch.nn.Module.html"),
            ("torch.nn.Embedding", "torch.nn.modules.sparse.Embedding", "class",
             "generated/torch.nn.Embedding.html"),
            ("torch.nn.Linear", "torch.nn.modules.linear.Linear", "class",
             "generated/torch.nn.Linear.html"),
            ("torch.utils.data.Dataset", "torch.utils.data.dataset.Dataset", "class",
             "data.html"),
            ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader", "class",
             "data.html"),
            ("torch.no_grad", "torch.autograd.grad_mode.no_grad", "class",
             "generated/torch.no_grad.html"),
        ],
    ),
    "captum": (
        "https://captum.ai/api/",
        [
            ("captum.attr.Attribution", "captum.attr._utils.attribution.Attribution", "class",
             "base_classes.html"),
            ("captum.attr.PerturbationAttribution",
             "captum.attr._utils.attribution.PerturbationAttribution", "class",
             "base_classes.html"),
            ("captum.attr.GradientAttribution",
             "captum.attr._utils.attribution.GradientAttribution", "class", "base_classes.html"),
            ("captum.attr.FeatureAblation", "captum.attr._core.feature_ablation.FeatureAblation",
             "class", "feature_ablation.html"),
            ("captum.attr.ShapleyValueSampling",
             "captum.attr._core.shapley_value.ShapleyValueSampling", "class",
             "shapley_value_sampling.html"),
            ("captum.attr.ShapleyValues", "captum.attr._core.shapley_value.ShapleyValues",
             "class", "shapley_value_sampling.html"),
            ("captum.attr.IntegratedGradients",
             "captum.attr._core.integrated_gradients.IntegratedGradients", "class",
             "integrated_gradients.html"),
            ("captum.attr.KernelShap", "captum.attr._core.lime.KernelShap", "class",
             "kernel_shap.html"),
            ("captum.attr.Occlusion", "captum.attr._core.occlusion.Occlusion", "class",
             "occlusion.html"),
        ],
    ),
    "shapiq": (
        "https://shapiq.readthedocs.io/en/stable/",
        [
            ("shapiq.Game", "shapiq.game.Game", "class", "generated/shapiq.game.Game.html"),
            ("shapiq.InteractionValues", "shapiq.interaction_values.InteractionValues", "class",
             "generated/shapiq.interaction_values.InteractionValues.html"),
        ],
    ),
}


def write_inventory(path: Path, project: str, entries: list[tuple[str, str | None, str, str]]
                    ) -> None:
    """Write a Sphinx version-2 inventory (``objects.inv``) listing ``entries``."""
    lines = []
    for public, canonical, role, page in entries:
        # Both names point at the anchor of the documented (public) name.
        for name in (public, canonical):
            if name is not None:
                lines.append(f"{name} py:{role} 1 {page}#{public} -\n")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))


def intersphinx_mapping(out_dir: Path) -> dict[str, tuple[str, tuple[str | None, ...]]]:
    """Write the local inventories into ``out_dir``; return ``intersphinx_mapping``."""
    online = os.environ.get("DOCS_INTERSPHINX_ONLINE", "") == "1"
    mapping: dict[str, tuple[str, tuple[str | None, ...]]] = {}
    for name, (root, entries) in PROJECTS.items():
        local = out_dir / f"{name}.inv"
        write_inventory(local, name, entries)
        locations: tuple[str | None, ...] = (None, str(local)) if online else (str(local),)
        mapping[name] = (root, locations)
    return mapping
