"""The HuBERT / wav2vec 2.0 network shared by the ContentVec, HuBERT-Soft, Chinese HuBERT and
DPHuBERT encoders: a strided conv feature extractor, a convolutional position embedding and a
stack of Transformer layers.  Parameter names follow fairseq; loaders map other layouts onto it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import AudioError
from ..weights import weight_norm_weight
from .base import param_dtype

# fairseq's default conv_feature_layers: 400-sample receptive field, stride 320.
DEFAULT_CONV_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"


@dataclass(frozen=True)
class HubertArch:
    """Hyper-parameters of one network.  Per-layer tuples allow pruned (DPHuBERT) models.

    ``extractor_mode``: "default" (group norm after the first conv only) or "layer_norm" (after
    every conv).  ``num_heads[i] == 0`` / ``ffn_dims[i] == 0`` mean layer ``i`` has no
    attention / feed-forward block.  ``norm_before_layers``: apply ``encoder.layer_norm``
    before the layers (fairseq post-LN models), else after the last one.
    """

    conv_layers: tuple[tuple[int, int, int], ...]
    conv_bias: bool
    extractor_mode: str
    embed_dim: int
    num_heads: tuple[int, ...]
    head_dim: int
    ffn_dims: tuple[int, ...]
    layer_norm_first: bool
    norm_before_layers: bool
    conv_pos: int = 128
    conv_pos_groups: int = 16
    final_dim: int = 0
    activation: str = "gelu"
    feature_scale: bool = False
    normalize_waveform: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.num_heads)

    @property
    def receptive_field(self) -> int:
        """Fewest input samples that give one output frame (400 for the standard stack)."""
        return receptive_field(self.conv_layers)


def receptive_field(conv_layers: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...]) -> int:
    """Fewest input samples that give one output frame of the conv stack ``conv_layers``."""
    size = 1
    for _, kernel, stride in reversed(conv_layers):
        size = (size - 1) * stride + kernel
    return size


def parse_conv_layers(text: str) -> list[tuple[int, int, int]]:
    """Evaluate fairseq's ``conv_feature_layers`` string ("[(512,10,5)] + [(512,3,2)] * 4 ...").

    Only integer tuples, lists, ``+`` and ``*`` are allowed: it is data, never code.
    """
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:60]}")

    layers = value(ast.parse(text, mode="eval").body)
    if not (isinstance(layers, list) and layers and all(
            isinstance(t, tuple) and len(t) == 3 and all(type(i) is int for i in t) for t in layers)):
        raise ValueError("not a list of (channels, kernel, stride) tuples")
    return layers


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


EXTRACTOR_MODES = ("default", "layer_norm")
# Output frames (20 ms each for the standard stack) per tile of the conv feature extractor.
EXTRACTOR_TILE = 128


def activation_fn(name: str):
    """The activation function fairseq calls ``name``."""
    return ACTIVATIONS[name]


class ConvBlock(nn.Module):
    """Conv1d -> optional norm (group norm, or layer norm over channels) -> GELU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bias: bool, norm: str | None):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.norm = nn.GroupNorm(out_ch, out_ch)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_ch)

    def forward(self, x: torch.Tensor, group_affine: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``(B, C_in, T)`` -> ``(B, C_out, T')``.

        ``group_affine``: the group norm as ``x * scale + shift`` (per channel, ``(B, C, 1)``) from
        statistics of the whole clip, when ``x`` is only a part of it (see ``FeatureExtractor``).
        """
        x = self._conv(x)
        if group_affine is not None:
            x = torch.addcmul(group_affine[1], x, group_affine[0])
        elif self.norm_kind == "group":
            # Statistics over the whole clip: keep them in float32 under half precision.
            x = F.group_norm(x.float(), x.shape[1], self.norm.weight.float(), self.norm.bias.float(),
                             self.norm.eps).type_as(x)
        elif self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution in the weight's dtype; in bfloat16 on a CPU over a channels-last view.

        oneDNN's bfloat16 kernels work channels-last: on the plain ``(B, C, T)`` layout every input
        and output went through a reorder, slower than the float32 convolution itself.  The result
        is a ``(B, C, T)`` view of channels-last memory, which the next block takes without a copy.
        """
        weight = self.conv.weight
        x = x.to(weight.dtype)
        if weight.dtype != torch.bfloat16 or x.device.type != "cpu":
            return self.conv(x)
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight.unsqueeze(2), self.conv.bias, (1, self.conv.stride[0])).squeeze(2)

    def group_affine(self, x: torch.Tensor, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The group norm of ``conv(x)`` (one group per channel) as per-channel ``(scale, shift)``,
        from float64 sums over output tiles of ``tile`` frames (the whole output is never held)."""
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        frames = (x.shape[-1] - kernel) // stride + 1
        total = squares = 0
        for start in range(0, frames, tile):
            stop = min(frames, start + tile)
            y = self.conv(x[..., start * stride : (stop - 1) * stride + kernel]).double()
            total = total + y.sum(-1, keepdim=True)
            squares = squares + y.square().sum(-1, keepdim=True)
        mean = total / frames
        rstd = (squares / frames - mean.square()).clamp_min(0).add(self.norm.eps).rsqrt()
        scale = rstd * self.norm.weight.double()[:, None]
        shift = self.norm.bias.double()[:, None] - mean * scale
        return scale.to(x.dtype), shift.to(x.dtype)


class _FlashBf16:
    """Whether torch's CPU flash attention has failed in bfloat16 in this process (see below)."""

    failed = False


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, on the math kernel where the flash kernel fails.

    torch 2.9's CPU flash attention in bfloat16 raises "pack_vnni2 is only supported when avx512 is
    supported" when ATen's kernels are held below AVX-512 (``ATEN_CPU_CAPABILITY=avx2|default``) on
    an AMX CPU, for some shapes only.  After the first such failure bfloat16 attention on the CPU
    takes the math kernel (8x slower there, same sums to 55 dB), which works everywhere.
    """
    cpu_bf16 = q.dtype == torch.bfloat16 and q.device.type == "cpu"
    if not (cpu_bf16 and _FlashBf16.failed):
        try:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        except RuntimeError:
            if not cpu_bf16:
                raise
            _FlashBf16.failed = True
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (``num_heads * head_dim`` wide)."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        width = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, width)
        self.k_proj = nn.Linear(embed_dim, width)
        self.v_proj = nn.Linear(embed_dim, width)
        self.out_proj = nn.Linear(width, embed_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """``(B, T, D)`` -> ``(B, T, D)``; ``bias`` is unused (see ``TransformerLayer``)."""
        return self.attend(x, None), None

    def attend(self, x: torch.Tensor, score_bias: torch.Tensor | None) -> torch.Tensor:
        """Attention of ``x`` ``(B, T, D)`` with ``score_bias`` (``(B, H, T, T)`` or None) added
        to the scaled scores before the softmax."""
        b, t, _ = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        y = scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)),
                                         score_bias)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class TransformerLayer(nn.Module):
    """One encoder layer, post-LN (HuBERT Base) or pre-LN (``layer_norm_first``, Large).

    ``attention`` maps ``(x, bias)`` to ``(output, bias)``, so a layer can hand a position bias
    on to the next (WavLM); None (a pruned layer) skips attention, ``ffn_dim == 0`` the FFN.
    """

    def __init__(self, embed_dim: int, attention: nn.Module | None, ffn_dim: int,
                 layer_norm_first: bool, activation: str):
        super().__init__()
        self.self_attn = attention
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_dim) if ffn_dim > 0 else None
        self.fc2 = nn.Linear(ffn_dim, embed_dim) if ffn_dim > 0 else None
        self.final_layer_norm = nn.LayerNorm(embed_dim)
        self.layer_norm_first = layer_norm_first
        self.activation = activation

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(activation_fn(self.activation)(self.fc1(x)))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, D)`` and a position bias (or None) -> ``(B, T, D)`` and the bias to pass on."""
        if self.layer_norm_first:
            if self.self_attn is not None:
                attn, bias = self.self_attn(self.self_attn_layer_norm(x), bias)
                x = x + attn
            if self.fc1 is not None:
                x = x + self._ffn(self.final_layer_norm(x))
            return x, bias
        if self.self_attn is not None:
            attn, bias = self.self_attn(x, bias)
            x = x + attn
        x = self.self_attn_layer_norm(x)
        if self.fc1 is not None:
            x = x + self._ffn(x)
        return self.final_layer_norm(x), bias


class PositionalConv(nn.Conv1d):
    """wav2vec 2.0's convolutional position embedding: grouped "same" conv, then GELU.

    The original's weight-normed conv is stored here already multiplied out (``fold_pos_conv``).
    """

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__(channels, channels, kernel, padding=kernel // 2, groups=groups)
        self.trim = 1 if kernel % 2 == 0 else 0  # fairseq's SamePad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, C, T)``."""
        x = super().forward(x)
        return F.gelu(x[..., : x.shape[-1] - self.trim])


class TransformerEncoder(nn.Module):
    """Convolutional position embedding, then the layers, with one extra layer norm.

    ``norm_before_layers``: apply ``layer_norm`` before the layers (fairseq post-LN models),
    else after the last one.
    """

    def __init__(self, embed_dim: int, conv_pos: int, conv_pos_groups: int,
                 layers: list[TransformerLayer], norm_before_layers: bool):
        super().__init__()
        self.pos_conv = PositionalConv(embed_dim, conv_pos, conv_pos_groups)
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.norm_before_layers = norm_before_layers
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, num_layers: int | None = None) -> torch.Tensor:
        """``(B, T, D)`` -> output of layer ``num_layers`` (all layers if None), ``(B, T, D)``.

        Stopping early skips a trailing layer norm, as fairseq's ``output_layer`` does.
        """
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if self.norm_before_layers:
            x = self.layer_norm(x)
        stop = len(self.layers) if num_layers is None else min(num_layers, len(self.layers))
        bias, dtype = None, x.dtype
        x = x.to(param_dtype(self.layers, dtype))  # the layers may run in bfloat16 (ContentEncoder.use_bfloat16)
        for layer in self.layers[:stop]:
            x, bias = layer(x, bias)
        x = x.to(dtype)
        if not self.norm_before_layers and stop == len(self.layers):
            x = self.layer_norm(x)
        return x


class FeatureExtractor(nn.Module):
    """The strided conv stack: ``(B, N)`` waveform -> ``(B, C, T)`` features.

    ``mode`` "default": group norm after the first conv only; "layer_norm": after every conv.
    """

    def __init__(self, conv_layers: list[tuple[int, int, int]] | tuple[tuple[int, int, int], ...],
                 conv_bias: bool, mode: str):
        super().__init__()
        if mode not in EXTRACTOR_MODES:
            raise ValueError(f"unknown extractor_mode {mode!r}")
        blocks, in_ch = [], 1
        for i, (out_ch, kernel, stride) in enumerate(conv_layers):
            if mode == "layer_norm":
                norm = "layer"
            else:
                norm = "group" if i == 0 else None
            blocks.append(ConvBlock(in_ch, out_ch, kernel, stride, conv_bias, norm))
            in_ch = out_ch
        self.conv_layers = nn.ModuleList(blocks)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav[:, None, :]
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            return self._tiled(x)
        for block in self.conv_layers:
            x = block(x)
        return x.to(wav.dtype)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        """The forward over tiles of ``EXTRACTOR_TILE`` output frames, each from exactly the input
        samples it depends on (the convolutions have no padding).

        The first layer's output of a whole piece (512 channels at 3.2 kHz: 0.13 GB for 20 s, held
        two or three times over by the norm, the GELU and oneDNN's reorders) was the encoder's peak
        memory; tiles keep it to a few MB.  The first layer's group norm needs statistics of the
        whole piece: they come from a pass of that (cheap, one input channel) convolution alone.
        """
        layers = [(b.conv.kernel_size[0], b.conv.stride[0]) for b in self.conv_layers]
        frames = x.shape[-1]
        for kernel, stride in layers:
            frames = (frames - kernel) // stride + 1
        first = self.conv_layers[0]
        affine = first.group_affine(x, EXTRACTOR_TILE * 16) if first.norm_kind == "group" else None
        out = None
        for start in range(0, frames, EXTRACTOR_TILE):
            stop = min(frames, start + EXTRACTOR_TILE)
            lo, hi = start, stop  # output frames of a layer -> the input samples they read
            for kernel, stride in reversed(layers):
                lo, hi = lo * stride, (hi - 1) * stride + kernel
            y = x[..., lo:hi]
            for i, block in enumerate(self.conv_layers):
                y = block(y, affine if i == 0 else None)
            if out is None:  # in the input's dtype, whatever the layers ran in
                out = x.new_empty(y.shape[0], y.shape[1], frames)
            out[..., start:stop] = y
        return out


class HubertNet(nn.Module):
    """The whole network; ``forward`` gives the hidden states of a chosen layer."""

    def __init__(self, arch: HubertArch):
        super().__init__()
        self.arch = arch
        channels = arch.conv_layers[-1][0]
        self.feature_extractor = FeatureExtractor(arch.conv_layers, arch.conv_bias, arch.extractor_mode)
        # DPHuBERT multiplies the conv features by a learnt per-channel scale.
        self.feature_scale = nn.Parameter(torch.ones(channels)) if arch.feature_scale else None
        self.layer_norm = nn.LayerNorm(channels)
        self.post_extract_proj = nn.Linear(channels, arch.embed_dim)
        layers = [
            TransformerLayer(arch.embed_dim, SelfAttention(arch.embed_dim, heads, arch.head_dim) if heads else None,
                             ffn, arch.layer_norm_first, arch.activation)
            for heads, ffn in zip(arch.num_heads, arch.ffn_dims, strict=True)
        ]
        self.encoder = TransformerEncoder(arch.embed_dim, arch.conv_pos, arch.conv_pos_groups, layers,
                                          arch.norm_before_layers)
        self.final_proj = nn.Linear(arch.embed_dim, arch.final_dim) if arch.final_dim > 0 else None

    def bfloat16_parts(self) -> list[nn.Module]:
        """The conv layers after the first and the transformer layers (``ContentEncoder.bfloat16_parts``)."""
        return [self.feature_extractor.conv_layers[1:], self.encoder.layers]

    def forward(self, wav: torch.Tensor, num_layers: int | None = None) -> torch.Tensor:
        """``(B, N)`` 16 kHz audio -> ``(B, T, D)`` hidden states after layer ``num_layers``.

        ``T = (N - 400) // 320 + 1`` for the standard conv stack.
        """
        if wav.shape[-1] < self.arch.receptive_field:
            raise AudioError(
                f"the audio is too short for the speech encoder: {wav.shape[-1]} samples at 16 kHz, "
                f"it needs at least {self.arch.receptive_field}"
            )
        if self.arch.normalize_waveform:
            wav = F.layer_norm(wav, wav.shape[-1:])
        x = self.feature_extractor(wav).transpose(1, 2)
        if self.feature_scale is not None:
            x = x * self.feature_scale
        x = self.post_extract_proj(self.layer_norm(x))
        return self.encoder(x, num_layers)


def fold_pos_conv(state: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    """Replace the weight-normed pos_conv entries under prefix ``old`` by a plain conv under ``new``."""
    state = dict(state)
    g = state.pop(old + "weight_g", None)
    v = state.pop(old + "weight_v", None)
    # torch.nn.utils.parametrizations.weight_norm stores g and v under these names.
    g = state.pop(old + "parametrizations.weight.original0", g)
    v = state.pop(old + "parametrizations.weight.original1", v)
    if g is not None and v is not None:
        state[new + "weight"] = weight_norm_weight(g, v, dim=2)
    if old + "weight" in state:
        state[new + "weight"] = state.pop(old + "weight")
    if old + "bias" in state:
        state[new + "bias"] = state.pop(old + "bias")
    return state


def map_state_keys(state: Mapping[str, torch.Tensor], renames: Iterable[tuple[str, str]], pos_conv: str,
                   drop: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Another layout's parameter names -> ``HubertNet`` names.

    Each key goes through every ``(regex, replacement)`` of ``renames`` in order; keys in ``drop``
    (pre-training only) are left out; the weight-normed position conv under prefix ``pos_conv``
    becomes the plain ``encoder.pos_conv``.
    """
    renames, drop = list(renames), set(drop)
    out = {}
    for key, value in state.items():
        if key in drop:
            continue
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return fold_pos_conv(out, pos_conv, "encoder.pos_conv.")
