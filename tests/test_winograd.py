"""Winograd F(4, 4) convolutions (svc/models/winograd.py) against direct convolution in float64.

Bounds are measured float32 noise with a margin: over the cases below (and 128/256-channel ones),
WinogradConv's largest error was 3.0e-6 of the output's peak (oneDNN's direct float32 kernel: 1.6e-6)
under the AVX-512/AMX, ``ATEN_CPU_CAPABILITY=avx2`` / ``default``, ``ONEDNN_MAX_CPU_ISA=AVX2`` one-thread
and ``MKL_ENABLE_INSTRUCTIONS=AVX2`` paths; the bound is 1e-5, and a one-sample shift or a wrong
dilation is 1e4 times over it.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from svc.models import nsf_hifigan
from svc.models.winograd import TAPS, WinogradConv, transforms

BOUND = 1e-5  # of the output's peak


def test_transforms_are_exact():
    """``A^T ((G w) * (B^T x))`` is the correlation of ``x`` with ``w``, in exact arithmetic."""
    at, g, bt = transforms()
    rng = random.Random(0)
    for _ in range(5):
        w = [Fraction(rng.randint(-9, 9), rng.randint(1, 9)) for _ in range(TAPS)]
        x = [Fraction(rng.randint(-9, 9), rng.randint(1, 9)) for _ in range(2 * TAPS - 1)]
        gw = [sum(row[k] * w[k] for k in range(TAPS)) for row in g]
        bx = [sum(row[j] * x[j] for j in range(len(x))) for row in bt]
        y = [sum(at[i][p] * gw[p] * bx[p] for p in range(len(gw))) for i in range(TAPS)]
        assert y == [sum(w[k] * x[i + k] for k in range(TAPS)) for i in range(TAPS)]


def _direct(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    padding = (weight.shape[-1] - 1) // 2 * dilation
    return F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), 1, (0, padding),
                    (1, dilation))


def _signal(channels: int, length: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(1, channels, 1, length, generator=gen).contiguous(memory_format=torch.channels_last)


CASES = list(itertools.product([3, 5, 7, 11], [1, 3, 5], [1, 2, 7, 60, 61, 233, 1000]))


@pytest.mark.parametrize("kernel,dilation,length", CASES)
def test_winograd_conv_equals_direct_convolution(kernel, dilation, length):
    """Every length (shorter than one block, ragged last block, whole blocks), every use (plain, with
    the leaky ReLU, added in place, added to a copy), with and without bias."""
    gen = torch.Generator().manual_seed(kernel * 1000 + dilation * 100 + length)
    weight = torch.randn(12, 8, 1, kernel, generator=gen) / (8 * kernel) ** 0.5
    bias = torch.randn(12, generator=gen) * 0.1 if length % 2 else None
    conv = WinogradConv(weight, bias, dilation, (kernel - 1) // 2 * dilation)
    x, other = _signal(8, length, gen), _signal(12, length, gen)
    expected = _direct(x, weight, bias, dilation)
    bound = BOUND * float(expected.abs().max())

    def err(result: torch.Tensor, want: torch.Tensor) -> float:
        assert result.shape == want.shape and result.dtype == torch.float32
        assert result.is_contiguous(memory_format=torch.channels_last)
        return float((result.double() - want).abs().max())

    assert err(conv(x), expected) <= bound
    assert err(conv(x, 0.1), F.leaky_relu(expected, 0.1)) <= bound
    kept = other.clone()
    assert err(conv.plus(x, other), expected + other.double()) <= bound
    assert torch.equal(other, kept)
    assert err(conv.add_to(other, x), expected + kept.double()) <= bound
    if length > 4 * dilation * TAPS:  # the comparison sees a one-sample shift and a wrong dilation
        assert float((expected.roll(1, -1) - expected).abs().max()) > 1e4 * bound
        wrong = _direct(x, weight, bias, dilation + 1)
        assert float((wrong - expected).abs().max()) > 1e4 * bound


def test_winograd_conv_of_a_tile_view():
    """A tile cut from a longer channels-last signal (a view with a storage offset), as ``_tiled`` passes."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 6, 1, 11, generator=gen) / 8
    conv = WinogradConv(weight, None, 5, 25)
    long = _signal(6, 900, gen)
    tile = long[..., 137:611]
    expected = _direct(tile, weight, None, 5)
    assert float((conv(tile).double() - expected).abs().max()) <= BOUND * float(expected.abs().max())


def test_winograd_conv_rejects_other_padding():
    with pytest.raises(ValueError, match="same"):
        WinogradConv(torch.zeros(2, 2, 1, 7), None, 1, 2)
    with pytest.raises(ValueError, match="same"):
        WinogradConv(torch.zeros(2, 2, 1, 4), None, 1, 1)


@pytest.mark.parametrize("kind", ["1", "2"])
def test_vocoder_uses_winograd_for_wide_long_kernels_and_matches_its_modules(monkeypatch, kind):
    """In float32 on the CPU the plan's resblock convolutions with >= WINOGRAD_MIN_CHANNELS channels and
    >= 7 taps are WinogradConv, and the fast forward still equals the plain module forward."""
    from svc.models.nsf_hifigan import NsfHifiGan

    monkeypatch.setattr(nsf_hifigan, "WINOGRAD_MIN_CHANNELS", 16)
    monkeypatch.setenv("SVC_WINOGRAD", "1")  # whatever this CPU's timing says
    torch.manual_seed(0)
    dec = NsfHifiGan(in_channels=16, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=32,
                     resblock=kind, resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                     gin_channels=8).eval()
    x, g = torch.randn(1, 16, 40), torch.randn(1, 8, 1)
    plan = dec._get_plan(torch.device("cpu"))
    first_convs = [layer[0] if isinstance(layer, tuple) else layer
                   for stage in plan.resblocks for block in stage for layer in block]
    kinds = {(type(c).__name__, c.out_channels if isinstance(c, WinogradConv) else None) for c in first_convs}
    assert kinds == {("WinogradConv", 16), ("Conv", None)}
    with torch.no_grad():
        har = torch.randn(1, 1, 40 * 8)
        fast = dec._forward_fast(x, har, g)
        plain = dec._forward_modules(x, har, g)[:, :, :]
    assert fast.shape == plain.shape
    assert float((fast - plain).abs().max()) <= BOUND * float(plain.abs().max())
    monkeypatch.setenv("SVC_WINOGRAD", "0")
    dec._plans.clear()
    plan = dec._get_plan(torch.device("cpu"))
    layers = [c for stage in plan.resblocks for block in stage for layer in block
              for c in (layer if isinstance(layer, tuple) else (layer,))]
    assert layers and not any(isinstance(c, WinogradConv) for c in layers)


def test_winograd_setting(monkeypatch):
    """``SVC_WINOGRAD`` forces the products on or off; ``auto`` (the default) times each shape."""
    from svc.models import winograd

    calls = []
    monkeypatch.setattr(winograd, "winograd_pays", lambda channels, taps: calls.append((channels, taps)) or taps > 7)
    for value, expected in (("1", True), ("on", True), ("0", False), ("off", False), ("auto", True)):
        monkeypatch.setenv("SVC_WINOGRAD", value)
        assert winograd.winograd_enabled(256, 11) is expected
    monkeypatch.delenv("SVC_WINOGRAD")
    assert winograd.winograd_enabled(128, 7) is False
    assert calls == [(256, 11), (128, 7)]


def test_winograd_conv_of_a_batch():
    """Each item of a batch is convolved on its own (the loop over the batch keeps items apart)."""
    gen = torch.Generator().manual_seed(5)
    weight, bias = torch.randn(5, 3, 1, 7, generator=gen) / 5, torch.randn(5, generator=gen)
    conv = WinogradConv(weight, bias, 3, 9)
    x = torch.randn(2, 3, 1, 150, generator=gen).contiguous(memory_format=torch.channels_last)
    expected = _direct(x, weight, bias, 3)
    assert float((conv(x).double() - expected).abs().max()) <= BOUND * float(expected.abs().max())
    with pytest.raises(ValueError, match="channels-last"):
        conv.add_to(torch.zeros(2, 5, 1, 150), x)
