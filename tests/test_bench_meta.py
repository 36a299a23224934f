"""The benchmark's result bookkeeping: CPU ISA labels and never overwriting a result file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.__main__ import cpu_isa, unused_path  # noqa: E402


def test_cpu_isa_names_the_best_matrix_unit():
    assert cpu_isa({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == "AMX"
    assert cpu_isa({"avx512f", "avx512_bf16"}) == "AVX512-BF16"
    assert cpu_isa({"avx2", "amx_tile"}) == "none"


def test_result_files_are_never_overwritten(tmp_path):
    path = tmp_path / "2026-01-01-host.json"
    assert unused_path(path) == path
    path.write_text("{}")
    second = unused_path(path)
    assert second != path and second.name.startswith("2026-01-01-host-") and second.suffix == ".json"
    second.write_text("{}")
    assert unused_path(path) not in (path, second)


def test_gpu_check_stops_cleanly_without_cuda(monkeypatch):
    import pytest
    import torch

    from bench.gpu_check import NoGpuError, require_cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGpuError, match="--gpu-check needs a CUDA GPU"):
        require_cuda()
