"""Small deterministic so-vits-svc checkpoints (``G_*.pth`` + ``config.json``) for tests.

The tensors are random but fixed: each one is drawn from a generator seeded by its key, so
a checkpoint depends only on (variant, overrides, seed), never on module construction order.
``tests/data/make_reference_expectations.py`` runs the reference implementation on these
same files to produce the expected audio.
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path
from typing import Any

import torch

from svc.config import ModelConfig
from svc.models import SynthesizerTrn, checkpoint_shapes, fold_weight_norm
from svc.models.snake import KERNEL_SIZE, RATIO, kaiser_sinc_filter

SPEAKERS = ("alice", "bob", "carol")

SMALL_41: dict[str, Any] = {
    "train": {"segment_size": 10240, "learning_rate": 0.0001, "seed": 1234},
    "data": {
        "sampling_rate": 44100, "hop_length": 512, "filter_length": 2048, "win_length": 2048,
        "max_wav_value": 32768.0, "n_mel_channels": 80, "unit_interpolate_mode": "nearest",
    },
    "model": {
        "inter_channels": 16, "hidden_channels": 32, "filter_channels": 64, "n_heads": 2, "n_layers": 2,
        "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [8, 8, 2, 2, 2],
        "upsample_initial_channel": 64, "upsample_kernel_sizes": [16, 16, 4, 4, 4], "n_layers_q": 3,
        "n_layers_trans_flow": 3, "n_flow_layer": 4, "use_spectral_norm": False, "gin_channels": 32,
        "ssl_dim": 768, "n_speakers": 3, "vocoder_name": "nsf-hifigan", "speech_encoder": "vec768l12",
        "speaker_embedding": False, "vol_embedding": False, "use_depthwise_conv": False,
        "flow_share_parameter": False, "use_automatic_f0_prediction": True, "use_transformer_flow": False,
    },
}

# variant -> changes to the "model" section ("4.0" rebuilds the section without 4.1 keys)
VARIANTS: dict[str, dict[str, Any]] = {
    "4.1": {},
    "vol_embedding": {"vol_embedding": True},
    "depthwise": {"use_depthwise_conv": True},
    "flow_share": {"flow_share_parameter": True},
    "n_flow_layer_3": {"n_flow_layer": 3},
    "no_auto_f0": {"use_automatic_f0_prediction": False},
    "transformer_flow": {"use_transformer_flow": True, "n_flow_layer": 3, "n_layers_trans_flow": 2},
    "transformer_flow_share": {"use_transformer_flow": True, "flow_share_parameter": True},
    "snake": {"vocoder_name": "nsf-snake-hifigan"},
    "tiny": {"use_depthwise_conv": True, "flow_share_parameter": True, "vol_embedding": True},
    "resblock2": {"resblock": "2", "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3], [1, 3]]},
    "4.0": {},
}

FRAMES = 20  # frames of the parity inputs
# parity case (tests/data/reference_<case>.npy) -> (fixture variant, predict_f0, pass vol)
PARITY_CASES: dict[str, tuple[str, bool, bool]] = {
    "4.1": ("4.1", False, False),
    "4.1_predict_f0": ("4.1", True, False),
    "vol_embedding": ("vol_embedding", False, True),
    "depthwise": ("depthwise", False, False),
    "flow_share": ("flow_share", False, False),
    "n_flow_layer_3": ("n_flow_layer_3", False, False),
    "no_auto_f0": ("no_auto_f0", False, False),
    "transformer_flow": ("transformer_flow", False, False),
    "transformer_flow_share": ("transformer_flow_share", False, False),
    "snake": ("snake", False, False),
    "tiny": ("tiny", False, True),
    "resblock2": ("resblock2", False, False),
    "4.0": ("4.0", False, False),
    "4.0_predict_f0": ("4.0", True, False),
}


def small_config(variant: str = "4.1", speakers: tuple[str, ...] = SPEAKERS, **model_overrides: Any) -> dict:
    """The config.json dict of a small model of ``variant`` with ``speakers`` (ids in order)."""
    cfg = copy.deepcopy(SMALL_41)
    cfg["model"].update(VARIANTS[variant])
    if variant == "4.0":
        for key in ("n_layers_trans_flow", "n_flow_layer", "vocoder_name", "speech_encoder", "speaker_embedding",
                    "vol_embedding", "use_depthwise_conv", "flow_share_parameter", "use_automatic_f0_prediction",
                    "use_transformer_flow"):
            del cfg["model"][key]
        del cfg["data"]["unit_interpolate_mode"]
        cfg["model"]["ssl_dim"] = 256
    cfg["model"].update(model_overrides)
    cfg["model"]["n_speakers"] = model_overrides.get("n_speakers", len(speakers))
    cfg["spk"] = {name: i for i, name in enumerate(speakers)}
    return cfg


def _draw(key: str, shape: torch.Size, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    if key.endswith("weight_g"):
        return 0.5 + torch.rand(shape, generator=gen)
    if key.endswith(".filter"):
        return kaiser_sinc_filter(0.5 / RATIO, 0.6 / RATIO, KERNEL_SIZE).reshape(shape)
    if key.endswith("gamma"):
        return 1.0 + 0.1 * torch.randn(shape, generator=gen)
    if key.endswith((".alpha", ".beta")):  # log-scale snake parameters
        return 0.2 * torch.randn(shape, generator=gen)
    if key.startswith(("emb_", "enc_p.f0_emb")) or "emb_rel" in key:
        return 0.3 * torch.randn(shape, generator=gen)
    fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
    scale = 0.05 if len(shape) == 1 else 1.0 / fan_in**0.5
    return scale * torch.randn(shape, generator=gen)


def enc_q_shapes(cfg: dict) -> dict[str, torch.Size]:
    """Shapes of the reference's training-only posterior encoder (16-layer WN, kernel 5)."""
    m = cfg["model"]
    spec, inter, hidden, gin = cfg["data"]["filter_length"] // 2 + 1, m["inter_channels"], m["hidden_channels"], \
        m["gin_channels"]
    shapes = {
        "enc_q.pre.weight": (hidden, spec, 1), "enc_q.pre.bias": (hidden,),
        "enc_q.enc.cond_layer.bias": (2 * hidden * 16,), "enc_q.enc.cond_layer.weight_g": (2 * hidden * 16, 1, 1),
        "enc_q.enc.cond_layer.weight_v": (2 * hidden * 16, gin, 1),
        "enc_q.proj.weight": (2 * inter, hidden, 1), "enc_q.proj.bias": (2 * inter,),
    }
    depthwise = m.get("use_depthwise_conv", False)
    for i in range(16):
        p = f"enc_q.enc.in_layers.{i}."
        if depthwise:
            shapes.update({p + "depth_conv.bias": (hidden,), p + "depth_conv.weight_g": (hidden, 1, 1),
                           p + "depth_conv.weight_v": (hidden, 1, 5), p + "point_conv.bias": (2 * hidden,),
                           p + "point_conv.weight_g": (2 * hidden, 1, 1),
                           p + "point_conv.weight_v": (2 * hidden, hidden, 1)})
        else:
            shapes.update({p + "bias": (2 * hidden,), p + "weight_g": (2 * hidden, 1, 1),
                           p + "weight_v": (2 * hidden, hidden, 5)})
        out = 2 * hidden if i < 15 else hidden
        p = f"enc_q.enc.res_skip_layers.{i}."
        shapes.update({p + "bias": (out,), p + "weight_g": (out, 1, 1), p + "weight_v": (out, hidden, 1)})
    return {k: torch.Size(v) for k, v in shapes.items()}


def make_state_dict(cfg: dict, seed: int = 0, enc_q: bool = False) -> dict[str, torch.Tensor]:
    """A reference-format generator state dict for ``cfg`` (fp32, weight norm as g/v pairs)."""
    with torch.device("meta"):
        model = SynthesizerTrn(ModelConfig.from_dict(cfg).model)
    shapes = checkpoint_shapes(model)
    if enc_q:
        shapes.update(enc_q_shapes(cfg))
    state = {key: _draw(key, shape, seed) for key, shape in shapes.items()}
    # A shared flow network is one set of tensors saved under every name it is registered as.
    for key in [k for k in state if k.startswith("flow.flows.") and ".enc." in k]:
        shared = "flow.wn." + key.split(".enc.", 1)[1]
        if shared in state:
            state[key] = state[shared]
    calibrate_output(state, cfg)
    return state


OUTPUT_STD = 0.3  # the calibrated fixtures' output: zero mean, this std (before the final tanh)


def calibrate_output(state: dict[str, torch.Tensor], cfg: dict) -> None:
    """Rescale ``dec.conv_post`` in place so the parity inputs give audio-like output.

    Random weights alone give a large DC offset (or a saturated square wave for snake), which
    would let a max-abs tolerance hide real errors.  The input of ``conv_post`` is captured for
    the parity inputs, then ``weight_g`` is scaled and the bias set so that the output before
    ``tanh`` has zero mean and ``OUTPUT_STD`` std.  Both sides of every comparison load the
    calibrated file, so the fixture stays a plain checkpoint.
    """
    model = SynthesizerTrn(ModelConfig.from_dict(cfg).model)
    model.load_state_dict(fold_weight_norm(state, model), strict=False)
    model.eval()
    model.dec.fast = False
    captured: list[torch.Tensor] = []
    model.dec.conv_post.register_forward_hook(lambda module, args, out: captured.append(out.detach()))
    x = make_inputs(cfg)
    speaker = torch.LongTensor([[min(1, cfg["model"]["n_speakers"] - 1)]])  # the parity inputs' speaker 1, if any
    with torch.inference_mode():
        model.infer(x["c"], x["f0"], x["uv"], speaker, noise_scale=0.4, seed=52468,
                    vol=x["vol"] if cfg["model"].get("vol_embedding") else None)
    out = captured[0].double()
    bias = state["dec.conv_post.bias"].double()
    linear = out - bias[None, :, None]  # the part of the output that scales with weight_g
    scale = OUTPUT_STD / float(linear.std())
    state["dec.conv_post.weight_g"] = (state["dec.conv_post.weight_g"] * scale).float()
    state["dec.conv_post.bias"] = (-scale * linear.mean()).reshape(1).float()


def _optimizer_state(state: dict[str, torch.Tensor], trained: bool) -> dict:
    group = {"lr": 1e-4, "betas": (0.8, 0.99), "eps": 1e-9, "weight_decay": 0.01, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "initial_lr": 1e-4, "params": list(range(len(state)))}
    if not trained:
        return {"state": {}, "param_groups": [group]}
    per_param = {
        i: {"step": torch.tensor(100.0), "exp_avg": torch.zeros_like(t), "exp_avg_sq": torch.zeros_like(t)}
        for i, t in enumerate(state.values())
    }
    return {"state": per_param, "param_groups": [group]}


def make_checkpoint(directory: str | Path, variant: str = "4.1", *, speakers: tuple[str, ...] = SPEAKERS,
                    seed: int = 0, optimizer: bool = False, fp16: bool = False, enc_q: bool = False,
                    filename: str = "G_100.pth", **model_overrides: Any) -> Path:
    """Write ``config.json`` and ``filename`` for a small ``variant`` model into ``directory``.

    ``optimizer`` stores a full (training) AdamW state, otherwise the empty state of a
    compressed release file; ``fp16`` stores half tensors; ``enc_q`` keeps the posterior
    encoder as training files do.  Returns ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = small_config(variant, speakers, **model_overrides)
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    state = make_state_dict(cfg, seed, enc_q=enc_q)
    if fp16:
        state = {k: v.half() for k, v in state.items()}
    torch.save(
        {"model": state, "iteration": 100 if optimizer else 0,
         "optimizer": _optimizer_state(state, optimizer), "learning_rate": 1e-4},
        directory / filename,
    )
    return directory


def make_inputs(cfg: dict, frames: int = FRAMES, seed: int = 7) -> dict[str, torch.Tensor]:
    """Deterministic ``infer`` inputs: content, an f0 contour (one unvoiced run, one frame above
    the 1103 Hz coarse-pitch edge), uv, speaker 1 and a volume curve."""
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(1, cfg["model"]["ssl_dim"], frames, generator=gen)
    f0 = 220.0 * 2 ** (torch.linspace(-1, 1.5, frames) + 0.05 * torch.randn(frames, generator=gen))
    uv = torch.ones(frames)
    f0[3:6] = 0.0
    uv[3:6] = 0.0
    f0[frames - 2] = 1150.0
    vol = 0.05 + 0.1 * torch.rand(frames, generator=gen)
    return {"c": c, "f0": f0[None], "uv": uv[None], "g": torch.LongTensor([[1]]), "vol": vol[None]}
