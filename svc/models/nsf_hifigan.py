"""NSF-HiFiGAN vocoder: harmonic-plus-noise source from F0, HiFi-GAN upsampler.

``NsfHifiGan`` is the ``dec`` of the so-vits-svc generator (``nsf-hifigan`` and, with
``snake=True``, ``nsf-snake-hifigan``).  It is also usable without speaker conditioning
(``gin_channels=0``: no ``cond`` layer), with 4.0/openvpi padding (``legacy_padding``) and with
another excitation source (``source``), e.g. for a mel vocoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..progress import report_work
from .conv2d_plan import Conv, ConvTranspose, can_pack, time_major
from .layers import get_padding, weight_normed
from .snake import SnakeAlias
from .winograd import WinogradConv, winograd_enabled

LRELU_SLOPE = 0.1
SOURCE_SAMPLING_RATE = 44100  # so-vits-svc never passes its sampling_rate to the vocoder
# Resblocks run over time tiles of about this many bytes per tensor (at least MIN_TILE samples): small
# enough to bound memory, large enough that the op count (each a thread barrier) stays low.  The
# chunks' temporaries come and go between long-lived blocks (kernels oneDNN compiles mid-piece), so
# the heap keeps holes of their size: a 60 s fp32 song peaked at 2.39-2.49 GB with 8 MB / 32768-sample
# tiles, 2.15 GB with these (1 MB / 4096: 1.95 GB, but the 10 s core 4 % slower); the warm 10 s core
# ran at the same speed (fp32 1.73 vs 1.76 s, bf16 0.520 vs 0.517 s, 2 threads, interleaved).
TILE_BYTES = 2 * 1024 * 1024
MIN_TILE = 16384
# In bf16 on CPUs, the resblocks run in fixed shapes (see _tiled): tiles of at most MAX_FIXED_TILE
# samples, then halving chunks down to MIN_CHUNK.  A 60 s song (bf16, 2 threads): synthesis 13.7 s
# with a kernel compiled per piece length, 4.3 s in fixed shapes; the warm 10 s core pays ~5 % for
# the extra calls (~40 us of overhead per convolution call).  Larger tiles cost memory in oneDNN's
# cache (60 s song peak: 1.69 / 1.85 / 2.02 / 2.11 GB at 32768 / 65536 / 131072 / 262144 samples),
# smaller ones more calls.
MIN_CHUNK = 1024
MAX_FIXED_TILE = 65536
# conv_post (bf16 on CPUs) runs over output tiles of exactly this many samples (the last one
# zero-padded), so its shape never changes: oneDNN compiled a new kernel for every piece length.
POST_TILE = 16384
# The excitation is computed over tiles of this many samples (a multiple of 16: see SineSource); 8192 and
# 16384 were 15 % and 8 % slower, one pass 12 % (10 s, 2 threads).
SOURCE_TILE = 32768
# float32 resblock convolutions on CPUs with at least this many channels and WINOGRAD_MIN_TAPS taps run
# as Winograd products (see winograd.py).  One convolution over a 2 MB tile, 2 threads (AMX Xeon):
# 256 channels 7 / 11 taps 1.42x / 1.58x faster than oneDNN's direct kernel, 128 channels 1.14x / 1.32x,
# 64 channels 0.83-1.08x, 3 taps 0.80-1.05x (the transforms' memory passes outweigh the saved products).
# Where the products do not pay on a CPU for a shape (timed once per process and shape, see winograd_enabled),
# that shape runs on oneDNN.
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_TAPS = 7


class SineSource(nn.Module):
    """so-vits-svc's per-sample harmonic source (``m_source``): f0 frames -> ``(B, 1, T*upp)``.

    Nine harmonics with random initial phases (the fundamental starts at 0), gated by
    voicing, plus Gaussian noise, merged by ``l_linear`` and tanh.  Random numbers are drawn
    in the reference's order: phases ``(B, 9)``, noise ``(B, L, 9)``, then an unused ``(B, L, 1)``
    draw that the reference also makes (kept so a caller continuing the generator stays aligned).
    """

    def __init__(self, sampling_rate: int = SOURCE_SAMPLING_RATE, harmonic_num: int = 8,
                 sine_amp: float = 0.1, noise_std: float = 0.003):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(self.dim, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``f0 (B, T)`` Hz -> excitation ``(B, 1, T*upp)``.

        On CPUs without autograd it runs over ``SOURCE_TILE``-sample tiles: the nine per-sample
        harmonics of a whole piece took ~8 tensors of ``36 * T*upp`` bytes at once (0.25 GB for 20 s)
        and ran out of cache.  The tiles give the same bits as one pass: both cumulative sums carry
        their float64 running total across tiles (torch's float32 ``cumsum`` accumulates in float64),
        the wrap test carries the last wrapped phase, and the noise is drawn in tiles of a multiple
        of 16 numbers, which torch's normal sampler fills exactly as one draw.
        """
        f0 = F.interpolate(f0[:, None], scale_factor=float(upp), mode="nearest")  # (B, 1, L)
        batch, length = f0.shape[0], f0.shape[2]
        # Harmonics-major (B, 9, n) tiles: the cumulative sums then run along contiguous rows.
        harmonics = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype)[:, None]
        phase0 = torch.rand(batch, self.dim, generator=generator, device=f0.device, dtype=f0.dtype)
        phase0[:, 0] = 0
        # One piece at a time only: with a batch, tiles would draw the noise in another order.
        tiled = f0.device.type == "cpu" and batch == 1 and not torch.is_grad_enabled()
        tile = SOURCE_TILE if tiled and length >= SOURCE_TILE + 16 else length
        excitation = torch.empty(batch, 1, length, device=f0.device, dtype=f0.dtype)
        state = _PhaseState(carry=tile < length)
        for start in range(0, length, tile):
            stop = length if length - start < tile + 16 else start + tile  # no tail of under 16 samples
            part = f0[:, :, start:stop]
            rad = _mod1(part * harmonics / self.sampling_rate)
            if start == 0:
                rad[:, :, 0] = rad[:, :, 0] + phase0
            sines = self._sines(rad, state) * self.sine_amp
            uv = (part > 0).to(f0.dtype)
            noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
            # Drawn (B, n, 9) as the reference draws it.
            noise = torch.randn((batch, stop - start, self.dim), generator=generator, device=f0.device,
                                dtype=f0.dtype).transpose(1, 2)
            merged = self.l_linear((sines * uv + noise_amp * noise).transpose(1, 2).contiguous())
            excitation[:, 0, start:stop] = torch.tanh(merged)[..., 0]
            if stop == length:
                break
        # the reference's unused draw
        torch.randn((batch, length, 1), generator=generator, device=f0.device, dtype=f0.dtype)
        return excitation

    @staticmethod
    def _sines(rad: torch.Tensor, state: _PhaseState) -> torch.Tensor:
        """``sin(2 pi phase)`` for per-sample phase increments ``rad (B, 9, n)`` continuing ``state``."""
        # Subtract 1 wherever the wrapped phase falls back, so the float32 cumsum stays small.
        wrapped = _mod1(state.cumsum("wrapped", rad))
        falls = torch.empty_like(rad)
        torch.lt(wrapped[..., 1:], wrapped[..., :-1], out=falls[..., 1:])
        if state.last_wrapped is None:  # the first sample of all has nothing before it
            falls[..., :1] = 0
        else:
            torch.lt(wrapped[..., :1], state.last_wrapped, out=falls[..., :1])
        state.last_wrapped = wrapped[..., -1:]
        return torch.sin(state.cumsum("phase", rad - falls) * 2 * np.pi)


def _mod1(x: torch.Tensor) -> torch.Tensor:
    """``x % 1`` (the reference's op), overwriting ``x``.  For ``x >= 0`` (phases of non-negative F0)
    ``frac`` gives the same bits and is ~18x faster than torch's CPU ``remainder``."""
    return x.frac_() if bool(x.min() >= 0) else x.remainder_(1)


class _PhaseState:
    """Running totals of ``SineSource``'s cumulative sums (along the last axis) across tiles.

    With ``carry`` (tiled), sums are taken in float64 and continue the previous tile's total, which
    is exactly what torch's CPU ``cumsum`` does in one pass over float32; without, a plain cumsum.
    """

    def __init__(self, carry: bool) -> None:
        self.carry = carry
        self.totals: dict[str, torch.Tensor] = {}
        self.last_wrapped: torch.Tensor | None = None

    def cumsum(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``cumsum(x, -1)`` continuing the sum called ``name``."""
        if not self.carry:
            return torch.cumsum(x, -1)
        wide = x.to(torch.float64, copy=True)  # a copy even of float64 input: its first element changes
        total = self.totals.get(name)
        if total is not None:  # the scan's first step, total + x[0], done before it
            wide[..., :1] += total
        sums = torch.cumsum(wide, -1)
        self.totals[name] = sums[..., -1:].clone()  # the caller may overwrite the sums (float64 input)
        return sums.to(x.dtype)


class ResBlock(nn.Module):
    """HiFi-GAN residual block: type "1" (``convs1``/``convs2`` pairs) or "2" (``convs``)."""

    def __init__(self, kind: str, channels: int, kernel_size: int, dilations: list[int], snake: bool):
        super().__init__()
        self.kind = kind

        def conv(dilation: int) -> nn.Module:
            return weight_normed(nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation,
                                           padding=get_padding(kernel_size, dilation)))

        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations[:3])
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations[:3])
            n_acts = 6
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations[:2])
            n_acts = 2
        self.activations = nn.ModuleList(
            SnakeAlias(channels) if snake else nn.LeakyReLU(LRELU_SLOPE) for _ in range(n_acts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
                xt = c1(self.activations[2 * i](x))
                x = c2(self.activations[2 * i + 1](xt)) + x
        else:
            for conv, act in zip(self.convs, self.activations, strict=True):
                x = conv(act(x)) + x
        return x


class NsfHifiGan(nn.Module):
    """Source-filter HiFi-GAN: ``(B, in, T)`` features + ``(B, T)`` f0 -> ``(B, 1, T*prod(rates))``."""

    def __init__(self, in_channels: int, upsample_rates: list[int], upsample_kernel_sizes: list[int],
                 upsample_initial_channel: int, resblock: str, resblock_kernel_sizes: list[int],
                 resblock_dilation_sizes: list[list[int]], gin_channels: int = 0, *, snake: bool = False,
                 legacy_padding: bool = False, source: nn.Module | None = None):
        super().__init__()
        self.upp = math.prod(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.snake = snake
        self.m_source = source if source is not None else SineSource()
        self.conv_pre = weight_normed(nn.Conv1d(in_channels, upsample_initial_channel, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        if snake:
            self.snakes = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            c_in, c_out = upsample_initial_channel // 2**i, upsample_initial_channel // 2 ** (i + 1)
            # 4.0 (and openvpi) pad (k-u)//2 and s//2; 4.1 rounds up.  Equal for even values.
            pad = (k - u) // 2 if legacy_padding else (k - u + 1) // 2
            self.ups.append(weight_normed(nn.ConvTranspose1d(c_in, c_out, k, u, padding=pad)))
            if i + 1 < len(upsample_rates):
                s = math.prod(upsample_rates[i + 1:])
                noise_pad = s // 2 if legacy_padding else (s + 1) // 2
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=s * 2, stride=s, padding=noise_pad))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
            if snake:
                self.snakes.append(SnakeAlias(c_in))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock(resblock, c_out, rk, list(rd), snake))
        self.conv_post = weight_normed(nn.Conv1d(c_out, 1, 7, 1, padding=3))
        if snake:
            self.snake_post = SnakeAlias(c_out)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)
        self.compute_dtype = torch.float32
        self.fast = True  # False: the plain module-by-module forward (for comparisons)
        # Weights arranged for _forward_fast, one plan per dtype (switching precision back and forth
        # does not re-pack), each rebuilt when the weights change.
        self._plans: dict[torch.dtype, _Plan] = {}

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``x (B, in, T)``, ``f0 (B, T)`` Hz, ``g (B, gin, 1|T)`` -> audio ``(B, 1, T*upp)`` in [-1, 1].

        The excitation is always computed in float32 (its phase needs the precision); the
        upsampler runs in ``self.compute_dtype`` (float32 unless ``set_precision`` chose less).
        """
        har_source = self.m_source(f0, self.upp, generator)
        if self.snake or not self.fast:
            return self._forward_modules(x, har_source, g)
        return self._forward_fast(x, har_source, g)

    def set_precision(self, dtype: torch.dtype) -> None:
        """Run the upsampler in ``dtype`` (float32, bfloat16 or float16); weights stay float32."""
        self.compute_dtype = dtype

    def _forward_modules(self, x: torch.Tensor, har_source: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """The plain module-by-module forward (snake vocoders, float32 only)."""
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, (up, noise_conv) in enumerate(zip(self.ups, self.noise_convs, strict=True)):
            x = self.snakes[i](x) if self.snake else F.leaky_relu(x, LRELU_SLOPE)
            x = up(x) + noise_conv(har_source)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.num_kernels
            report_work((i + 1) / len(self.ups))
        # The reference's final activation uses leaky_relu's default slope 0.01, not 0.1.
        x = self.snake_post(x) if self.snake else F.leaky_relu(x)
        return torch.tanh(self.conv_post(x))

    @torch.no_grad()
    def _forward_fast(self, x: torch.Tensor, har_source: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """The same computation as ``_forward_modules`` for leaky-ReLU vocoders, arranged for speed
        (not differentiable: training uses the module forward, ``fast = False``).

        Signals are ``(B, C, 1, T)`` channels-last tensors, so oneDNN convolves them without
        reordering every input and output; the first activation of a stage is shared by its
        resblocks; activations and residual sums happen in place; and the resblock average's
        ``/ num_kernels`` is folded into the next layer's weights (leaky ReLU is positively
        homogeneous).  Results equal the plain forward up to float rounding.
        """
        plan = self._get_plan(x.device)
        dtype = plan.dtype
        har = har_source.to(dtype)
        x = plan.pre(_as_2d(x.to(dtype)))
        if g is not None:
            x = x + _as_2d(self.cond(g).to(dtype))
        stages = len(plan.ups)
        for i, (up, noise) in enumerate(zip(plan.ups, plan.noise, strict=True)):
            # x is this function's own tensor from here on, so activations may overwrite it.
            x = noise.add_to(up(x, LRELU_SLOPE), har)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = _tiled(partial(_resblock_sum, blocks, plan.resblocks[i]), x, plan.halos[i],
                       lambda done, i=i: report_work((i + done) / stages), plan.fixed_shapes)
        x = plan.post(F.leaky_relu_(x))
        return torch.tanh(x)[:, :, 0].float()

    def _get_plan(self, device: torch.device) -> _Plan:
        dtype = getattr(self, "compute_dtype", torch.float32)
        key = (dtype, device, tuple((p.data_ptr(), p._version) for p in self.parameters()))
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(dtype)
        if plan is None or plan.key != key:
            plans[dtype] = None  # let the old plan go before building the new one
            plan = plans[dtype] = _Plan.build(self, dtype, key)
        return plan

def _as_2d(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T)`` -> ``(B, C, 1, T)`` channels-last (a copy only when the layout differs)."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def _resblock_sum(blocks: nn.ModuleList, weights: list, x: torch.Tensor) -> torch.Tensor:
    """The sum (not the mean) of a stage's resblocks applied to ``x``."""
    first_act = F.leaky_relu(x, LRELU_SLOPE)
    total = None
    for block, block_weights in zip(blocks, weights, strict=True):
        y = _resblock_fast(block, block_weights, x, first_act)
        total = y if total is None else total.add_(y)
    return total


def _tiled(fn, x: torch.Tensor, halo: int, on_tile: Callable[[float], None] | None = None,
           fixed_shapes: bool = False) -> torch.Tensor:
    """``fn(x)`` for a length-preserving ``fn`` that looks at most ``halo`` samples to each side, computed
    over time chunks (each with ``halo`` extra samples on both sides, then trimmed).

    The result equals ``fn(x)``: every kept sample sees the same inputs, and at the ends of ``x`` a
    chunk's zero padding is the signal's own.  Chunks keep the temporaries small (fast, and the peak
    memory no longer grows with the length of the piece).  Plain: whole tiles and the rest (a piece
    shorter than a tile: one call).  ``fixed_shapes``: only a few chunk shapes whatever the length,
    so that oneDNN reuses its compiled kernels from piece to piece (in bf16 a new length cost about
    1 s of AMX kernel compilation per piece, three times the synthesis itself): whole tiles, then
    halving sizes down to a granule ``g`` up to ``halo`` samples before the end, and the rest from a
    chunk of ``g`` or ``2g`` that ends at the end (computed first, from the untouched input).
    ``x`` is overwritten with the result (returned): a chunk's result is written once the next chunk,
    the last to read its inputs, is computed.  ``on_tile(fraction done)`` is called after each chunk
    (progress reports; it may raise to cancel).
    """
    on_tile = on_tile or (lambda done: None)
    length = x.shape[-1]
    tile = max(MIN_TILE, TILE_BYTES // (x.shape[1] * x.element_size()), 2 * halo)
    granule = max(MIN_CHUNK, 1 << (2 * halo - 1).bit_length())
    direct = length < 2 * granule if fixed_shapes else length <= tile + 2 * halo
    if direct or x.device.type != "cpu":  # GPUs prefer few large kernels
        out = fn(x)
        on_tile(1.0)
        return out
    if fixed_shapes:
        tile = min(tile, MAX_FIXED_TILE)
        tile = granule << ((tile // granule).bit_length() - 1)  # a power of two times the granule
        covered = (length - halo) // granule * granule  # chunks of the ladder cover [0, covered)
        # the tail chunk, g or 2g long, covers [covered, length) (at least halo, under g + halo)
        lo = max(0, length - (granule if length - covered <= granule else 2 * granule) - halo)
        tail = fn(x[..., lo:])[..., covered - lo:]
        sizes = _chunk_sizes(covered, tile, granule)
    else:
        covered, tail = length, None
        sizes = [tile] * (length // tile) + ([length % tile] if length % tile else [])
    pending = None  # (start, result) of the chunk not yet written back
    start = 0
    for size in sizes:
        stop = start + size
        lo = max(0, start - halo)
        result = fn(x[..., lo:stop + halo])[..., start - lo:stop - lo]
        if pending is not None:
            x[..., pending[0]:start] = pending[1]
        pending = (start, result)
        on_tile(stop / length)
        start = stop
    x[..., pending[0]:covered] = pending[1]
    if tail is not None:
        x[..., covered:] = tail
        on_tile(1.0)
    return x


def _chunk_sizes(total: int, tile: int, granule: int) -> list[int]:
    """``total`` (a multiple of ``granule``) as whole ``tile``s, then at most one of each of ``tile/2,
    tile/4, ... granule``."""
    sizes = [tile] * (total // tile)
    rest, size = total % tile, tile
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


def _receptive_halo(blocks: list[ResBlock]) -> int:
    """How far (in samples, to one side) the sum of ``blocks`` looks."""
    def reach(conv: nn.Module) -> int:
        return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2

    halos = []
    for block in blocks:
        convs = list(block.convs1) + list(block.convs2) if block.kind == "1" else list(block.convs)
        halos.append(sum(reach(c) for c in convs))
    return max(halos)


def _resblock_fast(block: ResBlock, weights: list, x: torch.Tensor, first_act: torch.Tensor) -> torch.Tensor:
    """``block(x)`` on 2-D channels-last tensors, with the block's first activation given.

    The block's input is shared with the stage's other blocks: its first residual sum goes to a new
    tensor, the later ones are added in place.
    """
    if block.kind == "1":
        for j, (c1, c2) in enumerate(weights):
            act = first_act if j == 0 else F.leaky_relu(x, LRELU_SLOPE)
            x = c2.plus(c1(act, LRELU_SLOPE), x) if j == 0 else c2.add_to(x, c1(act, LRELU_SLOPE))
    else:
        for j, conv in enumerate(weights):
            act = first_act if j == 0 else F.leaky_relu(x, LRELU_SLOPE)
            x = conv.plus(act, x) if j == 0 else conv.add_to(x, act)
    return x


class FrameConv:
    """A one-input-channel strided convolution (the excitation's ``noise_convs``) as one matrix product.

    Output frame ``t`` reads the ``k`` padded input samples from ``t * stride``: those rows (a strided
    view of the input, copied once by the product) times the ``(k, C)`` weight give the ``(T, C)``
    result, which is the memory of a ``(B, C, 1, T)`` channels-last signal, so it is added into the
    stage in place.  As oneDNN convolutions they compiled a kernel per piece length (0.7-1.1 s each
    on an AMX Xeon), or ran over fixed zero-padded tiles: 15.3 ms in float32 and 23.7 ms in bf16 for
    the five of the 10 s core (2 threads); as products 5.4 and 4.0 ms (a new length costs under 1 ms).
    The bias is not added here: ``_Plan`` folds it into the transposed convolution's bias.
    """

    def __init__(self, weight: torch.Tensor, stride: int, padding: int):
        self.weight = weight.reshape(weight.shape[0], -1).t().contiguous()  # (k, C)
        self.kernel, self.stride, self.padding = self.weight.shape[0], stride, padding

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out += conv(x)`` (without bias) in place for ``x (B, 1, L)`` and channels-last ``out (B, C, 1, T)``,
        all in the weight's dtype."""
        batch, frames, k, s = out.shape[0], out.shape[-1], self.kernel, self.stride
        x = x.reshape(batch, -1)
        x = F.pad(x, (self.padding, (frames - 1) * s + k - self.padding - x.shape[-1]))
        rows = x.unfold(-1, k, s)  # (B, T, k)
        signal = out[:, :, 0].transpose(1, 2)  # (B, T, C), a view of out's memory
        for b in range(batch):
            signal[b].addmm_(rows[b], self.weight)
        return out


class FixedShapeConv:
    """A convolution (``conv`` without padding, plus the ``padding`` it stands for) computed over output
    tiles of ``POST_TILE`` samples on CPUs, so every call has the same shape whatever the length.

    Each output sample sees the same inputs (the zeros of the padding included); with AVX-512/AMX
    kernels oneDNN sums them in the same order (bit-for-bit one call's result), with AVX2 kernels the
    blocking can differ by shape (4e-7 of the peak; checked in tests/test_models.py).
    Used for ``conv_post`` in bf16 on CPUs, where one call over a piece cost 0.24 s of AMX kernel
    compilation per new length (10 s piece).
    """

    def __init__(self, conv: Conv, padding: int, kernel: int, stride: int):
        self.conv, self.padding, self.kernel, self.stride = conv, padding, kernel, stride

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)`` with the padding, for a stride-1 convolution (output as long as ``x``)."""
        out = torch.empty((x.shape[0], self.conv.weight.shape[0], 1, x.shape[-1]), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last).zero_()
        return self.add_to(out, x)

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out += conv(x)`` in place for ``out`` as long as the padded convolution's output."""
        n, tile, s = out.shape[-1], POST_TILE, self.stride
        if x.device.type != "cpu":  # GPUs prefer one large kernel
            return self.conv.add_to(out, F.pad(x, (self.padding, self.padding)))
        tiles = -(-n // tile)
        span = (tile - 1) * s + self.kernel  # the input one tile of outputs reads
        x = F.pad(x, (self.padding, (tiles - 1) * tile * s + span - x.shape[-1] - self.padding))
        for t in range(tiles):
            y = self.conv(x[..., t * tile * s : t * tile * s + span])
            a, b = t * tile, min(n, (t + 1) * tile)
            out[..., a:b].add_(y[..., : b - a])
        return out


class GemmConvTranspose:
    """``conv_transpose(leaky_relu(x))`` as ``ceil(k / u)`` matrix products on CPUs (the upsamplers).

    With stride ``u``, output sample ``t u + r`` (before the padding is cropped) is
    ``sum_j x[t - j] W[:, :, r + j u]``: for all ``u`` phases at once, ``x[t - j]`` times the
    ``(in, u * out)`` matrix ``W_j`` of taps ``j u .. j u + u - 1``.  The products' ``(T + J - 1, u * out)``
    rows are the full output's ``(u (T + J - 1), out)`` channels-last samples, so the cropped output is
    a view of them, and the shifted inputs are views of one zero-bordered copy of the activated input.
    No per-shape kernels (oneDNN compiled a transposed convolution for every piece length) and no
    tiles.  One 10 s core's five, timed alone (2 threads, AMX Xeon): fp32 69 -> 50 ms, bf16 27 -> 16 ms
    (inside the fp32 core no net change, in an interleaved A/B).
    On other devices: ``leaky_relu`` then the convolution.
    """

    def __init__(self, conv: ConvTranspose | None, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                 padding: int):
        """``weight (in, out, k)`` and ``bias`` in the compute dtype; ``conv``, the same layer for other
        devices than the CPU."""
        weight = weight.detach()
        self.conv, self.stride, self.padding = conv, stride, padding
        in_ch, self.out_channels, self.kernel = weight.shape
        self.parts = -(-self.kernel // stride)
        if self.kernel - padding < stride or padding < 0:
            raise ValueError(f"transposed convolution padding {padding} unsupported for {self.kernel} taps")
        taps = weight.new_zeros(in_ch, self.out_channels, self.parts * stride)
        taps[..., :self.kernel] = weight
        # W_j[c, r * out + o] = weight[c, o, r + j u]
        self.weights = [taps[..., j * stride:(j + 1) * stride].transpose(1, 2).reshape(in_ch, -1).contiguous()
                        for j in range(self.parts)]
        self.bias = (weight.new_zeros(self.out_channels) if bias is None else bias.detach()).repeat(stride)[None]

    def __call__(self, x: torch.Tensor, leaky_slope: float) -> torch.Tensor:
        """``x (B, C, 1, Q)`` channels-last -> ``(B, out, 1, T)`` channels-last; ``x`` may be overwritten."""
        if self.conv is not None:
            return self.conv(F.leaky_relu_(x, leaky_slope))
        if x.shape[0] == 1:
            return self._one(x, leaky_slope)
        items = [self._one(x[b:b + 1], leaky_slope) for b in range(x.shape[0])]
        return torch.cat(items).contiguous(memory_format=torch.channels_last)

    def _one(self, x: torch.Tensor, leaky_slope: float) -> torch.Tensor:
        n, j, u = x.shape[-1], self.parts - 1, self.stride
        rows = n + j
        padded = x.new_empty(n + 2 * j, x.shape[1])
        padded[:j] = 0
        padded[n + j:] = 0
        torch.ops.aten.leaky_relu.out(time_major(x), leaky_slope, out=padded[j:n + j])
        full = x.new_empty(rows, u * self.out_channels)
        # row t: x[t] W_0 + x[t - 1] W_1 + ...; x[t] is padded row t + j
        torch.addmm(self.bias, padded[j:j + rows], self.weights[0], out=full)
        for i in range(1, self.parts):
            full.addmm_(padded[j - i:j - i + rows], self.weights[i])
        length = (n - 1) * u - 2 * self.padding + self.kernel
        samples = full.view(rows * u, self.out_channels)[self.padding:self.padding + length]
        return samples.t()[None, :, None, :]


@dataclass
class _Plan:
    """The decoder's layers as ``(B, C, 1, T)`` convolutions in one dtype (weights pre-packed for oneDNN
    on CPUs)."""

    key: tuple
    dtype: torch.dtype
    pre: Conv
    ups: list
    noise: list
    resblocks: list
    post: Conv | FixedShapeConv
    halos: list
    fixed_shapes: bool  # every convolution in a few shapes whatever the length (see _tiled)

    @classmethod
    def build(cls, dec: NsfHifiGan, dtype: torch.dtype, key: tuple) -> _Plan:
        on_cpu = torch.device(key[1]).type == "cpu"

        def summed_bias(conv: nn.Module, extra_bias: torch.Tensor | None) -> torch.Tensor | None:
            bias = conv.bias
            if extra_bias is not None:
                bias = extra_bias if bias is None else bias + extra_bias
            return None if bias is None else bias.to(dtype)

        def wb(conv: nn.Module, scale: float = 1.0, padding: int | None = None,
               extra_bias: torch.Tensor | None = None) -> Conv | ConvTranspose:
            pack = can_pack(dtype, key[1])
            weight = (conv.weight if scale == 1.0 else conv.weight * scale).unsqueeze(2).to(dtype)
            bias = summed_bias(conv, extra_bias)
            padding = conv.padding[0] if padding is None else padding
            if isinstance(conv, nn.ConvTranspose1d):
                return ConvTranspose(weight, bias, conv.stride[0], padding, pack=pack)
            return Conv(weight, bias, conv.stride[0], padding, conv.dilation[0], pack=pack)

        def resblock_conv(conv: nn.Conv1d) -> Conv | WinogradConv:
            if (dtype == torch.float32 and on_cpu and conv.in_channels >= WINOGRAD_MIN_CHANNELS
                    and conv.kernel_size[0] >= WINOGRAD_MIN_TAPS
                    and winograd_enabled(conv.in_channels, conv.kernel_size[0])):
                return WinogradConv(conv.weight.unsqueeze(2), conv.bias, conv.dilation[0], conv.padding[0])
            return wb(conv)

        # Every stage after the first (and conv_post) receives the resblock sum, not its mean.
        scale = 1.0 / dec.num_kernels
        # Each stage adds its noise convolution (FrameConv, no bias) to its upsampler: one bias for both.
        ups = []
        for i, (up, noise) in enumerate(zip(dec.ups, dec.noise_convs, strict=True)):
            up_scale = 1.0 if i == 0 else scale
            conv = None if on_cpu else wb(up, up_scale, extra_bias=noise.bias)
            ups.append(GemmConvTranspose(conv, (up.weight * up_scale).to(dtype), summed_bias(up, noise.bias),
                                         up.stride[0], up.padding[0]))
        resblocks, halos = [], []
        for i in range(len(dec.ups)):
            halos.append(_receptive_halo(list(dec.resblocks[i * dec.num_kernels:(i + 1) * dec.num_kernels])))
            stage = []
            for block in dec.resblocks[i * dec.num_kernels:(i + 1) * dec.num_kernels]:
                if block.kind == "1":
                    stage.append([(resblock_conv(c1), resblock_conv(c2))
                                  for c1, c2 in zip(block.convs1, block.convs2, strict=True)])
                else:
                    stage.append([resblock_conv(c) for c in block.convs])
            resblocks.append(stage)
        # The excitation's convolutions run in the stage's dtype: in bf16 (10 s core) the float32 product
        # and its conversion cost 15.8 ms, the bf16 product 4.0 ms, at the same SNR from fp32 (32.6 dB).
        noise = [FrameConv(n.weight.to(dtype), n.stride[0], n.padding[0]) for n in dec.noise_convs]
        # In bf16 on CPUs, oneDNN's AMX kernels cost ~1 s of compilation per new piece length (conv_post
        # alone 0.24 s for a 10 s piece): the resblocks and conv_post run in fixed shapes.  float32
        # keeps the plain tiling: its kernels compile in 0.1-0.2 s per piece, less than the chunks cost.
        fixed = dtype == torch.bfloat16 and on_cpu
        post = dec.conv_post
        post = (FixedShapeConv(wb(post, scale, padding=0), post.padding[0], post.kernel_size[0], post.stride[0])
                if fixed else wb(post, scale))
        return cls(key=key, dtype=dtype, pre=wb(dec.conv_pre), ups=ups, noise=noise, resblocks=resblocks,
                   post=post, halos=halos, fixed_shapes=fixed)
