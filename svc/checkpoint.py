"""Reading so-vits-svc ``G_*.pth`` generator checkpoints safely and checking them against config.json.

``load_generator`` reads the file with ``weights_only=True``, compares its tensors with the
shapes the config implies, fixes what the shapes make certain (recording a note), refuses
everything else with a ``CheckpointError`` that says how to fix it, and only then builds the
model, folds weight norm and loads with ``strict=True``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig
from .encoders.registry import ENCODERS
from .errors import CheckpointError, ConfigError, WeightFileError
from .models import Sovits3Synthesizer, SynthesizerTrn, checkpoint_shapes, fold_weight_norm
from .weights import float_state, load_torch_file

logger = logging.getLogger(__name__)

EARLY_40_SPEAKER_ROWS = 200  # 4.0 preprocess kept the template's n_speakers until 2023-03-21
TRAINING_ONLY_PREFIXES = ("enc_q.",)
SOVITS3_KEY = "enc_p_.f0_emb.weight"  # only 3.0 generators have it


@dataclass
class LoadedModel:
    """A ready generator (eval mode, CPU, float32) and the config it was built from."""

    model: SynthesizerTrn | Sovits3Synthesizer
    config: ModelConfig
    notes: list[str]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The generator tensors of a ``G_*.pth`` file, as float32, without training-only keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file '{path}' does not exist")
    raw = _torch_load(path)
    state = raw.get("model", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"'{path}' is a PyTorch file but not a so-vits-svc generator checkpoint (no 'model' state dict); "
            "pick the G_*.pth file, not D_*.pth or another model's file"
        )
    state = float_state(state)  # also drops the "module." prefix of DataParallel saves
    if "emb_g.weight" not in state or not ("pre.weight" in state or SOVITS3_KEY in state):
        raise CheckpointError(
            f"'{path}' does not contain a so-vits-svc generator (no emb_g/pre weights); pick the G_*.pth file"
        )
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}


def _torch_load(path: Path) -> object:
    with path.open("rb") as f:
        head = f.read(4)
    is_zip = head.startswith(b"PK\x03\x04")
    is_legacy_pickle = head[:1] == b"\x80"
    if not (is_zip or is_legacy_pickle):
        raise CheckpointError(f"'{path}' is not a PyTorch checkpoint file; pick the model's G_*.pth file")
    try:
        return load_torch_file(path, "a so-vits-svc generator checkpoint (G_*.pth)")
    except WeightFileError as exc:
        raise CheckpointError(str(exc)) from None


def state_version(state: dict[str, torch.Tensor]) -> str:
    """"3.0" or "4.x": which generator a state dict belongs to (3.0 has ``enc_p_``, no top-level ``pre``)."""
    return "3.0" if SOVITS3_KEY in state and "pre.weight" not in state else "4.x"


def build_generator(config: ModelConfig) -> SynthesizerTrn | Sovits3Synthesizer:
    """An uninitialised generator of ``config``'s version (on the current default device)."""
    if config.version == "3.0":
        return Sovits3Synthesizer(config.model, config.sampling_rate)
    return SynthesizerTrn(config.model)


def load_generator(pth_path: str | Path, config: ModelConfig) -> LoadedModel:
    """Validate ``pth_path`` against ``config``, then build and load the generator."""
    state = read_state_dict(pth_path)
    _check_version(state, config, Path(pth_path))
    if config.version == "3.0":
        config, notes = reconcile_sovits3(state, config, Path(pth_path))
    else:
        config, notes = reconcile(state, config, Path(pth_path))
    with torch.device("meta"):
        expected = checkpoint_shapes(build_generator(config))
    _check_keys(state, expected, config, Path(pth_path))
    # Built on the meta device and given the file's tensors (assign=True): no random initialisation
    # of 40 M parameters and no second copy of them, which makes loading several times faster.
    with torch.device("meta"):
        model = build_generator(config)
    model.load_state_dict(fold_weight_norm(state, model), strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a buffer the file does not hold
        model = build_generator(config)
        model.load_state_dict(fold_weight_norm(state, model), strict=True)
    model.eval().requires_grad_(False)
    for note in notes:
        logger.info("%s: %s", pth_path, note)
    return LoadedModel(model=model, config=config, notes=notes)


def reconcile(state: dict[str, torch.Tensor], config: ModelConfig, path: Path) -> tuple[ModelConfig, list[str]]:
    """Compare the shapes that identify a model with the config; fix certain cases, refuse the rest."""
    notes = list(config.notes)
    params = config.model
    cfg_name = config.path or "config.json"

    ssl_dim = state["pre.weight"].shape[1]
    encoder = config.speech_encoder
    if not config.speech_encoder_given and ssl_dim == 256 and params.ssl_dim == 256:
        encoder = "vec256l9"
        notes.append("config has no speech_encoder and the model takes 256-dim features: using vec256l9 "
                     "(a 4.0 model)")
    if ssl_dim != params.ssl_dim:
        raise CheckpointError(
            f"'{path}' takes {ssl_dim}-dim speech features but '{cfg_name}' says ssl_dim {params.ssl_dim}: "
            f"the config belongs to another model; {_encoder_hint(ssl_dim)}"
        )
    spec = ENCODERS.get(encoder)
    if spec is None:
        raise ConfigError(f"'{cfg_name}': unknown speech_encoder {encoder!r}; available: {', '.join(ENCODERS)}")
    if spec.dim != ssl_dim:
        raise CheckpointError(
            f"'{path}' takes {ssl_dim}-dim speech features but speech_encoder {encoder!r} gives {spec.dim}: "
            f"{_encoder_hint(ssl_dim)}"
        )

    rows = state["emb_g.weight"].shape[0]
    n_speakers = params.n_speakers
    if rows != n_speakers:
        if rows == EARLY_40_SPEAKER_ROWS and rows > max(config.spk.values()):
            notes.append(f"the model has a {rows}-row speaker table (early 4.0 training): "
                         f"using n_speakers {rows} from the checkpoint")
            n_speakers = rows
        else:
            raise CheckpointError(
                f"'{path}' has {rows} speakers but '{cfg_name}' says n_speakers {n_speakers}: "
                "use the config.json this model was trained with"
            )
    too_high = {name: sid for name, sid in config.spk.items() if sid >= n_speakers}
    if too_high:
        raise ConfigError(
            f"'{cfg_name}': speaker ids {too_high} are not below n_speakers {n_speakers}; "
            "use the config.json this model was trained with"
        )

    has_vol = "emb_vol.weight" in state
    if has_vol != params.vol_embedding:
        fix = "true" if has_vol else "false"
        raise CheckpointError(
            f"'{path}' was trained {'with' if has_vol else 'without'} volume embedding but '{cfg_name}' says "
            f"vol_embedding {str(params.vol_embedding).lower()}: set model.vol_embedding to {fix}"
        )
    model = dataclasses.replace(params, n_speakers=n_speakers)
    return dataclasses.replace(config, model=model, speech_encoder=encoder, notes=tuple(notes)), notes


def _check_version(state: dict[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    """A 3.0 file needs a 3.0 config and a 4.x file a 4.x config; say which when they are mixed up."""
    file_version = state_version(state)
    cfg_name = config.path or "config.json"
    if file_version == "3.0" and config.version != "3.0":
        raise CheckpointError(
            f"'{path}' is a so-vits-svc 3.0 model but '{cfg_name}' is a {config.version} config "
            f"({config.sampling_rate} Hz, hop {config.hop_length}): use the config.json this model was trained "
            "with (3.0 configs have data.sampling_rate 32000 or 48000 and hop_length 320)"
        )
    if file_version == "4.x" and config.version == "3.0":
        raise CheckpointError(
            f"'{path}' is a so-vits-svc 4.x model but '{cfg_name}' is a so-vits-svc 3.0 config "
            f"({config.sampling_rate} Hz, hop 320, no speech_encoder): use the config.json this model was trained with"
        )


def reconcile_sovits3(state: dict[str, torch.Tensor], config: ModelConfig,
                      path: Path) -> tuple[ModelConfig, list[str]]:
    """The 3.0 checks: the speaker table must match n_speakers (2x the speakers, as 3.0 writes it)."""
    cfg_name = config.path or "config.json"
    rows = state["emb_g.weight"].shape[0]
    if rows != config.model.n_speakers:
        raise CheckpointError(
            f"'{path}' has {rows} speaker rows but '{cfg_name}' says n_speakers {config.model.n_speakers}: "
            "use the config.json this model was trained with"
        )
    too_high = {name: sid for name, sid in config.spk.items() if sid >= rows}
    if too_high:
        raise ConfigError(f"'{cfg_name}': speaker ids {too_high} are not below n_speakers {rows}; "
                          "use the config.json this model was trained with")
    return config, list(config.notes)


def _encoder_hint(ssl_dim: int) -> str:
    if ssl_dim == 256:
        return ('this looks like a 4.0 model: set "speech_encoder": "vec256l9" and "ssl_dim": 256 in the config '
                '(or "hubertsoft" if it was trained with HuBERT-Soft)')
    names = [name for name, spec in ENCODERS.items() if spec.dim == ssl_dim]
    if names:
        return f'set "ssl_dim": {ssl_dim} and "speech_encoder" to one of {", ".join(names)}'
    return f"no known speech encoder gives {ssl_dim}-dim features"


def _check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Size], config: ModelConfig,
                path: Path) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, "
                     f"config {tuple(expected[k])})")
    raise CheckpointError(
        f"'{path}' does not match '{config.path or 'config.json'}': tensors {'; '.join(parts)}. "
        f"{_structure_hint(missing, unexpected, wrong)}"
    )


def _structure_hint(missing: list[str], unexpected: list[str], wrong: list[str]) -> str:
    """Guess which config switch explains a key mismatch."""
    keys = missing + unexpected
    hints = []
    if any(k.startswith("f0_decoder.") for k in keys):
        on = any(k.startswith("f0_decoder.") for k in unexpected)
        hints.append(f"set model.use_automatic_f0_prediction to {'true' if on else 'false'}")
    if any(".snakes." in k or ".activations." in k or "snake_post" in k for k in keys):
        on = any("snake" in k or ".activations." in k for k in unexpected)
        hints.append(f'set model.vocoder_name to "{"nsf-snake-hifigan" if on else "nsf-hifigan"}"')
    if any("depth_conv" in k for k in keys):
        on = any("depth_conv" in k for k in unexpected)
        hints.append(f"set model.use_depthwise_conv to {'true' if on else 'false'}")
    if any(k.startswith("flow.wn.") for k in keys):
        on = any(k.startswith("flow.wn.") for k in unexpected)
        hints.append(f"set model.flow_share_parameter to {'true' if on else 'false'}")
    if any("cond_pre" in k or "self_attn_layers" in k for k in keys if k.startswith("flow.")):
        on = any("cond_pre" in k for k in unexpected)
        hints.append(f"set model.use_transformer_flow to {'true' if on else 'false'}")
    if not hints and any(k.startswith("flow.") for k in keys):
        hints.append("check model.n_flow_layer / n_layers_trans_flow")
    if not hints and wrong:
        hints.append("check the channel sizes in the model section")
    if not hints:
        return "Use the config.json this model was trained with."
    return "Probably: " + "; ".join(dict.fromkeys(hints)) + "."
