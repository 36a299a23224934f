"""svc.memory: the heap settings that keep freed activations' pages, in fresh processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from svc.memory import keep_heap_pages

ROOT = Path(__file__).resolve().parents[1]

# Six 20 MB tensors are allocated and freed; prints whether they came from the heap (not from
# fresh mappings), and the resident memory in MB they leave behind, before and after ``release_free_memory``.
HEAP_USE = """
import os, sys, torch
from svc.memory import keep_heap_pages, release_free_memory
if sys.argv[1] == "keep":
    assert keep_heap_pages()
def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            return [int(x, 16) for x in line.split()[0].split("-")]
    return [0, 0]
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
base = resident_mb()
tensors = [torch.ones(5 * 2**20) for _ in range(6)]
start, stop = heap()
from_heap = all(start <= t.data_ptr() < stop for t in tensors)
del tensors
kept = resident_mb() - base
release_free_memory()
print(int(from_heap), kept, resident_mb() - base)
"""


def _heap_use(mode: str) -> tuple[int, int, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", HEAP_USE, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_keep_heap_pages_serves_activations_from_a_heap_it_keeps():
    from_heap, kept_mb, trimmed_mb = _heap_use("keep")
    # Blocks up to 32 MB come from the heap, whose freed pages stay resident (no faults on reuse) ...
    assert from_heap == 1 and kept_mb >= 100, (from_heap, kept_mb)
    # ... until release_free_memory gives it back after a piece.
    assert trimmed_mb < 20, trimmed_mb
    # glibc's defaults map a fresh process's first large blocks one by one, and unmap them when freed.
    default_from_heap, _, _ = _heap_use("default")
    assert default_from_heap == 0


def test_keep_heap_pages_respects_the_users_malloc_settings(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_heap_pages() is False


# A fresh session sizes oneDNN's kernel cache by its starting precision (svc.memory.BF16_CACHE_CAPACITY).
CACHE_FOR = """
import os, sys
from svc.errors import OptionsError
from svc.session import VitsSvc
try:
    VitsSvc(device="cpu", precision=sys.argv[1])
except OptionsError:
    pass  # a CPU without bf16 refuses it after the cache is sized; the variable is what is checked
print(os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"])
"""


@pytest.mark.parametrize(("precision", "preset", "expected"),
                         [("fp32", None, "256"), ("bf16", None, "1024"), ("bf16", "64", "64")])
def test_session_sizes_onednn_cache_by_precision(precision, preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:  # the user's own setting wins
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    out = subprocess.run([sys.executable, "-c", CACHE_FOR, precision], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[-1] == expected
