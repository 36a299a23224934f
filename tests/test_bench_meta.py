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


def _row(**extra):
    stats = {"median": 0.0123, "min": 0.0121, "max": 0.0131}
    return {"device": "cuda", "threads": 1, "wall": stats, "cpu": stats, "rtf": 0.00123, **extra}


def test_gpu_rows_show_milliseconds_and_peak_gpu_memory():
    from bench.report import format_table

    meta = {"cpu": "x", "cpu_count": 16, "torch": "2", "commit": "c", "loadavg_before": [0.0]}
    e2e = {"device": "cuda", "precision": "fp16", "f0": "pm", "seconds": 10, "rtf": 0.0312, "audio_seconds": 10,
           "cpu": {"median": 1.0}, "peak_rss_bytes": 2.5e9, "peak_gpu_bytes": 1.25e9, "stages": {"f0": 0.1}}
    text = format_table({"meta": meta, "core": [_row(precision="fp32", peak_gpu_bytes=4.5e8),
                                                 _row(precision="fp16", snr_db_vs_fp32=40.0)],
                         "load": None, "e2e": [e2e]})
    assert "| cuda fp32 | 1 | 0.0123 (0.0121-0.0131) | 0.00123 |" in text
    assert "peak GPU 0.45 GB" in text and "SNR 40.0 dB" in text
    assert "| 2.50 (GPU 1.25) |" in text


def test_gpu_core_failure_is_recorded_and_the_rest_still_measured(monkeypatch):
    import bench.__main__ as main

    calls = []

    def fake(threads, precisions, repeats, device, reference=None):
        calls.append(reference)
        if reference:
            raise ImportError("no module named utils")
        return [{"precision": p} for p in precisions]

    monkeypatch.setattr(main, "measure_core", fake)
    rows, error = main._gpu_core(["fp32", "fp16"], 3, "/ref")
    assert calls == ["/ref", None] and [r["precision"] for r in rows] == ["fp32", "fp16"]
    assert error.startswith("reference: ImportError")
    monkeypatch.setattr(main, "measure_core", lambda *a, **k: 1 / 0)
    assert main._gpu_core(["fp32"], 3, None) == ([], "ZeroDivisionError('division by zero')")


def test_gpu_check_draws_the_cpu_generators_numbers_on_another_device():
    import torch

    from bench.gpu_check import random_numbers_from_cpu

    real_rand, real_randn = torch.rand, torch.randn
    expected = torch.Generator().manual_seed(7)
    first, second = torch.randn(5, 3, generator=expected), torch.rand(4, generator=expected)
    gen = torch.Generator().manual_seed(7)
    with random_numbers_from_cpu():
        moved = torch.randn((5, 3), generator=gen, device="meta", dtype=torch.float32)
        on_cpu = torch.rand(4, generator=gen, device="cpu")  # continues the stream the meta draw advanced
        unseeded = torch.rand(2, device="meta")  # no CPU generator: left to the device
    assert moved.device.type == "meta" and moved.shape == first.shape and unseeded.device.type == "meta"
    assert torch.equal(on_cpu, second)
    assert torch.rand is real_rand and torch.randn is real_randn  # restored on exit
