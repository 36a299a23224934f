"""Small deterministic so-vits-svc 3.0 models in the 3.0 file formats, for tests.

``config.json`` is what 3.0's ``preprocess_flist_config.py`` writes (its template, ``spk`` in
listing order, ``n_speakers`` twice the speaker count, indent 2, ASCII-escaped); the checkpoint
is what 3.0's ``save_checkpoint`` writes: ``{"model", "iteration", "optimizer",
"learning_rate"}`` with the posterior encoder ``enc_q`` included.  3.0 fixes the decoder
(192 -> 512 channels) and the text encoder depth, so only the widths 3.0 reads from the config
(hidden, filter, heads) are made small.  ``tests/data/make_sovits3_reference.py`` runs the 3.0
reference on these same tensors.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from model_fixtures import _draw, enc_q_shapes

from svc.config import ModelConfig
from svc.models import Sovits3Synthesizer, checkpoint_shapes

SPEAKERS = ("nen", "paimon", "yunhao")
FRAMES = 24  # frames of the parity inputs
POST_GAIN = 0.4

TEMPLATE_30: dict[str, Any] = {
    "train": {
        "log_interval": 200, "eval_interval": 1000, "seed": 1234, "epochs": 10000, "learning_rate": 1e-4,
        "betas": [0.8, 0.99], "eps": 1e-9, "batch_size": 12, "fp16_run": False, "lr_decay": 0.999875,
        "segment_size": 17920, "init_lr_ratio": 1, "warmup_epochs": 0, "c_mel": 45, "c_kl": 1.0,
        "use_sr": True, "max_speclen": 384, "port": "8001", "keep_ckpts": 5,
    },
    "data": {
        "training_files": "filelists/train.txt", "validation_files": "filelists/val.txt",
        "max_wav_value": 32768.0, "sampling_rate": 32000, "filter_length": 1280, "hop_length": 320,
        "win_length": 1280, "n_mel_channels": 80, "mel_fmin": 0.0, "mel_fmax": None,
    },
    "model": {
        "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
        "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [10, 8, 2, 2],
        "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 4, 4], "n_layers_q": 3,
        "use_spectral_norm": False, "gin_channels": 256, "ssl_dim": 256, "n_speakers": 0,
    },
    "spk": {},
}
SMALL_WIDTHS = {"hidden_channels": 32, "filter_channels": 64, "n_heads": 2}


def sovits3_config(rate: int = 32000, speakers: tuple[str, ...] = SPEAKERS, **model_overrides: Any) -> dict:
    """The config.json dict 3.0's preprocessing writes for ``speakers`` at ``rate`` (small widths)."""
    cfg = copy.deepcopy(TEMPLATE_30)
    if rate == 48000:
        del cfg["train"]["keep_ckpts"]  # only the 32k template has it
    cfg["data"]["sampling_rate"] = rate
    cfg["model"].update(SMALL_WIDTHS, **model_overrides)
    cfg["model"]["n_speakers"] = 2 * len(speakers)
    cfg["spk"] = {name: i for i, name in enumerate(speakers)}
    return cfg


def sovits3_state_dict(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 3.0 training-file generator state dict for ``cfg`` (enc_q included, weight norm as g/v)."""
    with torch.device("meta"):
        model = Sovits3Synthesizer(ModelConfig.from_dict(cfg).model, cfg["data"]["sampling_rate"])
    shapes = checkpoint_shapes(model)
    shapes.update(enc_q_shapes(cfg))
    # _draw treats "enc_p.f0_emb" as an embedding; 3.0's is "enc_p_.f0_emb".
    state = {key: _draw(key.replace("enc_p_.f0_emb", "enc_p.f0_emb"), shape, seed) for key, shape in shapes.items()}
    # Audio-like output: zero-mean, std about 0.1-0.2 (gain measured once on these draws).
    state["dec.conv_post.weight_g"] = state["dec.conv_post.weight_g"] * POST_GAIN
    state["dec.conv_post.bias"] = torch.zeros_like(state["dec.conv_post.bias"])
    v = state["dec.conv_post.weight_v"]  # odd-symmetric kernels sum to zero: no DC in the output
    state["dec.conv_post.weight_v"] = v - v.flip(-1)
    return state


def _optimizer_state(state: dict[str, torch.Tensor], trained: bool) -> dict | None:
    """AdamW's ``state_dict()`` as 3.0's training saves it (moments only for a few tensors, to stay small)."""
    if not trained:
        return None
    group = {"lr": 1e-4, "betas": (0.8, 0.99), "eps": 1e-9, "weight_decay": 0.01, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "initial_lr": 1e-4, "params": list(range(len(state)))}
    per_param = {i: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(t), "exp_avg_sq": torch.zeros_like(t)}
                 for i, t in enumerate(state.values()) if t.numel() < 4096}
    return {"state": per_param, "param_groups": [group]}


def make_sovits3_checkpoint(directory: str | Path, rate: int = 32000, *, speakers: tuple[str, ...] = SPEAKERS,
                            seed: int = 0, optimizer: bool = True, filename: str = "model.pth",
                            **model_overrides: Any) -> Path:
    """Write ``config.json`` and ``filename`` (a 3.0 ``G_*.pth``) for a small 3.0 model into ``directory``.

    ``optimizer`` stores an AdamW state as training does; otherwise ``optimizer`` is None, as in
    stripped release files.  Returns ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = sovits3_config(rate, speakers, **model_overrides)
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    state = sovits3_state_dict(cfg, seed)
    torch.save({"model": state, "iteration": 1234 if optimizer else 1,
                "optimizer": _optimizer_state(state, optimizer), "learning_rate": 1e-4}, directory / filename)
    return directory


def sovits3_inputs(frames: int = FRAMES, seed: int = 7) -> dict[str, torch.Tensor]:
    """Deterministic 3.0 ``infer`` inputs: units repeated x2 (as 3.0 does), an f0 contour with an
    unvoiced run (0 Hz), one frame above 1100 Hz, and speaker 1."""
    gen = torch.Generator().manual_seed(seed)
    units = torch.randn(1, 256, (frames + 1) // 2, generator=gen)
    c = torch.repeat_interleave(units, 2, dim=2)[:, :, :frames]
    f0 = 220.0 * 2 ** (torch.linspace(-1, 1.5, frames) + 0.05 * torch.randn(frames, generator=gen))
    f0[3:6] = 0.0
    f0[frames - 2] = 1150.0
    return {"c": c, "f0": f0[None], "g": torch.LongTensor([[1]])}


def write_test_hubert_soft(path: str | Path, seed: int = 2) -> None:
    """A small hubert-soft-0d54a1f4.pt-style file whose units have the real 256 dims."""
    from encoder_fixtures import hubert_soft_state

    state = hubert_soft_state(seed, units=256)
    torch.save({"module." + k: v for k, v in state.items()}, path)
