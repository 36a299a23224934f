"""Model files: merge generators by weighted average, compress a training checkpoint for release.

Both write so-vits-svc 4.1's release layout, which its ``utils.load_checkpoint`` reads:
``{"model": state dict without enc_q.*, "iteration": 0, "optimizer": a fresh AdamW state_dict,
"learning_rate": 1e-4}`` (``compress_model.py``'s output).  Merging follows the 4.1 web UI's
"model mix" (the sum of every tensor times its model's weight), with the weights normalised to
sum to 1 by default.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import TRAINING_ONLY_PREFIXES, load_generator
from .config import ModelConfig
from .errors import CheckpointError, OptionsError, WeightFileError
from .session import find_model_files
from .weights import load_torch_file

RELEASE_LEARNING_RATE = 1e-4  # what compress_model.py writes
MERGE_MODES = ("average", "linear", "softmax")


@dataclass(frozen=True)
class WrittenModel:
    """What a tool wrote: the generator file, its config and notes for the user."""

    pth: Path
    config: Path | None
    notes: tuple[str, ...] = ()


def compress(in_path: str | Path, out_path: str | Path, half: bool = False) -> WrittenModel:
    """Write ``in_path`` without its optimizer state and training-only weights (``enc_q.*``); fp16 with ``half``."""
    in_path, out_path = Path(in_path), Path(out_path)
    raw = _load_checkpoint(in_path)
    state = _generator_state(raw, in_path)
    if half:
        state = _to_half(state)
    _save_release(state, out_path, _parameter_count(raw, state))
    before, after = in_path.stat().st_size, out_path.stat().st_size
    return WrittenModel(out_path, None, (f"{before / 2**20:.1f} MB -> {after / 2**20:.1f} MB",))


def merge(models: Sequence[str | Path], weights: Sequence[float], out: str | Path,
          mode: str = "average") -> WrittenModel:
    """Weighted average of compatible generators (same architecture and tensor shapes), written as
    ``out/<name>.pth`` + ``config.json`` (or to ``out`` itself when it ends in ``.pth``).

    ``mode``: "average" divides the weights by their sum; "linear" uses them as given (the 4.1
    web UI's linear mode); "softmax" applies a softmax first (its convex mode, which it feeds
    with percentages / 100).  Speaker ``i`` of the result mixes speaker ``i`` of every model;
    the speaker names are the first model's.
    """
    if len(models) < 2:
        raise OptionsError("merge needs at least two models")
    factors = merge_factors(weights, len(models), mode)
    files = [find_model_files(m) for m in models]
    configs = [ModelConfig.from_json(cfg) for _, cfg in files]
    _check_compatible(files, configs)
    states = [_generator_state(_load_checkpoint(pth), pth) for pth, _ in files]
    _check_same_tensors(states, [pth for pth, _ in files])
    merged = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            merged[key] = first.clone()
            continue
        total = torch.zeros(first.shape, dtype=torch.float32)
        for state, factor in zip(states, factors, strict=True):
            total += state[key].float() * factor
        merged[key] = total
    pth, config = _output_paths(Path(out))
    pth.parent.mkdir(parents=True, exist_ok=True)
    _save_release(merged, pth, len(merged))
    if config != files[0][1]:
        shutil.copyfile(files[0][1], config)
    load_generator(pth, ModelConfig.from_json(config))  # what we wrote must load
    notes = [f"weights {', '.join(f'{f:.4g}' for f in factors)}"]
    if len({tuple(c.spk.items()) for c in configs}) > 1:
        notes.append(f"the models' speaker lists differ; the merged model uses {files[0][1]}'s")
    return WrittenModel(pth, config, tuple(notes))


def merge_factors(weights: Sequence[float], count: int, mode: str) -> list[float]:
    """The multiplier of each model for ``weights`` in ``mode`` (see ``merge``)."""
    if mode not in MERGE_MODES:
        raise OptionsError(f"unknown merge mode {mode!r}; use one of {', '.join(MERGE_MODES)}")
    values = [float(w) for w in weights]
    if len(values) != count:
        raise OptionsError(f"{count} models need {count} weights, got {len(values)}")
    if not all(math.isfinite(w) for w in values):
        raise OptionsError(f"merge weights must be numbers, got {list(weights)}")
    if mode == "softmax":
        return torch.softmax(torch.tensor(values, dtype=torch.float32), dim=0).tolist()
    if mode == "average":
        if any(w < 0 for w in values) or sum(values) <= 0:
            raise OptionsError(f"merge weights must be >= 0 with a positive sum, got {values}")
        return [w / sum(values) for w in values]
    return values


def parse_weights(text: str) -> list[float]:
    """``"0.6,0.4"`` -> ``[0.6, 0.4]``."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise OptionsError(f"--weights must be comma-separated numbers, got {text!r}") from None


def _load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file '{path}' does not exist")
    try:
        raw = load_torch_file(path, "a so-vits-svc generator checkpoint (G_*.pth)")
    except WeightFileError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise CheckpointError(f"'{path}' is not a so-vits-svc generator checkpoint (no 'model' state dict); "
                              "pick the G_*.pth file")
    return raw


def _generator_state(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    state = {k.removeprefix("module."): v for k, v in raw["model"].items() if isinstance(v, torch.Tensor)}
    if "emb_g.weight" not in state or "pre.weight" not in state:
        raise CheckpointError(f"'{path}' does not contain a so-vits-svc generator (no emb_g/pre weights); "
                              "pick the G_*.pth file, not D_*.pth")
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}


def _to_half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 copies; tensors that share storage (a shared flow network) stay shared."""
    done: dict[tuple, torch.Tensor] = {}
    out = {}
    for key, value in state.items():
        ident = (value.data_ptr(), tuple(value.shape), tuple(value.stride()))
        if ident not in done:
            done[ident] = value.half() if value.is_floating_point() else value.clone()
        out[key] = done[ident]
    return out


def _parameter_count(raw: dict, state: dict[str, torch.Tensor]) -> int:
    """Parameters of the training model the optimizer state must describe: the input's own count if it
    has an optimizer state, else the number of distinct tensors kept."""
    groups = raw.get("optimizer", {}).get("param_groups") if isinstance(raw.get("optimizer"), dict) else None
    if isinstance(groups, list) and groups and all(isinstance(g, dict) and "params" in g for g in groups):
        return sum(len(g["params"]) for g in groups)
    return len({(v.data_ptr(), tuple(v.shape)) for v in state.values()})


def _fresh_optimizer_state(n_params: int) -> dict:
    """The state_dict of a new AdamW over ``n_params`` parameters, as compress_model.py stores it."""
    params = [torch.nn.Parameter(torch.empty(0)) for _ in range(n_params)]
    return torch.optim.AdamW(params, RELEASE_LEARNING_RATE, betas=(0.8, 0.99), eps=1e-9).state_dict()


def _save_release(state: dict[str, torch.Tensor], path: Path, n_params: int) -> None:
    """``torch.save`` the release layout atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": state, "iteration": 0, "optimizer": _fresh_optimizer_state(n_params),
               "learning_rate": RELEASE_LEARNING_RATE}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _output_paths(out: Path) -> tuple[Path, Path]:
    if out.suffix == ".pth":
        return out, out.parent / "config.json"
    return out / f"{out.name}.pth", out / "config.json"


def _check_compatible(files: list[tuple[Path, Path]], configs: list[ModelConfig]) -> None:
    first = configs[0]
    for (pth, _), cfg in zip(files[1:], configs[1:], strict=True):
        for what, a, b in (("model architecture", first.model, cfg.model),
                           ("speech encoder", first.speech_encoder, cfg.speech_encoder),
                           ("sampling rate", first.sampling_rate, cfg.sampling_rate),
                           ("hop length", first.hop_length, cfg.hop_length)):
            if a != b:
                raise CheckpointError(f"cannot merge '{files[0][0]}' and '{pth}': their {what} differs "
                                      f"({_describe(a, b)}); only models of the same architecture can be merged")


def _describe(a: object, b: object) -> str:
    if hasattr(a, "__dataclass_fields__"):
        diffs = [f"{k}: {getattr(a, k)} vs {getattr(b, k)}" for k in a.__dataclass_fields__
                 if getattr(a, k) != getattr(b, k)]
        return ", ".join(diffs[:3])
    return f"{a} vs {b}"


def _check_same_tensors(states: list[dict[str, torch.Tensor]], paths: list[Path]) -> None:
    first = states[0]
    for state, path in zip(states[1:], paths[1:], strict=True):
        if set(state) != set(first):
            key = sorted(set(state) ^ set(first))[0]
            raise CheckpointError(f"cannot merge '{paths[0]}' and '{path}': tensor {key} is in only one of them "
                                  "(different architectures)")
        for key, value in first.items():
            if value.shape != state[key].shape:
                raise CheckpointError(f"cannot merge '{paths[0]}' and '{path}': {key} has shape "
                                      f"{tuple(value.shape)} vs {tuple(state[key].shape)} (different architectures)")


def describe(written: WrittenModel) -> str:
    """One line for the CLI and the UI."""
    where = f"{written.pth}" + (f" (+ {written.config.name})" if written.config else "")
    return f"wrote {where}" + (f"; {'; '.join(written.notes)}" if written.notes else "")


__all__ = ["MERGE_MODES", "WrittenModel", "compress", "describe", "merge", "merge_factors", "parse_weights"]

