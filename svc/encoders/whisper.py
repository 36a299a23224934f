"""Whisper PPG: the audio encoder of OpenAI Whisper as a content encoder (whisper-ppg, -large).

The weight file is an official whisper checkpoint ``{'dims': {...}, 'model_state_dict': ...}``
(usually fp16).  Only the encoder is built; the decoder weights in the file are ignored.

Whisper sees fixed windows of ``n_audio_ctx`` positions (1500 = 30 s).  Up to one window we do
exactly what so-vits-svc does (pad to the window, encode, keep ``N // 320`` frames).  Longer input
(the reference silently cuts it at 30 s) is encoded in full 30-s windows of real audio that
overlap by 10 s: each window hands over to the next in the middle of the overlap, where both
have 5 s of context on either side, with a linear cross-fade over 24 frames (about 0.5 s); see ``plan_windows``.
All windows are cut from one log-Mel of the whole input, so they share its level normalisation
and the 20 ms frame grid.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .base import ContentEncoder, param_dtype
from .files import require_dict_keys
from .registry import EncoderSpec
from .whisper_audio import SAMPLES_PER_TOKEN, log_mel_spectrogram, mel_filters, pad_or_trim


@dataclass(frozen=True)
class WhisperDims:
    """The ``dims`` entry of a whisper checkpoint."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class SelfAttention(nn.Module):
    """Whisper multi-head self-attention (``key`` has no bias)."""

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``."""
        batch, n_ctx, n_state = x.shape
        # whisper scales q and k by d**-0.25 each; same arithmetic keeps results identical
        scale = (n_state // self.n_head) ** -0.25
        q = self.query(x).view(batch, n_ctx, self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = self.key(x).view(batch, n_ctx, self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = self.value(x).view(batch, n_ctx, self.n_head, -1).permute(0, 2, 1, 3)
        weights = F.softmax(q @ k, dim=-1)
        return self.out((weights @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: attention and a 4x GELU MLP."""

    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = SelfAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``."""
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    """Whisper's audio encoder; parameter names match ``encoder.*`` in the checkpoint."""

    def __init__(self, dims: WhisperDims):
        super().__init__()
        n_state = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        # filled from the file: the reference uses the stored (fp16-rounded) sinusoids
        self.register_buffer("positional_embedding", torch.zeros(dims.n_audio_ctx, n_state))
        self.blocks = nn.ModuleList(
            EncoderBlock(n_state, dims.n_audio_head) for _ in range(dims.n_audio_layer)
        )
        self.ln_post = nn.LayerNorm(n_state)

    def forward(self, mel: Tensor) -> Tensor:
        """Log-Mel ``(B, n_mels, 2 * T)`` with ``T <= n_audio_ctx`` -> ``(B, T, n_state)``."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.positional_embedding[: x.shape[1]]
        dtype = x.dtype
        x = x.to(param_dtype(self.blocks))  # the blocks may run in bfloat16 (ContentEncoder.use_bfloat16)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x.to(dtype))


@dataclass(frozen=True)
class Window:
    """One encoder window over the output frames.

    It starts at frame ``start`` and owns ``[keep_from, keep_to)``; around each hand-over it
    is cross-faded with its neighbour over ``2 * half_fade`` frames.
    """

    start: int
    keep_from: int
    keep_to: int

    def weights(self, n_ctx: int, n_frames: int, half_fade: int) -> Tensor:
        """Blend weight ``(n_ctx,)`` of each of this window's frames; neighbours' weights sum to 1."""
        frames = torch.arange(self.start, self.start + n_ctx, dtype=torch.float32)
        if half_fade == 0:
            return ((frames >= self.keep_from) & (frames < self.keep_to)).float()
        # complementary linear ramps centred on each hand-over frame
        fade = 2 * half_fade
        weight = torch.ones(n_ctx)
        if self.keep_from > 0:
            weight = weight * ((frames - self.keep_from + half_fade + 0.5) / fade).clamp(0.0, 1.0)
        if self.keep_to < n_frames:
            weight = weight * (1.0 - ((frames - self.keep_to + half_fade + 0.5) / fade).clamp(0.0, 1.0))
        return weight


def plan_windows(n_frames: int, n_ctx: int, context: int) -> list[Window]:
    """Cover ``n_frames`` output frames with windows of ``n_ctx`` frames.

    Each window hands over to the next in the middle of their overlap, so every kept frame
    (except at the ends of the input) has at least ``context`` frames of audio on each side
    inside its own window.  Window starts are whole frames, so the Mel frames (and hence the
    20 ms frame grid) are identical in all windows; the last window ends exactly at the input end.
    """
    if n_frames <= n_ctx:
        return [Window(0, 0, n_frames)]
    step = n_ctx - 2 * context
    if step <= 0:
        raise ValueError(f"context {context} leaves no frames to keep in a window of {n_ctx}")
    last_start = n_frames - n_ctx
    windows: list[Window] = []
    start, keep_from = 0, 0
    while start < last_start:
        keep_to = start + n_ctx - context
        windows.append(Window(start, keep_from, keep_to))
        start, keep_from = min(start + step, last_start), keep_to
    windows.append(Window(last_start, keep_from, n_frames))
    return windows


class WhisperPPG(ContentEncoder):
    """Whisper encoder features: 16 kHz wav ``(1, N)`` -> ``(1, n_audio_state, N // 320)``."""

    def __init__(self, dims: WhisperDims, name: str = "whisper-ppg"):
        super().__init__()
        self.name = name
        self.dim = dims.n_audio_state
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.register_buffer("mel_filters", mel_filters(dims.n_mels), persistent=False)

    @property
    def context_frames(self) -> int:
        """Frames of context each side of a hand-over: 250 (5 s) for the 30-s window."""
        return self.dims.n_audio_ctx // 6

    @property
    def half_fade_frames(self) -> int:
        """Half the cross-fade at a hand-over: 12 frames (0.24 s) for the 30-s window."""
        return self.dims.n_audio_ctx // 120

    def bfloat16_parts(self) -> list[nn.Module]:
        return [self.encoder.blocks]

    def forward(self, wav16k: Tensor) -> Tensor:
        """``(1, N)`` float at 16 kHz -> ``(1, dim, N // 320)``."""
        audio = wav16k.reshape(-1).float()
        n_frames = audio.shape[0] // SAMPLES_PER_TOKEN
        n_ctx = self.dims.n_audio_ctx
        window_samples = n_ctx * SAMPLES_PER_TOKEN
        if audio.shape[0] <= window_samples:
            # the reference: pad to one full window, encode, keep N // 320 frames
            mel = log_mel_spectrogram(pad_or_trim(audio, window_samples), self.mel_filters.float())
            ppg = self._encode(mel)[:, :n_frames]
            return ppg.transpose(1, 2)
        # one Mel over everything, so all windows share the same level normalisation
        mel = log_mel_spectrogram(audio, self.mel_filters.float())
        ppg = mel.new_zeros(1, n_frames, self.dim)
        for win in plan_windows(n_frames, n_ctx, self.context_frames):
            chunk = mel[:, 2 * win.start : 2 * (win.start + n_ctx)]
            weight = win.weights(n_ctx, n_frames, self.half_fade_frames).to(mel.device)
            ppg[:, win.start : win.start + n_ctx] += weight[:, None] * self._encode(chunk)
        return ppg.transpose(1, 2)

    def _encode(self, mel: Tensor) -> Tensor:
        """Log-Mel ``(n_mels, 2T)`` (always float32) -> float32 ``(1, T, dim)`` in the model's dtype inside."""
        dtype = self.encoder.conv1.weight.dtype
        return self.encoder(mel[None].to(dtype)).float()


def _expected(spec: EncoderSpec) -> str:
    return f"the OpenAI Whisper checkpoint {spec.filename} ({spec.dim}-dim encoder) from {spec.source}"


def read_dims(raw: dict, path: Path, what: str) -> WhisperDims:
    """Validate the ``dims`` entry: all ten whisper sizes as positive integers."""
    names = [f.name for f in fields(WhisperDims)]
    if not all(isinstance(raw.get(n), int) and not isinstance(raw.get(n), bool) and raw[n] > 0 for n in names):
        raise WeightFileError(f"'{path}' is not {what}: its 'dims' are not all positive integers {names}")
    dims = WhisperDims(**{n: raw[n] for n in names})
    if dims.n_audio_state % dims.n_audio_head:
        raise WeightFileError(f"'{path}' is not {what}: its n_audio_state is not divisible by n_audio_head")
    return dims


def load_whisper_ppg(path: Path, spec: EncoderSpec) -> WhisperPPG:
    """Build the whisper encoder from an official checkpoint, on the CPU in float32."""
    what = _expected(spec)
    data = require_dict_keys(load_torch_file(path, what), ("dims", "model_state_dict"), path, what)
    dims = read_dims(data["dims"], path, what)
    if dims.n_audio_state != spec.dim:
        raise WeightFileError(
            f"'{path}' is not {what}: it has a {dims.n_audio_state}-dim whisper encoder but "
            f"{spec.name} needs {spec.dim}"
        )
    # Only the encoder is used: upcasting the decoder too would waste gigabytes.
    state = data["model_state_dict"]
    encoder_state = float_state({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    model = WhisperPPG(dims, name=spec.name)
    load_module_state(model.encoder, encoder_state, path, what)
    return model.eval()
