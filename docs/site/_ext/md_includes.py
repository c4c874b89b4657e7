"""Show the repository's Markdown (docs/*.md, README.md) on the site without copying it.

Each page of the site that shows one of those files is a two-line wrapper with a MyST
``{include}`` directive. The files are written for GitHub, so their relative links point at
other files of the repository (``usage.md``, ``docs/data.md``, ``../README.md``,
``benchmarks/...``). On the ``include-read`` event this extension rewrites, in the included
text only (never in the files):

* a link to a Markdown file that the site shows -> a link to the page that shows it (anchors
  kept; MyST resolves them with ``myst_heading_anchors``);
* a link to any other file of the repository -> its path as inline code (the site does not
  publish those files, and a link would be dead);
* for a page that shows only one section of a file (``SECTIONS``): the text is cut down to
  that section's body (the page gives the title; its subsections move up to H2), and
  ``#anchor`` links are pointed at the page with the whole file;
* for a whole file: a second H1 heading (``docs/benchmarks.md`` has one) becomes H2, so that
  the page has one title and one entry in the navigation.

External links (``https://...``) and code blocks are left alone. ``docs/tutorial.md`` is
optional (it may not exist yet): its page is excluded and dropped from the toctree when absent.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

# Repository file -> the site page (docname) that includes it whole.
PAGES: dict[str, str] = {
    "README.md": "getting-started",
    "docs/design.md": "concepts/design",
    "docs/definitions.md": "concepts/definitions",
    "docs/usage.md": "guide/usage",
    "docs/estimators.md": "guide/estimators",
    "docs/metrics.md": "guide/metrics",
    "docs/fl_i2moe.md": "guide/fl_i2moe",
    "docs/data.md": "guide/data",
    "docs/scaling.md": "guide/scaling",
    "docs/benchmarks.md": "tutorials/benchmarks",
    "docs/tutorial.md": "tutorials/real-weights",
}

# (page, repository file) -> the heading of the one section that the page shows.
SECTIONS: dict[tuple[str, str], str] = {
    ("getting-started", "README.md"): "Set-up: two commands",
    ("tutorials/huggingface", "docs/usage.md"): "Hugging Face models",
}

# Pages whose file may be missing: (page, repository file, the toctree that lists the page,
# the toctree entry).
OPTIONAL: list[tuple[str, str, str, str]] = [
    ("tutorials/real-weights", "docs/tutorial.md", "tutorials/index", "real-weights"),
]

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def missing_optional_pages(root: Path) -> list[str]:
    """Site pages (docnames) whose repository file is absent."""
    return [page for page, path, _, _ in OPTIONAL if not (root / path).is_file()]


def split_fenced(text: str) -> list[tuple[bool, str]]:
    """Split Markdown into (is_code, chunk) pieces at fenced code blocks."""
    pieces: list[tuple[bool, str]] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        match = FENCE.match(line)
        if fence is None and match:
            pieces.append((False, "".join(current)))
            current, fence = [line], match.group(1)
        elif fence is not None and match and match.group(1)[0] == fence[0] \
                and len(match.group(1)) >= len(fence) and not line.strip()[len(fence):].strip():
            current.append(line)
            pieces.append((True, "".join(current)))
            current, fence = [], None
        else:
            current.append(line)
    pieces.append((fence is not None, "".join(current)))
    return [(code, chunk) for code, chunk in pieces if chunk]


def shift_headings(text: str, shift: int) -> str:
    """Move every heading outside code blocks by ``shift`` levels (kept within 1..6)."""
    def move(line: str) -> str:
        match = HEADING.match(line)
        if not match:
            return line
        level = min(6, max(1, len(match.group(1)) + shift))
        return "#" * level + line[len(match.group(1)):]

    return "".join(chunk if code else "".join(move(line) for line in
                                              chunk.splitlines(keepends=True))
                   for code, chunk in split_fenced(text))


def extract_section(text: str, title: str) -> str | None:
    """The body of the section under the heading ``title``, up to the next heading of the same
    or a higher level outside code blocks, without its heading and with its subsections moved
    up so that the first level below it is H2 (the including page gives the title); None when
    there is no such heading."""
    out: list[str] = []
    level = 0
    done = False
    for code, chunk in split_fenced(text):
        if done:
            break
        lines = chunk.splitlines(keepends=True)
        for line in lines:
            match = None if code else HEADING.match(line)
            if level == 0:
                if match and match.group(2) == title:
                    level = len(match.group(1))
                continue
            if match and len(match.group(1)) <= level:
                done = True
                break
            out.append(line)
    if not level:
        return None
    return shift_headings("".join(out), 1 - level)


def single_title(text: str) -> str:
    """A page has one title: the H1 headings after the first become H2."""
    seen = False
    pieces = []
    for code, chunk in split_fenced(text):
        if not code:
            lines = []
            for line in chunk.splitlines(keepends=True):
                match = HEADING.match(line)
                if match and len(match.group(1)) == 1:
                    if seen:
                        line = "#" + line
                    seen = True
                lines.append(line)
            chunk = "".join(lines)
        pieces.append(chunk)
    return "".join(pieces)


def rewrite_links(text: str, source: str, root: Path, active: set[str], partial: bool) -> str:
    """Rewrite the relative links of ``text``, the content of repository file ``source``."""
    source_dir = posixpath.dirname(source)

    def replace(match: re.Match[str]) -> str:
        label, dest = match.group(1), match.group(2)
        if dest.startswith("#"):
            whole = PAGES.get(source)
            if partial and whole in active:
                return f"[{label}](/{whole}.md{dest})"
            return match.group(0)
        if SCHEME.match(dest) or dest.startswith("//"):
            return match.group(0)
        path, _, anchor = dest.partition("#")
        target = posixpath.normpath(posixpath.join(source_dir, path))
        page = PAGES.get(target)
        if page in active:
            return f"[{label}](/{page}.md{'#' + anchor if anchor else ''})"
        shown = target if (root / target).exists() else path
        if label.strip("`") in (path, target, dest):
            return f"`{shown}`"
        return f"{label} (`{shown}`)"

    return "".join(chunk if code else LINK.sub(replace, chunk)
                   for code, chunk in split_fenced(text))


def on_include_read(app: Sphinx, relative_path: Path, parent_docname: str,
                    content: list[str]) -> None:
    # MyST passes the including file's stem as ``parent_docname``; the environment knows the
    # full docname of the page being read.
    parent_docname = getattr(app.env, "docname", None) or parent_docname
    root = Path(app.config.md_includes_root)
    source_path = (Path(app.srcdir) / relative_path).resolve()
    try:
        source = source_path.relative_to(root).as_posix()
    except ValueError:
        return
    if not source.endswith(".md"):
        return
    text = content[0]
    title = SECTIONS.get((parent_docname, source))
    if title is not None:
        section = extract_section(text, title)
        if section is None:
            LOGGER.warning("%s: no heading %r to show on page %s", source, title,
                           parent_docname, type="md_includes", subtype="section")
            section = ""
        text = section
    else:
        text = single_title(text)
    active = set(PAGES.values()) - set(missing_optional_pages(root))
    content[0] = rewrite_links(text, source, root, active, partial=title is not None)


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    root = Path(app.config.md_includes_root)
    missing = set(missing_optional_pages(root))
    for page, _, toctree_doc, entry in OPTIONAL:
        if docname == toctree_doc and page in missing:
            source[0] = "\n".join(line for line in source[0].split("\n")
                                  if line.strip() != entry)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("md_includes_root", os.fspath(Path(app.confdir).parents[1]), "env")
    app.connect("include-read", on_include_read)
    app.connect("source-read", on_source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
