"""``python -m bench``: build the full-size fixtures once, measure, write bench/results/<date>-<host>.json.

    python -m bench                      # everything (600 s end-to-end takes a while on a CPU)
    python -m bench --quick              # core at 2 threads, load, 10 s end-to-end with pm
    python -m bench --only core          # sections: core, load, e2e, diffusion (comma-separated)
    REF_SOVITS=/path/to/so-vits-svc python -m bench --only core   # also time the reference
    python -m bench --gpu-check          # CUDA: fp32 = CPU check, core/e2e RTF and peak GPU memory per precision
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from .core import measure_core, measure_load
from .diffusion import format_rows, measure_diffusion
from .e2e import measure_e2e
from .fixtures import ROOT, model_dir, pretrain_dir
from .report import format_table

RESULTS_DIR = ROOT / "bench" / "results"
SECTIONS = ("core", "load", "e2e", "diffusion")


def _csv(kind):
    return lambda text: [kind(item) for item in text.split(",") if item]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=_csv(str), default=list(SECTIONS), help="sections: core,load,e2e")
    parser.add_argument("--quick", action="store_true", help="a short subset (core at 2 threads, 10 s pm e2e)")
    parser.add_argument("--threads", type=_csv(int), default=[1, 2], help="core thread counts (default 1,2)")
    parser.add_argument("--e2e-threads", type=int, default=2)
    parser.add_argument("--precision", type=_csv(str), default=None,
                        help="precisions (default: fp32 and bf16 when the CPU has it / fp16 on CUDA)")
    parser.add_argument("--durations", type=_csv(int), default=[10, 60, 600], help="e2e input seconds")
    parser.add_argument("--f0", type=_csv(str), default=["pm", "fcpe"], help="e2e F0 methods")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per core case (e2e: 3, 1 above 60 s)")
    parser.add_argument("--device", type=_csv(str), default=None, help="cpu,cuda (default: cpu, + cuda if present)")
    parser.add_argument("--reference", default=os.environ.get("REF_SOVITS"),
                        help="a so-vits-svc checkout to time on the same inputs (default: $REF_SOVITS)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/<date>-<host>.json)")
    parser.add_argument("--gpu-check", action="store_true",
                        help="CUDA only: check fp32 GPU output = CPU output, then core and 10/60 s end-to-end "
                             "RTF and peak GPU memory in fp32/fp16/bf16")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.quick:
        args.threads, args.durations, args.f0, args.repeats = [2], [10], ["pm"], 3
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if args.gpu_check:
        raise SystemExit(gpu_check(args))

    model_dir(), pretrain_dir()
    results = {"meta": _meta(), "core": [], "load": None, "e2e": [], "diffusion": []}
    out = unused_path(args.out or RESULTS_DIR / f"{datetime.date.today().isoformat()}-{socket.gethostname()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every case, so that an interrupted run keeps what it measured
        results["meta"]["loadavg_after"] = os.getloadavg()
        out.write_text(json.dumps(results, indent=1))

    for device in devices:
        precisions = args.precision or _default_precisions(device)
        if "core" in args.only:
            results["core"] += measure_core(args.threads, precisions, args.repeats, device,
                                            reference=args.reference)
            save()
        if "e2e" in args.only:
            for precision in precisions[:1] if args.quick else precisions:
                for method in args.f0:
                    for seconds in args.durations:
                        results["e2e"] += measure_e2e([seconds], [method], [precision], args.e2e_threads, 3, device)
                        save()
        if "diffusion" in args.only:
            measure_diffusion(args.e2e_threads, args.repeats, device, quick=args.quick,
                              on_row=lambda row: (results["diffusion"].append(row), save()))
    if "load" in args.only:
        torch.set_num_threads(2)
        results["load"] = measure_load(args.repeats)
    save()
    print("\n".join([format_table(results)] + format_rows(results["diffusion"])))
    print(f"\nwritten to {out}")


def gpu_check(args: argparse.Namespace) -> int:
    """``--gpu-check``: exit status 0 when the GPU's fp32 output matches the CPU's, 1 when not, 2 without CUDA."""
    from .gpu_check import (
        MAX_ABS_VS_CPU,
        NoGpuError,
        check_fp32_matches_cpu,
        core_peak_memory,
        gpu_precisions,
        require_cuda,
    )

    try:
        require_cuda()
    except NoGpuError as error:
        print(error)
        return 2
    model_dir(), pretrain_dir()
    precisions = args.precision or gpu_precisions()
    results = {"meta": _meta(), "gpu_check": None, "core": [], "load": None, "e2e": [], "diffusion": []}
    out = unused_path(args.out or RESULTS_DIR / f"{datetime.date.today().isoformat()}-{socket.gethostname()}-gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results["gpu_check"] = check_fp32_matches_cpu()
    out.write_text(json.dumps(results, indent=1))
    if not results["gpu_check"]["ok"]:
        print(f"GPU fp32 output differs from the CPU's: {results['gpu_check']}; written to {out}")
        return 1
    results["core"], results["core_error"] = _gpu_core(precisions, args.repeats, args.reference)
    peaks = core_peak_memory(precisions) if results["core"] else {}
    for row in results["core"]:
        row["peak_gpu_bytes"] = peaks.get(row["precision"])
    out.write_text(json.dumps(results, indent=1))
    for precision in precisions:
        results["e2e"] += measure_e2e([10, 60], ["pm"], [precision], args.e2e_threads, 3, "cuda")
        out.write_text(json.dumps(results, indent=1))
    print(format_table(results))
    print(f"\nGPU fp32 vs CPU: max abs {results['gpu_check']['max_abs_vs_cpu']:.2e} (<= {MAX_ABS_VS_CPU:.0e})")
    print(f"written to {out}")
    return 0


def _gpu_core(precisions: list[str], repeats: int, reference: str | None) -> tuple[list[dict], str | None]:
    """The core on CUDA (with the reference, when given, timed on the same GPU) and the error that
    stopped a part of it: on a borrowed GPU every minute counts, so a failure is recorded, not fatal."""
    try:
        return measure_core([1], precisions, repeats, "cuda", reference=reference), None
    except Exception as error:  # noqa: BLE001 - recorded in the result file and printed
        logging.exception("core on CUDA failed")
        if reference:
            return _gpu_core(precisions, repeats, None)[0], f"reference: {error!r}"
        return [], repr(error)


def unused_path(path: Path) -> Path:
    """``path``, or ``path`` with a UTC time suffix when a file of that name exists (results are never overwritten)."""
    if not path.exists():
        return path
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H%M%S")
    candidate, n = path.with_name(f"{path.stem}-{stamp}{path.suffix}"), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{stamp}-{n}{path.suffix}")
    return candidate


def cpu_isa(flags: set[str]) -> str:
    """The best reduced-precision matrix ISA in ``flags``: "AMX", "AVX512-BF16" or "none"."""
    if {"amx_bf16", "amx_tile"} <= flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else "none"


def _default_precisions(device: str) -> list[str]:
    from svc.precision import cpu_has_bf16

    if device.startswith("cuda"):
        return ["fp32", "fp16"]
    return ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]


ISA_FLAGS = {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8",
             "amx_fp16"}


def _onednn_bf16() -> bool:
    from svc.precision import cpu_has_bf16

    return cpu_has_bf16()


def _meta() -> dict:
    cpu = "unknown"
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    flag_set = set(flags.split(":", 1)[-1].split())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flag_set, "amx": "amx_tile" in flag_set, "isa": cpu_isa(flag_set),
        "cpu_flags": sorted(flag_set & ISA_FLAGS), "onednn_bf16": _onednn_bf16(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(), "commit": commit,
        "loadavg_before": os.getloadavg(),
        # How OpenMP threads wait at a barrier ("passive": sleep at once); on a CPU shared with other
        # work, spinning (the default) can cost a time slice per barrier (see README, Performance).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        # glibc heap thresholds: fixed by svc (keep_heap_pages) unless the user set glibc's own variables.
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }


if __name__ == "__main__":
    main()
