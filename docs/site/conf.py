"""Sphinx configuration of the documentation site: ``make docs``.

Builds ``docs/site/_build/html`` with warnings as errors and without network:

* autodoc + napoleon read the Google-style docstrings of both packages (``api/``);
* MyST (through myst-nb) shows the Markdown files of ``docs/`` and the README, included, not
  copied (``_ext/md_includes.py`` rewrites their repository-relative links);
* myst-nb executes the tutorial notebooks (MyST Markdown, ``*.md`` with a ``kernelspec``) at
  build time on the venv's ``python3`` kernel, on CPU, with a cache;
* intersphinx links to torch, captum and shapiq through small local inventories
  (``_ext/offline_inventories.py``); ``DOCS_INTERSPHINX_ONLINE=1`` tries the published ones
  first.
"""

from __future__ import annotations

import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
ROOT = SITE.parents[1]
BUILD = SITE / "_build"
sys.path.insert(0, str(SITE / "_ext"))
sys.path.insert(0, str(ROOT))  # the packages, when sphinx-build runs outside the venv install

import offline_inventories  # noqa: E402
from md_includes import missing_optional_pages  # noqa: E402

import captum_interactions  # noqa: E402

project = "captum-interactions"
author = "captum-interactions developers"
copyright = "captum-interactions developers"
release = captum_interactions.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",  # registers myst_parser too: Markdown pages and MyST Markdown notebooks
    "md_includes",
    "docstring_fixes",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "jupyter_execute", ".jupyter_cache", "**/.ipynb_checkpoints"]
# docs/tutorial.md is written separately; its page is left out while the file is absent.
exclude_patterns += [f"{page}.md" for page in missing_optional_pages(ROOT)]

nitpicky = False
suppress_warnings: list[str] = []

# -- autodoc / autosummary / napoleon ------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autoclass_content = "class"  # constructor arguments are documented in the class docstring
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = True
autosummary_generate = False  # the API pages list their objects; no generated stub files

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not as separate (duplicate) objects
napoleon_use_rtype = True  # "Returns: *Tensor* or ...": the type as written, in its own field

# -- MyST / myst-nb -----------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # GitHub-style anchors (usage.md#hugging-face-models)

nb_execution_mode = "cache"
nb_execution_cache_path = str(BUILD / ".jupyter_cache")
nb_execution_timeout = 120  # per cell; each notebook runs in seconds on a CPU
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_kernel_rgx_aliases = {".*": "python3"}  # the kernel of the Python running sphinx-build
nb_merge_streams = True

# -- intersphinx (offline) ----------------------------------------------------------------------
intersphinx_mapping = offline_inventories.intersphinx_mapping(BUILD / ".intersphinx")
intersphinx_timeout = 10

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"captum-interactions {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
