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
# A session that starts in bf16 keeps more: its vocoder runs in a bounded set of fixed shapes (see
# nsf_hifigan._tiled) that the cache must hold, or every piece recompiles them (AMX kernels: ~1 s
# per piece).  A 60 s song's synthesis took 16.4 s with 256 entries, 10.0 s with 512, 4.3 s with 1024.
BF16_CACHE_CAPACITY = 1024
# (ideep's cache of the pre-packed convolutions is bounded in svc/__init__.py: it must be set
# before torch is imported.)

# glibc serves a block above its mmap threshold with fresh pages, and gives the free top of its heap
# back to the system once more than its trim threshold is free (both adapt by default: the threshold
# to the largest freed mapped block, up to 32 MB, trimming at twice that).  The vocoder's 16-28 MB
# activations then kept coming back as new pages, each one faulting on its first write: ~40 000
# faults (160 MB) per 10 s of synthesis, 3-5 % of its time; with these fixed values, none.  The
# free memory kept is bounded (256 MB), and release_free_memory still trims after every piece.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
HEAP_TRIM_THRESHOLD = 256 * 1024 * 1024


@functools.cache
def _glibc_function(name: str):
    """A function of glibc's malloc (``malloc_trim``, ``mallopt``), or None where the C library has none
    (macOS, Windows, musl)."""
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def keep_heap_pages() -> bool:
    """Fix glibc's mmap and trim thresholds so that freed activations are reused, not re-faulted.

    Left alone where the user set ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (glibc's
    own variables) and where the C library is not glibc.  Returns whether the thresholds were set.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    mapped = mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
    return bool(mapped) and bool(mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD))


def release_free_memory() -> None:
    """Return the heap's free pages to the system.

    Every piece of a song allocates and frees the same few hundred MB of activations; glibc keeps
    freed blocks in its arenas, where fragmentation makes the process grow with the song's
    length.  Trimming after each piece (a few ms) keeps the peak at one piece's worth.
    """
    trim = _glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def limit_onednn_cache(precision: str = "fp32") -> None:
    """Bound oneDNN's primitive cache for a process that starts in ``precision`` (bf16 keeps
    ``BF16_CACHE_CAPACITY`` entries, else ``ONEDNN_CACHE_CAPACITY``), unless the user set
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``.

    oneDNN reads the variable once, when it creates its first primitive, so this must run before
    the first CPU convolution of the process (a session calls it when it is created); later calls
    change nothing.  torch offers no call to set the capacity, and oneDNN's own is not exported.
    """
    capacity = BF16_CACHE_CAPACITY if str(precision).strip().lower() == "bf16" else ONEDNN_CACHE_CAPACITY
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))
