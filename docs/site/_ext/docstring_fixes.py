"""Two reST pitfalls of plain-text docstrings, fixed at render time (the sources stay as they
are; they read well in ``help()`` and in the editor).

Runs on ``autodoc-process-docstring`` before napoleon (priority 400 < napoleon's 500):

1. **Wrapped lists of argument names** in a Google ``Args:`` section, e.g.::

       Args:
           inputs, baselines, target, additional_forward_args, feature_mask, pairs,
           removal, output, seed: as in :meth:`ShapleyInteractionIndex.attribute`.

   Napoleon reads each physical line as one entry, so the first line becomes an entry of its
   own (with an empty name after the trailing comma) and docutils then reports a field list
   that "ends without a blank line". The continuation lines are joined into one entry. In
   such comma-separated lists, ``*args`` and ``**kwargs`` are escaped as napoleon escapes a
   single ``*args`` entry (otherwise docutils sees an unclosed emphasis).

2. **An inline literal broken across lines in the first line of ``Returns:``**, e.g.
   ``*list[TopPair]* best first; ``str(pair)`` reads ``"a × b: value ±`` + newline +
   ``stderr"``.``: napoleon looks for the ``type:`` colon in that first line alone and cuts
   the literal at its colon. The lines are joined until the literal is closed.

3. **Absolute values written ``|x|``** in prose (``p = |x| / sum |x|``, ``(|T| - 1)``): reST
   reads ``|x|`` as a substitution reference and fails on the undefined substitution. The
   pipes are escaped, except in inline literals and roles (``:math:`|S|```), literal and
   doctest blocks and directive bodies (``.. math::``), where they are meant as written.
"""

from __future__ import annotations

import re
from typing import Any

from sphinx.application import Sphinx

ARG_SECTIONS = {"args:", "arguments:", "parameters:", "params:", "keyword args:",
                "keyword arguments:", "other parameters:"}
CODE_SPAN = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_{0,2})")
ABS_VALUE = re.compile(r"(?<![\\|\w])\|(?=\S)([^|\n]*?\S)\|(?![\w|])")
STAR_NAME = re.compile(r"(?<![\\\w*])(\*\*?)(?=\w)")
DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def name_part(entry: str) -> tuple[str, str]:
    """Split an ``Args:`` entry into its names and the rest, at the first ``:`` or ``(``."""
    match = re.search(r"\s*\(|:(\s|$)", entry)
    return (entry, "") if match is None else (entry[: match.start()], entry[match.start():])


def fix_arg_sections(lines: list[str]) -> list[str]:
    out: list[str] = []
    k = 0
    section: int | None = None  # indent of the current Args: header
    entry: int | None = None  # indent of its entries
    while k < len(lines):
        line = lines[k]
        stripped = line.strip()
        if stripped and section is not None and indent_of(line) <= section:
            section = entry = None
        if section is None:
            if stripped.lower() in ARG_SECTIONS:
                section, entry = indent_of(line), None
            out.append(line)
            k += 1
            continue
        if not stripped:
            out.append(line)
            k += 1
            continue
        if entry is None:
            entry = indent_of(line)
        if indent_of(line) == entry:
            # join a wrapped name list: "a, b,\n c, d: description"
            while (line.rstrip().endswith(",") and ":" not in line and "(" not in line
                   and k + 1 < len(lines) and lines[k + 1].strip()
                   and indent_of(lines[k + 1]) == entry):
                line = line.rstrip() + " " + lines[k + 1].strip()
                k += 1
            names, rest = name_part(line)
            if "," in names:
                names = STAR_NAME.sub(lambda m: "\\*" * len(m.group(1)), names)
            line = names + rest
        out.append(line)
        k += 1
    return out


def join_open_literals(lines: list[str]) -> list[str]:
    """Join the first line of a ``Returns:`` / ``Yields:`` section with the next ones while it
    has an unclosed ````literal````."""
    out: list[str] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        out.append(line)
        k += 1
        if line.strip().lower() in ("returns:", "return:", "yields:") and k < len(lines):
            first = lines[k]
            k += 1
            while first.count("``") % 2 and k < len(lines) and lines[k].strip():
                first = first.rstrip() + " " + lines[k].strip()
                k += 1
            out.append(first)
    return out


def escape_abs_values(lines: list[str]) -> list[str]:
    out: list[str] = []
    block: int | None = None  # indent of the line that opened a literal block or directive
    for line in lines:
        stripped = line.strip()
        if block is not None:
            if not stripped or indent_of(line) > block:
                out.append(line)
                continue
            block = None
        if stripped.startswith((">>>", "... ")):  # doctest lines
            out.append(line)
            continue
        if stripped.endswith("::") or DIRECTIVE.match(line):
            block = indent_of(line)
        pieces = CODE_SPAN.split(line)
        out.append("".join(piece if n % 2 else ABS_VALUE.sub(r"\\|\1\\|", piece)
                           for n, piece in enumerate(pieces)))
    return out


def process_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                      lines: list[str]) -> None:
    fixed = escape_abs_values(join_open_literals(fix_arg_sections(list(lines))))
    lines[:] = fixed


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", process_docstring, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
