"""Training checkpoints in so-vits-svc's own format.

``G_<step>.pth`` / ``D_<step>.pth`` hold ``{"model": state_dict, "iteration": epoch,
"optimizer": AdamW state, "learning_rate": lr}`` with weight norm as ``weight_g``/``weight_v``
and no ``module.`` prefix, exactly what the reference's ``utils.save_checkpoint`` writes, so
either program can resume the other's run.  Loading follows the reference's tolerance for
the model (a missing or mis-shaped tensor keeps its fresh value, with a warning) but refuses
an optimizer state whose tensors do not fit, instead of corrupting the run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .weight_norm import from_reference_keys, to_reference_keys

logger = logging.getLogger(__name__)

_STEP = re.compile(r"^([GD])_(\d+)\.pth$")


@dataclass
class LoadResult:
    """What ``load_checkpoint`` restored."""

    iteration: int
    learning_rate: float
    missing: list[str]
    optimizer_restored: bool


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (its state dict has no ``module.`` prefix)."""
    return model.module if hasattr(model, "module") else model


def reference_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s tensors under so-vits-svc's names, in its order, as float32 CPU tensors."""
    state = to_reference_keys(unwrap(model).state_dict())
    return {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.cpu() for k, v in state.items()}


def save_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None, learning_rate: float,
                    iteration: int, path: str | Path) -> Path:
    """Write ``path`` atomically (a partly written file never looks like a checkpoint)."""
    path = Path(path)
    payload = {
        "model": reference_state_dict(model),
        "iteration": int(iteration),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "learning_rate": float(learning_rate),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> LoadResult:
    """Load a G or D file written by this program or by so-vits-svc into ``model`` (and ``optimizer``)."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say which one
        raise CheckpointError(f"cannot read checkpoint '{path}': {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise CheckpointError(f"'{path}' is not a so-vits-svc training checkpoint (no 'model' state dict)")
    saved = from_reference_keys({_strip_module(k): v for k, v in raw["model"].items()})
    target = unwrap(model)
    own = target.state_dict()
    merged, missing = {}, []
    for key, value in own.items():
        new = saved.get(key)
        if new is not None and tuple(new.shape) == tuple(value.shape):
            merged[key] = new.to(value.dtype)
        else:
            merged[key] = value
            missing.append(key)
    target.load_state_dict(merged)
    if missing:
        logger.warning("%s: %d tensors not in the checkpoint or of another shape kept their initial values "
                       "(e.g. %s)", path, len(missing), ", ".join(missing[:3]))
    restored = False
    if optimizer is not None and raw.get("optimizer"):
        restored = _load_optimizer(optimizer, raw["optimizer"], path)
    return LoadResult(iteration=int(raw.get("iteration", 0) or 0),
                      learning_rate=float(raw.get("learning_rate", 1e-4) or 1e-4),
                      missing=missing, optimizer_restored=restored)


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _load_optimizer(optimizer: torch.optim.Optimizer, state: dict, path: Path) -> bool:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved_groups = state.get("param_groups", [])
    n_saved = sum(len(g.get("params", [])) for g in saved_groups)
    per_param = state.get("state", {})
    fits = n_saved == len(params) and all(
        tuple(s["exp_avg"].shape) == tuple(params[int(i)].shape)
        for i, s in per_param.items() if isinstance(s, dict) and "exp_avg" in s
    )
    if not fits:
        logger.warning("%s: the optimizer state does not fit this model (another config?); starting it fresh", path)
        return False
    optimizer.load_state_dict(state)
    return True


def checkpoint_steps(run_dir: str | Path, kind: str = "G") -> list[int]:
    """Steps of the ``<kind>_<step>.pth`` files in ``run_dir``, ascending."""
    steps = []
    for p in Path(run_dir).glob(f"{kind}_*.pth"):
        m = _STEP.match(p.name)
        if m:
            steps.append(int(m.group(2)))
    return sorted(steps)


def latest_pair(run_dir: str | Path) -> int | None:
    """The highest step with both ``G_<step>.pth`` and ``D_<step>.pth``, if any."""
    both = set(checkpoint_steps(run_dir, "G")) & set(checkpoint_steps(run_dir, "D"))
    return max(both) if both else None


def clean_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` G/D pairs (``G_0``/``D_0``, the base models, are kept).

    so-vits-svc sorts by modification time; sorting by step gives the same order for a run
    and cannot be confused by copied files.
    """
    removed: list[Path] = []
    if keep <= 0:
        return removed
    for kind in ("G", "D"):
        steps = [s for s in checkpoint_steps(run_dir, kind) if s != 0]
        for step in steps[:-keep]:
            path = Path(run_dir) / f"{kind}_{step}.pth"
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
