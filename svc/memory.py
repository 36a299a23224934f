"""Keeping a long conversion's memory flat: the heap, and oneDNN's cache of compiled kernels."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# oneDNN (torch's CPU convolutions) compiles a kernel ("primitive") for every new input shape and
# keeps up to ONEDNN_PRIMITIVE_CACHE_CAPACITY of them (default 1024), 1.5 MB each on average.  Every
# piece of a song has its own length, so with the default the cache grew by about 100 MB per piece
# (1.2 GB over a 60 s song).  A piece creates about 120 primitives; replaying the creations of a
# 60 s song through an LRU cache, 256 entries missed 996 times against 960 unbounded (128: 1638),
# so this bounds the cache at no measurable cost.
ONEDNN_CACHE_CAPACITY = 256
# (ideep's cache of the pre-packed convolutions is bounded in svc/__init__.py: it must be set
# before torch is imported.)


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


def limit_onednn_cache(capacity: int = ONEDNN_CACHE_CAPACITY) -> None:
    """Bound oneDNN's primitive cache, unless the user set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``.

    oneDNN reads the variable once, when it creates its first primitive, so this must run before
    the first CPU convolution of the process (a session calls it when it is created); later calls
    change nothing.  torch offers no call to set the capacity, and oneDNN's own is not exported.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))
