"""Dilated 1-D convolutions as Winograd F(4, 4) products (float32 CPU, the vocoder's wide resblocks).

A "same"-padded convolution with ``k`` taps and dilation ``d`` is a sum of ``ceil(k / 4)`` four-tap
convolutions whose offsets are multiples of four taps.  Splitting the time axis into its ``d``
phases makes each of them undilated, and Winograd's minimal filtering F(4, 4) turns one four-tap
convolution of four outputs into seven products: the input is cut into blocks of four outputs' worth,
each block's seven-sample window is transformed once (``B^T``), and every four-tap part multiplies
the transformed windows of the block it reaches (a block index offset, so the transform is shared)
with its transformed taps (``G``).  The seven products per block and channel pair are seven matrix
products over all blocks, summed back to four outputs by ``A^T``.

An 11-tap convolution costs 7 * 3 / 4 = 5.25 multiply-adds per output and channel pair instead of 11,
a 7-tap one 3.5 instead of 7.  The interpolation points (0, +-1, +-2, 1/2, infinity) keep the
transforms' coefficients small: the float32 error stays within twice the direct kernel's (at most
3.0e-6 against 1.6e-6 of the output's peak, from float64, in tests/test_winograd.py's cases).
"""

from __future__ import annotations

import functools
import os
import time
from fractions import Fraction

import torch

from .conv2d_plan import time_major

TAPS = 4  # outputs per block and taps per part: F(4, 4)
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2))  # and infinity
WINDOW = 2 * TAPS - 1  # one block's input samples (per phase), = products per block


def transforms(m: int = TAPS, points: tuple[Fraction, ...] = POINTS) -> tuple[list, list, list]:
    """Exact ``A^T (m, a)``, ``G (a, m)``, ``B^T (a, a)`` of Toom-Cook F(m, m) for correlation:
    ``y[i] = sum_k w[k] x[i + k] = (A^T ((G w) * (B^T x)))[i]``, with ``a = 2m - 1`` points (the
    finite ``points`` and infinity).  ``B^T`` is solved exactly from that identity."""
    a = 2 * m - 1
    if len(points) != a - 1:
        raise ValueError(f"F({m}, {m}) needs {a - 1} finite points, got {len(points)}")
    at = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for p in points:
        norm = Fraction(1)
        for q in points:
            if q != p:
                norm *= p - q
        g.append([p ** k / norm for k in range(m)])
    g.append([Fraction(int(k == m - 1)) for k in range(m)])
    # For every input position j: sum_x A^T[i, x] G[x, k] B^T[x, j] = [j == i + k] over all (i, k).
    rows = [[at[i][x] * g[x][k] for x in range(a)] for i in range(m) for k in range(m)]
    bt_columns = [_solve(rows, [Fraction(int(j == i + k)) for i in range(m) for k in range(m)]) for j in range(a)]
    bt = [[bt_columns[j][x] for j in range(a)] for x in range(a)]
    return at, g, bt


def _solve(rows: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """The exact solution of a consistent (possibly overdetermined) linear system, by elimination."""
    n = len(rows[0])
    aug = [row[:] + [r] for row, r in zip(rows, rhs, strict=True)]
    pivots, r = [], 0
    for c in range(n):
        p = next((i for i in range(r, len(aug)) if aug[i][c] != 0), None)
        if p is None:
            continue
        aug[r], aug[p] = aug[p], aug[r]
        aug[r] = [v / aug[r][c] for v in aug[r]]
        for i in range(len(aug)):
            if i != r and aug[i][c] != 0:
                f = aug[i][c]
                aug[i] = [v - f * w for v, w in zip(aug[i], aug[r], strict=True)]
        pivots.append(c)
        r += 1
    if len(pivots) != n or any(row[-1] != 0 for row in aug[r:]):
        raise ValueError("the Winograd transform system has no unique solution")
    return [aug[i][-1] for i in range(n)]


class WinogradConv:
    """A "same"-padded conv over ``(1, C, 1, T)`` channels-last float32 signals, as Winograd products.

    Same interface as ``conv2d_plan.Conv`` (``__call__``, ``add_to``, ``plus``) for its use in the
    vocoder's resblocks; batch size 1 (a longer batch is looped).  ``weight`` is ``(out, in, 1, k)``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, padding: int):
        weight, bias = weight.detach(), None if bias is None else bias.detach()
        out_ch, in_ch, _, k = weight.shape
        if padding != (k - 1) // 2 * dilation or k % 2 == 0:
            raise ValueError(f"WinogradConv needs odd taps and 'same' padding, got k={k}, padding={padding}")
        at, g, bt = transforms()
        self.parts = -(-k // TAPS)
        self.dilation, self.padding, self.out_channels = dilation, padding, out_ch
        taps = torch.zeros(out_ch, in_ch, self.parts * TAPS, dtype=torch.float64)
        taps[..., :k] = weight[:, :, 0].double()
        parts = taps.view(out_ch, in_ch, self.parts, TAPS)
        # (part, point, in, out): each point's taps as the right-hand matrix of a product
        g64 = torch.tensor([[float(v) for v in row] for row in g], dtype=torch.float64)
        self.weight = torch.einsum("xk,oisk->sxio", g64, parts).float().contiguous()
        self.at = torch.tensor([[float(v) for v in row] for row in at])
        self.bt = torch.tensor([[float(v) for v in row] for row in bt])
        # A^T's column for the point 1 is all ones: a bias added to that point's products reaches
        # every output once.
        self.bias_point = POINTS.index(Fraction(1))
        self.bias = None if bias is None else bias.float().reshape(1, out_ch)

    def _products(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``(points, blocks * d, out)`` products for ``x (T, C)``; blocks of ``4 d`` output samples."""
        t, c = x.shape
        d, m = self.dilation, TAPS
        blocks = -(-t // (m * d))
        in_blocks = blocks + self.parts - 1
        windows = _windows(x, in_blocks, d, self.padding)
        spectra = torch.mm(self.bt, windows.view(WINDOW, -1)).view(WINDOW, in_blocks * d, c)
        rows = blocks * d
        products = x.new_empty(WINDOW, rows, self.out_channels)
        for point in range(WINDOW):
            out = products[point]
            if point == self.bias_point and self.bias is not None:
                out.copy_(self.bias.expand(rows, -1))
                out.addmm_(spectra[point, :rows], self.weight[0, point])
            else:
                torch.mm(spectra[point, :rows], self.weight[0, point], out=out)
            for s in range(1, self.parts):
                out.addmm_(spectra[point, s * d:s * d + rows], self.weight[s, point])
        return products, blocks, t

    def _outputs(self, out: torch.Tensor, products: torch.Tensor, blocks: int, t: int, add: bool) -> None:
        """``out (T, O) (+)= A^T products`` (the whole blocks in place, the ragged last one through a copy)."""
        d, m, o = self.dilation, TAPS, self.out_channels
        per_block = products.view(WINDOW, blocks, d * o).transpose(0, 1)  # (blocks, WINDOW, d O)
        whole = t // (m * d)
        if whole:
            at, target = self.at.expand(whole, m, WINDOW), out[:whole * m * d].view(whole, m, d * o)
            # beta=0: the target's old contents (uninitialised memory, NaN included) are ignored
            target.baddbmm_(at, per_block[:whole], beta=1.0 if add else 0.0)
        if whole < blocks:
            rest = torch.matmul(self.at, per_block[whole]).view(m * d, o)[:t - whole * m * d]
            if add:
                out[whole * m * d:].add_(rest)
            else:
                out[whole * m * d:] = rest

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out += conv(x)`` in place (``out`` channels-last); returns ``out``."""
        return self._run(out, x, add=True)

    def _run(self, out: torch.Tensor, x: torch.Tensor, add: bool) -> torch.Tensor:
        if not out.is_contiguous(memory_format=torch.channels_last):
            raise ValueError("WinogradConv writes into channels-last tensors only")
        for b in range(x.shape[0]):
            products, blocks, t = self._products(time_major(x[b:b + 1]))
            self._outputs(time_major(out[b:b + 1]), products, blocks, t, add)
        return out

    def plus(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``conv(x) + other`` as a new tensor; ``other`` is left alone."""
        return self.add_to(other.clone(memory_format=torch.channels_last), x)

    def __call__(self, x: torch.Tensor, leaky_slope: float | None = None) -> torch.Tensor:
        """``conv(x)``, followed by ``leaky_relu(., leaky_slope)`` when a slope is given."""
        out = torch.empty((x.shape[0], self.out_channels, 1, x.shape[-1]), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        self._run(out, x, add=False)
        return out if leaky_slope is None else torch.nn.functional.leaky_relu_(out, leaky_slope)


def winograd_enabled(channels: int, taps: int) -> bool:
    """Whether a float32 CPU convolution of ``channels`` channels and ``taps`` taps may run as Winograd
    products: ``SVC_WINOGRAD=1`` / ``0`` forces it; by default (``auto``) a once-per-process timing of
    that shape decides (``winograd_pays``)."""
    setting = os.environ.get("SVC_WINOGRAD", "auto").strip().lower()
    if setting in ("1", "on", "true"):
        return True
    if setting in ("0", "off", "false"):
        return False
    return winograd_pays(channels, taps)


@functools.cache
def winograd_pays(channels: int, taps: int, rounds: int = 3) -> bool:
    """Whether, on this CPU, a ``taps``-tap ``channels``-channel float32 convolution over one vocoder tile
    (2 MB) is at least 10 % faster as Winograd products than as oneDNN's direct kernel (best of
    ``rounds`` interleaved runs, ~0.1 s once per process and shape).

    The products run on the BLAS (MKL) and the direct kernel on oneDNN, and their relative speed
    depends on the CPU and on the shape: on one AMX Xeon VM 128 channels / 11 taps ran 1.32x faster
    as products, on another (same model name) 0.71x while 256 channels ran 1.4-1.7x faster; an AMD
    EPYC's MKL paths were not measured.  So each shape is timed rather than assumed."""
    from .conv2d_plan import Conv, can_pack

    gen = torch.Generator().manual_seed(0)
    length = 2 * 1024 * 1024 // (channels * 4)  # one 2 MB float32 tile, as the vocoder's
    weight = torch.randn(channels, channels, 1, taps, generator=gen) / (channels * taps) ** 0.5
    x = torch.randn(1, channels, 1, length, generator=gen).contiguous(memory_format=torch.channels_last)
    padding = (taps - 1) // 2
    direct = Conv(weight, None, 1, padding, 1, pack=can_pack(torch.float32, torch.device("cpu")))
    products = WinogradConv(weight, None, 1, padding)
    best = {"direct": float("inf"), "winograd": float("inf")}
    with torch.inference_mode():
        direct(x), products(x)  # warm-up (oneDNN compiles its kernel)
        for _ in range(rounds):
            for name, conv in (("direct", direct), ("winograd", products)):
                start = time.perf_counter()
                conv(x)
                best[name] = min(best[name], time.perf_counter() - start)
    return best["winograd"] < 0.9 * best["direct"]


def _windows(x: torch.Tensor, blocks: int, d: int, padding: int) -> torch.Tensor:
    """``(WINDOW, blocks, d C)``: sample ``j`` of every block's window, for ``x (T, C)`` zero-padded by
    ``padding`` samples in front (and as needed behind).  Window ``j`` of block ``b`` is the ``d``
    samples from ``(4 b + j) d - padding`` on (each phase's sample ``j``), so every ``j`` is one strided
    copy of ``x``; the padding is written as zeros, never copied."""
    t, c = x.shape
    out = x.new_empty(WINDOW, blocks, d * c)
    step = TAPS * d  # samples from one block to the next
    for j in range(WINDOW):
        start = j * d - padding  # block 0's first sample
        first = min(blocks, max(0, -(start // step)))  # first block starting at or after sample 0
        stop = min(blocks, max(first, (t - d - start) // step + 1))  # blocks whose d samples all lie in x
        out[j, :first] = 0
        if stop > first:
            source = x.as_strided((stop - first, d * c), (step * c, 1),
                                  x.storage_offset() + (start + first * step) * c)
            out[j, first:stop] = source
        if stop < blocks:
            out[j, stop:] = 0
            begin = start + stop * step
            if begin < t:  # a block that ends behind x: its samples up to the end
                out[j, stop, :(t - begin) * c] = x[begin:].reshape(-1)
    return out
