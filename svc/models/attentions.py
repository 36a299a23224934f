"""Transformer parts of so-vits-svc: relative-position encoder (enc_p) and causal FFT blocks.

Layout and parameter names follow the reference (VITS ``attentions.py``) so checkpoints load
as they are.  Dropout is omitted: inference runs in eval mode where it is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import GemmConv1d, LayerNorm, gated_activation, weight_normed

ATTENTION_ROWS = 256  # queries per block in CPU inference


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``(B, C, T)``, optionally with shared relative-position embeddings."""

    def __init__(self, channels: int, n_heads: int, window_size: int | None = None):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"hidden channels {channels} are not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = GemmConv1d(channels, channels, 1)
        self.conv_k = GemmConv1d(channels, channels, 1)
        self.conv_v = GemmConv1d(channels, channels, 1)
        self.conv_o = GemmConv1d(channels, channels, 1)
        if window_size is not None:
            self.emb_rel_k = nn.Parameter(torch.zeros(1, window_size * 2 + 1, self.k_channels))
            self.emb_rel_v = nn.Parameter(torch.zeros(1, window_size * 2 + 1, self.k_channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x (B, C, T)`` -> ``(B, C, T)``; ``mask (B, 1, T, T)`` (0: masked out) or None for none."""
        b, d, t = x.shape
        q = self.conv_q(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        k = self.conv_k(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        v = self.conv_v(x).view(b, self.n_heads, self.k_channels, t).transpose(2, 3)

        q = q / math.sqrt(self.k_channels)
        # On CPUs (inference) the queries go in blocks of ATTENTION_ROWS: each softmax row is on its own,
        # and the (B, H, T, T) score matrices of a whole piece (several copies: scores, masked,
        # softmax) were the text encoder's largest memory, growing with the square of its length.
        rows = t if torch.is_grad_enabled() or x.device.type != "cpu" else ATTENTION_ROWS
        if rows >= t:
            out = self._attend(q, k, v, mask, 0)
        else:
            out = torch.empty_like(q)
            for first in range(0, t, rows):
                last = min(t, first + rows)
                block_mask = None if mask is None else mask[..., first:last, :]
                out[..., first:last, :] = self._attend(q[..., first:last, :], k, v, block_mask, first)
        out = out.transpose(2, 3).contiguous().view(b, d, t)
        return self.conv_o(out)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                first_row: int) -> torch.Tensor:
        """Attention output for the (scaled) queries ``q`` of rows ``first_row...`` over all keys."""
        scores = torch.matmul(q, k.transpose(-2, -1))
        if self.window_size is not None:
            _add_band(scores, torch.matmul(q, self.emb_rel_k[0].T), first_row)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p_attn = F.softmax(scores, dim=-1)
        out = torch.matmul(p_attn, v)
        if self.window_size is not None:
            out = out + torch.matmul(_band(p_attn, self.window_size, first_row), self.emb_rel_v[0])
        return out


# The reference multiplies by all 2L-1 relative embeddings (zeros beyond the window) and skews the
# (L, 2L-1) result into (L, L) by padding and reshaping.  Only the 2*window+1 diagonals around the
# main one are non-zero, so these work on that band alone (same sums, without L*L*d of zeros).
# Both take a block of rows (``first_row`` its first) of the square matrix.
def _diagonal_rows(rows: int, length: int, diagonal: int) -> tuple[int, int]:
    """The block rows ``[r0, r1)`` that diagonal ``diagonal`` (of the block) crosses."""
    return max(0, -diagonal), min(rows, length - diagonal)


def _add_band(scores: torch.Tensor, band: torch.Tensor, first_row: int = 0) -> None:
    """``scores[..., i, i+o] += band[..., i, w+o]`` for ``|o| <= w``, in place (``band (..., n, 2w+1)``;
    row ``i`` of the block is row ``first_row + i`` of the whole)."""
    rows, length, w = scores.shape[-2], scores.shape[-1], band.shape[-1] // 2
    for offset in range(-w, w + 1):
        r0, r1 = _diagonal_rows(rows, length, first_row + offset)
        if r1 > r0:
            torch.diagonal(scores, first_row + offset, -2, -1).add_(band[..., r0:r1, w + offset])


def _band(p: torch.Tensor, w: int, first_row: int = 0) -> torch.Tensor:
    """``(..., n, L)`` -> ``(..., n, 2w+1)``: ``out[..., i, w+o] = p[..., i, first_row+i+o]``, zero outside ``p``."""
    rows, length = p.shape[-2], p.shape[-1]
    out = p.new_zeros(*p.shape[:-1], 2 * w + 1)
    for offset in range(-w, w + 1):
        r0, r1 = _diagonal_rows(rows, length, first_row + offset)
        if r1 > r0:
            out[..., r0:r1, w + offset] = torch.diagonal(p, first_row + offset, -2, -1)
    return out


class FFN(nn.Module):
    """Two convolutions with ReLU; 'same' padding, or left-only padding when ``causal``."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, causal: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.causal = causal
        self.conv_1 = GemmConv1d(channels, filter_channels, kernel_size)
        self.conv_2 = GemmConv1d(filter_channels, channels, kernel_size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return x
        if self.causal:
            return F.pad(x, [self.kernel_size - 1, 0])
        return F.pad(x, [(self.kernel_size - 1) // 2, self.kernel_size // 2])

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * x_mask)))
        x = self.conv_2(self._pad(x * x_mask))
        return x * x_mask


class Encoder(nn.Module):
    """Post-LN transformer with relative positions (window 4): the content encoder ``enc_p.enc_``."""

    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int = 4):
        super().__init__()
        self.attn_layers = nn.ModuleList(MultiHeadAttention(hidden, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(hidden, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """``x (B, H, T)``, ``x_mask (B, 1, T)`` -> ``(B, H, T)``."""
        # A piece at inference has no padded frames: its all-ones mask would change nothing (T*T work).
        attn_mask = None if bool(x_mask.all()) else x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        layers = zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True)
        for attn, norm1, ffn, norm2 in layers:
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, x_mask))
        return x * x_mask


class FFT(nn.Module):
    """Causal transformer (subsequent mask, causal FFN) of the F0 decoder and the transformer flow.

    With ``gin_channels`` (flow use) each layer first gates ``cond_pre(x)`` with a slice of
    ``cond_layer(g)``, as the reference does.
    """

    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 gin_channels: int | None = None):
        super().__init__()
        self.hidden = hidden
        self.conditioned = gin_channels is not None
        if self.conditioned:
            self.cond_pre = GemmConv1d(hidden, 2 * hidden, 1)
            self.cond_layer = weight_normed(GemmConv1d(gin_channels, 2 * hidden * n_layers, 1))
        self.self_attn_layers = nn.ModuleList(MultiHeadAttention(hidden, n_heads) for _ in range(n_layers))
        self.norm_layers_0 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FFN(hidden, filter_channels, kernel_size, causal=True) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, H, T)``, ``x_mask (B, 1, T)``, ``g (B, gin, 1|T)`` -> ``(B, H, T)``."""
        if g is not None:
            g = self.cond_layer(g)
        t = x_mask.size(2)
        causal_mask = torch.tril(torch.ones(t, t, device=x.device, dtype=x.dtype)).unsqueeze(0).unsqueeze(0)
        x = x * x_mask
        layers = zip(self.self_attn_layers, self.norm_layers_0, self.ffn_layers, self.norm_layers_1, strict=True)
        for i, (attn, norm0, ffn, norm1) in enumerate(layers):
            if g is not None:
                offset = i * 2 * self.hidden
                x = gated_activation(self.cond_pre(x), g[:, offset:offset + 2 * self.hidden, :], self.hidden)
            x = norm0(x + attn(x, causal_mask))
            x = norm1(x + ffn(x, x_mask))
        return x * x_mask
