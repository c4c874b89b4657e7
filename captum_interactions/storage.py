"""Safetensors files that are written atomically and verified when read.

* :func:`atomic_save_file` writes to a temporary file in the same folder and renames it over
  the target, so a reader (or a resumed run) never sees a half-written file. Temporary files
  are named ``.<target>.<pid>.<random>.tmp``; before each write, those of the same target
  whose process is gone (a run killed mid-write) are removed, and so are ``tmp*.tmp`` files
  older than an hour left by versions that used anonymous names.
* Every file carries ``sha256``, a digest of its tensors (names, dtypes, shapes, bytes), in its
  metadata; :func:`load_file` recomputes it and refuses a file whose tensors changed. Every
  error names the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor

DIGEST_KEY = "sha256"
#: Anonymous ``tmp*.tmp`` files older than this (seconds) are leftovers of killed writes.
STALE_SECONDS = 3600


class CorruptFileError(ValueError):
    """A file that cannot be read as what it claims to be (truncated, altered, foreign)."""


class MissingDigestError(CorruptFileError):
    """A file written before digests existed (or by another program)."""


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """sha256 over the tensors in name order: name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():  # the tensor's own buffer: no copy of large tensors
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Run ``write(temporary_path)``, then rename the temporary file over ``path``; leftovers
    of earlier killed writes next to ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_save_file(tensors: dict[str, Tensor], path: str | os.PathLike[str],
                     metadata: dict[str, str]) -> Path:
    """Write ``tensors`` and ``metadata`` (plus their digest) as safetensors to ``path``."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**metadata, DIGEST_KEY: tensor_digest(tensors)}
    return _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_file(path: str | os.PathLike[str], *, what: str = "file",
              require_digest: bool = False) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, verified against its digest.

    Args:
        path: the file.
        what: what the file is, for error messages (e.g. ``"checkpoint"``).
        require_digest: refuse a file without a digest (otherwise it is loaded with a
            warning: files written before digests existed).

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: unreadable, truncated, or its tensors do not match the digest.
    """
    tensors, metadata = _read(Path(path), what, tensors=True)
    stored = metadata.pop(DIGEST_KEY, None)
    if stored is None:
        if require_digest:
            raise MissingDigestError(f"{what} {str(path)!r} carries no {DIGEST_KEY} digest.")
        warnings.warn(f"{what} {str(path)!r} carries no {DIGEST_KEY} digest (written by an "
                      "older version): loaded without verification.", UserWarning, stacklevel=2)
    elif stored != tensor_digest(tensors):
        raise CorruptFileError(
            f"{what} {str(path)!r} is corrupt: its tensors do not match the {DIGEST_KEY} "
            "digest written with them. Delete it (or restore a copy)."
        )
    return tensors, metadata


def read_metadata(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, str]:
    """The metadata of a safetensors file, reading its header only (the tensors are neither
    read nor verified). Errors as in :func:`load_file`."""
    return _read(Path(path), what, tensors=False)[1]


def _read(path: Path, what: str, *, tensors: bool
          ) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            data = ({k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
                    if tensors else {})
    except Exception as error:  # SafetensorError, OSError, JSON errors of a foreign header
        raise CorruptFileError(
            f"{what} {str(path)!r} cannot be read as safetensors ({error}); it is truncated "
            "or not a file of this package."
        ) from error
    return data, metadata


def remove_stale_temporaries(path: Path) -> int:
    """Remove leftovers of killed writes next to ``path``; returns how many were removed."""
    return _remove_dead(path.parent.glob(f".{path.name}.*.tmp"), path.parent)


def remove_stale_temporaries_in(folder: str | os.PathLike[str]) -> int:
    """Remove the leftovers of killed writes of *any* file in ``folder`` (writers whose
    process is gone); for folders whose file names are not known in advance (content-named
    chunks of a feature store). Returns how many were removed."""
    folder = Path(folder)
    return _remove_dead(folder.glob(".*.tmp"), folder) if folder.is_dir() else 0


def _remove_dead(candidates: Iterable[Path], folder: Path) -> int:
    removed = 0
    for tmp in candidates:
        # .<target>.<pid>.<random>.tmp: the pid is the second field from the end
        parts = tmp.name[:-len(".tmp")].split(".")
        if len(parts) >= 4 and parts[-2].isdigit() and not _alive(int(parts[-2])):
            removed += _unlink(tmp)
    cutoff = time.time() - STALE_SECONDS
    for tmp in folder.glob("tmp*.tmp"):
        try:
            old = tmp.stat().st_mtime < cutoff
        except OSError:
            continue
        if old:
            removed += _unlink(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except OSError:
        return 0
    return 1


def read_cache(path: str | os.PathLike[str], metadata: dict[str, str], *,
               what: str = "cache file") -> dict[str, Tensor] | None:
    """The tensors of a cache entry written with exactly ``metadata``, or None when it must be
    (re)built: missing, written for other data (same name, other metadata), without a digest
    (an older version's entry), or corrupt (a warning names the file; the new entry then
    replaces it)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        tensors, stored = load_file(path, what=what, require_digest=True)
    except MissingDigestError:  # an entry of an older version: rebuilt, nothing is wrong
        return None
    except CorruptFileError as error:
        warnings.warn(f"{error} Building it again.", UserWarning, stacklevel=2)
        return None
    return tensors if stored == metadata else None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file through a temporary file and a rename (readers see the old or the
    new content, never a mix)."""
    return _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
