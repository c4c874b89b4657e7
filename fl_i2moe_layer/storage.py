"""Atomic writes: a reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch import Tensor


def atomic_save_file(tensors: dict[str, Tensor], path: str | os.PathLike[str],
                     metadata: dict[str, str]) -> Path:
    """Write ``tensors`` and ``metadata`` as safetensors to ``path``: first to a temporary
    file in the same folder, then renamed over ``path`` (an interrupted write leaves the old
    file, or none, and no temporary file behind)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
