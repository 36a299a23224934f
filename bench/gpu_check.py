"""``python -m bench --gpu-check``: the CUDA path, ready to measure on a machine with a GPU.

It checks that the synthesis core's fp32 output on the GPU equals the CPU's (max abs <= 1e-3), then
times the core (10 s) and end to end (10 s and 60 s, pm) in fp32, fp16 and bf16 (where the GPU has
it), with the peak GPU memory of each, into the same JSON as the CPU benchmark.  Without CUDA it
stops at once with one clear line and exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .core import FRAMES_10S, SEED, load_model, make_inputs
from .fixtures import model_dir

MAX_ABS_VS_CPU = 1e-3  # float32 kernels differ between CPU and GPU by ~1e-5 on audio; a real bug by >1e-2


class NoGpuError(RuntimeError):
    """This machine cannot run the GPU check."""


def require_cuda() -> str:
    """The GPU's name; ``NoGpuError`` with the reason when torch sees no CUDA device."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = ("this torch build has no CUDA support" if built is None
               else f"no CUDA device is visible (torch built for CUDA {built})")
        raise NoGpuError(f"--gpu-check needs a CUDA GPU: {why}")
    return torch.cuda.get_device_name()


def gpu_precisions() -> list[str]:
    return ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])


@contextmanager
def random_numbers_from_cpu() -> Iterator[None]:
    """``torch.rand`` / ``torch.randn`` given a CPU generator and another device draw on the CPU and move
    the numbers there.

    CUDA's generator gives other numbers than the CPU's for the same seed (as in the reference, whose
    GPU audio differs from its CPU audio), so a GPU run compares with a CPU run only when both draw
    from one CPU generator.  The model's draws all name their generator and device.
    """
    real = {name: getattr(torch, name) for name in ("rand", "randn")}

    def on_cpu(draw):
        def wrapper(*size, generator=None, device=None, **kwargs):
            if generator is not None and generator.device.type == "cpu" and device is not None:
                return draw(*size, generator=generator, **kwargs).to(device)
            return draw(*size, generator=generator, device=device, **kwargs)
        return wrapper

    try:
        for name, draw in real.items():
            setattr(torch, name, on_cpu(draw))
        yield
    finally:
        for name, draw in real.items():
            setattr(torch, name, draw)


def check_fp32_matches_cpu(frames: int = 200) -> dict:
    """The core's fp32 audio on CUDA vs on the CPU, same checkpoint, inputs and random numbers."""
    directory = model_dir()
    cfg = json.loads((directory / "config.json").read_text())
    inputs = make_inputs(cfg, frames)
    outputs = {}
    # cuDNN may use TF32 for float32 convolutions (about 1e-3 relative): the check is of true fp32.
    torch.backends.cudnn.allow_tf32 = False
    for device in ("cpu", "cuda"):
        model = load_model(directory).to(device)
        x = {k: v.to(device) for k, v in inputs.items()}
        with random_numbers_from_cpu():
            generator = torch.Generator().manual_seed(SEED)
            audio = model.infer(x["c"], x["f0"], x["uv"], x["g"], generator=generator)[0]
        outputs[device] = audio.float().cpu()
        del model
    max_abs = float((outputs["cuda"] - outputs["cpu"]).abs().max())
    return {"frames": frames, "max_abs_vs_cpu": max_abs, "bound": MAX_ABS_VS_CPU, "ok": max_abs <= MAX_ABS_VS_CPU}


def core_peak_memory(precisions: list[str]) -> dict[str, int]:
    """Peak GPU memory (bytes allocated) of one 10 s core run per precision, model included."""
    from svc.precision import precision_dtype

    directory = model_dir()
    cfg = json.loads((directory / "config.json").read_text())
    model = load_model(directory).to("cuda")
    x = {k: v.to("cuda") for k, v in make_inputs(cfg, FRAMES_10S).items()}
    peaks = {}
    for precision in precisions:
        model.set_precision(precision_dtype(precision, "cuda"))
        model.infer(x["c"], x["f0"], x["uv"], x["g"], seed=SEED)  # warm-up (plans, cuDNN choices)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        model.infer(x["c"], x["f0"], x["uv"], x["g"], seed=SEED)
        torch.cuda.synchronize()
        peaks[precision] = torch.cuda.max_memory_allocated()
    model.set_precision(torch.float32)
    return peaks
