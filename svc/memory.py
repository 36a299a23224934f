"""Giving freed memory back to the operating system between pieces of a long conversion."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Return the heap's free pages to the system.

    Every piece of a song allocates and frees the same few hundred MB of activations; glibc keeps
    freed blocks in its arenas, where fragmentation makes the process grow with the song's
    length.  Trimming after each piece (a few ms) keeps the peak at one piece's worth.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
