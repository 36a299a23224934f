"""End-to-end benchmark: ``VitsSvc.convert_file`` as the CLI calls it, each case in its own process.

The parent prepares the input files (cached) and starts one child per (duration, F0 method,
precision); the child loads the session, warms it up on a short input, then times full
conversions and reports the pipeline's per-stage timings.  Peak RSS is the child's
``ru_maxrss`` as returned by ``os.wait4``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .fixtures import CACHE_DIR, ROOT, model_dir, pretrain_dir, rmvpe_file
from .measure import summary

logger = logging.getLogger(__name__)

WARMUP_SECONDS = 10


def input_file(seconds: int) -> Path:
    """``bench/cache/inputs/song_<seconds>s.wav`` (float32, 44.1 kHz), written on first use."""
    import soundfile as sf

    from .song import SAMPLING_RATE, synth_song

    path = CACHE_DIR / "inputs" / f"song_{seconds}s.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        sf.write(tmp, synth_song(seconds), SAMPLING_RATE, subtype="FLOAT")
        tmp.replace(path)
    return path


def measure_e2e(durations: list[int], f0_methods: list[str], precisions: list[str], threads: int,
                repeats: int, device: str = "cpu", timeout: float = 7200) -> list[dict]:
    """One row per case, each measured in a fresh child process."""
    model_dir(), pretrain_dir()
    if "rmvpe" in f0_methods:
        rmvpe_file()
    files = {s: input_file(s) for s in sorted(set(durations) | {WARMUP_SECONDS})}
    rows = []
    for precision in precisions:
        for method in f0_methods:
            for seconds in durations:
                rows.append(_run_child(files[seconds], files[WARMUP_SECONDS], seconds, method, precision, threads,
                                       repeats if seconds <= 60 else 1, device, timeout))
    return rows


def _run_child(path: Path, warmup: Path, seconds: int, method: str, precision: str, threads: int,
               repeats: int, device: str, timeout: float) -> dict:
    case = {"device": device, "precision": precision, "f0": method, "seconds": seconds, "threads": threads}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        report = Path(tmp.name)
    cmd = [sys.executable, "-m", "bench.e2e", "--input", str(path), "--warmup", str(warmup), "--f0", method,
           "--precision", precision, "--threads", str(threads), "--repeats", str(repeats), "--device", device,
           "--report", str(report)]
    logger.info("e2e %s", case)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        _, status, usage = _wait(proc, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    if status != 0 or not report.stat().st_size:
        report.unlink(missing_ok=True)
        return {**case, "error": f"child exited with status {status}"}
    result = json.loads(report.read_text())
    report.unlink()
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    row = {**case, **result, "peak_rss_bytes": peak, "child_seconds": time.perf_counter() - start}
    logger.info("e2e %s: RTF %.3f, peak RSS %.2f GB", case, row["rtf"], peak / 1e9)
    return row


def _wait(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, proc.returncode, usage
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"benchmark child ran longer than {timeout:.0f} s")
        time.sleep(0.2)


# --- the child ------------------------------------------------------------------------------

def _child(args: argparse.Namespace) -> None:
    # svc before torch, as the CLI does: svc sizes a torch cache that is read when torch is imported.
    from svc import ConvertOptions  # isort: skip

    import torch

    from svc.audio import audio_duration
    from svc.session import VitsSvc

    torch.set_num_threads(args.threads)
    session = VitsSvc(device=args.device, pretrain_dir=pretrain_dir(), precision=args.precision)
    start = time.perf_counter()
    session.load(model_dir())
    load_seconds = time.perf_counter() - start
    options = ConvertOptions(speaker="bob", f0_method=args.f0)

    def once(path: Path, out: Path) -> dict:
        # As the CLI converts a file: decoded whole, written chunk by chunk, no output kept in memory.
        cpu = time.process_time()
        t0 = time.perf_counter()
        result = session.convert_file(path, out, options, keep_audio=False)
        total = time.perf_counter() - t0
        return {"total": total, "cpu": time.process_time() - cpu, "stages": dict(result.timings),
                "duration": audio_duration(path)}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        once(args.warmup, out)  # loads the encoder and F0 predictor, creates oneDNN primitives
        runs = [once(args.input, out) for _ in range(args.repeats)]
    duration = runs[0]["duration"]
    totals = [r["total"] for r in runs]
    stage_names = sorted({name for r in runs for name in r["stages"]})
    stages = {name: summary([r["stages"].get(name, 0.0) for r in runs])["median"] for name in stage_names}
    report = {
        "audio_seconds": duration, "total": summary(totals), "cpu": summary([r["cpu"] for r in runs]),
        "rtf": summary(totals)["median"] / duration,
        "stages": stages, "model_load_seconds": load_seconds,
        "self_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.device.startswith("cuda"):
        report["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    Path(args.report).write_text(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description="one end-to-end benchmark case (started by python -m bench)")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--warmup", type=Path, required=True)
    parser.add_argument("--f0", default="pm")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--report", type=Path, required=True)
    _child(parser.parse_args())


if __name__ == "__main__":
    main()
