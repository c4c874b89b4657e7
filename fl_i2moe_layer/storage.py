"""Atomic, verified safetensors and text files: the implementation lives in
:mod:`captum_interactions.storage` (shared with the dataset result store); this module keeps
the names the layer's code and users import."""

from captum_interactions.storage import (
    DIGEST_KEY,
    STALE_SECONDS,
    CorruptFileError,
    MissingDigestError,
    atomic_save_file,
    atomic_write_text,
    load_file,
    read_cache,
    read_metadata,
    remove_stale_temporaries,
    remove_stale_temporaries_in,
    tensor_digest,
)

__all__ = [
    "DIGEST_KEY",
    "STALE_SECONDS",
    "CorruptFileError",
    "MissingDigestError",
    "atomic_save_file",
    "atomic_write_text",
    "load_file",
    "read_cache",
    "read_metadata",
    "remove_stale_temporaries",
    "remove_stale_temporaries_in",
    "tensor_digest",
]
