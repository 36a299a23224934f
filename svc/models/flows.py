"""The normalising flow of so-vits-svc (``flow``), run in reverse at inference.

Two kinds, chosen by ``use_transformer_flow``: WaveNet coupling layers (``n_flow_layer`` =
WaveNet depth, always 4 flows) or transformer coupling layers (``n_flow_layer`` = number of
flows, ``n_layers_trans_flow`` = transformer depth).  With ``flow_share_parameter`` every
coupling layer uses one network, registered as ``flow.wn`` and as each ``flows.{2i}.enc``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attentions import FFT
from .layers import DepthwiseSeparableConv1d, GemmConv1d, gated_activation, weight_normed


class WN(nn.Module):
    """Non-causal WaveNet with global conditioning (VITS ``modules.WN``)."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, gin_channels: int = 0,
                 depthwise: bool = False):
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        if gin_channels:
            self.cond_layer = weight_normed(GemmConv1d(gin_channels, 2 * hidden * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        padding = (kernel_size - 1) // 2  # dilation rate is 1 everywhere so-vits-svc uses WN
        for i in range(n_layers):
            if depthwise:
                self.in_layers.append(DepthwiseSeparableConv1d(hidden, 2 * hidden, kernel_size, padding=padding))
            else:
                self.in_layers.append(weight_normed(GemmConv1d(hidden, 2 * hidden, kernel_size, padding=padding)))
            res_skip = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(weight_normed(GemmConv1d(hidden, res_skip, 1)))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, H, T)``, ``g (B, gin, 1|T)`` -> ``(B, H, T)``."""
        output = torch.zeros_like(x)
        if g is not None:
            g = self.cond_layer(g)
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            x_in = in_layer(x)
            if g is not None:
                g_l = g[:, i * 2 * self.hidden:(i + 1) * 2 * self.hidden, :]
            else:
                g_l = torch.zeros_like(x_in)
            res_skip = res_skip_layer(gated_activation(x_in, g_l, self.hidden))
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :self.hidden, :]) * x_mask
                output = output + res_skip[:, self.hidden:, :]
            else:
                output = output + res_skip
        return output * x_mask


class CouplingLayer(nn.Module):
    """Mean-only affine coupling: ``pre`` -> ``enc`` (WN or FFT) -> ``post`` predicts a shift."""

    def __init__(self, channels: int, hidden: int, enc: nn.Module):
        super().__init__()
        if channels % 2:
            raise ValueError(f"inter_channels must be even, got {channels}")
        self.half = channels // 2
        self.pre = GemmConv1d(self.half, hidden, 1)
        self.enc = enc
        self.post = GemmConv1d(hidden, self.half, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        m = self.post(h) * x_mask
        # exp(-logs) with logs = 0 is the identity; kept as a multiply by the mask only.
        x1 = (x1 - m) * x_mask
        return torch.cat([x0, x1], 1)


class Flip(nn.Module):
    """Reverses the channel order between coupling layers (no parameters)."""

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingBlock(nn.Module):
    """``flows`` = [coupling, Flip] * n; ``reverse`` undoes them last to first."""

    def __init__(self, channels: int, hidden: int, n_flows: int, make_enc, share_parameter: bool):
        super().__init__()
        self.wn = make_enc() if share_parameter else None
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            enc = self.wn if share_parameter else make_enc()
            self.flows.append(CouplingLayer(channels, hidden, enc))
            self.flows.append(Flip())

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``z_p (B, inter, T)`` -> ``z (B, inter, T)``."""
        for flow in reversed(self.flows):
            x = flow.reverse(x, x_mask, g)
        return x


def build_flow(inter: int, hidden: int, filter_channels: int, n_heads: int, gin_channels: int, *,
               transformer: bool, n_flow_layer: int, n_layers_trans_flow: int, share_parameter: bool,
               depthwise: bool) -> CouplingBlock:
    """The ``flow`` module for one config (see the module docstring for what the knobs mean)."""
    if transformer:
        def make_enc() -> nn.Module:
            return FFT(hidden, filter_channels, n_heads, n_layers_trans_flow, 5, gin_channels=gin_channels)

        return CouplingBlock(inter, hidden, n_flow_layer, make_enc, share_parameter)

    def make_wn() -> nn.Module:
        return WN(hidden, 5, n_flow_layer, gin_channels=gin_channels, depthwise=depthwise)

    return CouplingBlock(inter, hidden, 4, make_wn, share_parameter)
