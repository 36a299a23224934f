"""The trainable 4.1 generator (with its posterior encoder ``enc_q``) and the discriminators.

``TrainGenerator`` reuses the inference ``SynthesizerTrn`` parts and adds what only training
needs: ``enc_q``, the forward (posterior) flow direction, random segment slicing, dropout,
the reference's weight initialisation and trainable weight norm.  Child modules are kept in
the reference's registration order, so ``state_dict()`` and ``parameters()`` list tensors in
the order so-vits-svc does: AdamW states in checkpoints are indexed by that order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import SynthesizerParams, SynthesizerTrn, f0_to_coarse
from ..models.attentions import FFN, MultiHeadAttention
from ..models.f0_decoder import hz_to_lf0, normalize_lf0
from ..models.flows import WN, CouplingBlock, CouplingLayer, Flip
from ..models.layers import get_padding, weight_normed
from ..models.nsf_hifigan import NsfHifiGan, ResBlock
from .weight_norm import apply_weight_norm

LRELU_SLOPE = 0.1
ENC_Q_LAYERS = 16  # the posterior encoder's WaveNet depth (kernel 5), fixed in 4.1
DISCRIMINATOR_PERIODS = (2, 3, 5, 7, 11)

# The reference's child registration order where ours differs (names missing in a module are skipped).
_CHILD_ORDER: dict[type, tuple[str, ...]] = {
    NsfHifiGan: ("m_source", "noise_convs", "conv_pre", "ups", "resblocks", "snakes", "conv_post", "snake_post",
                 "cond"),
    WN: ("in_layers", "res_skip_layers", "cond_layer"),
    CouplingBlock: ("flows", "wn"),
}


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_length)`` bool mask."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def slice_segments(x: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """``x (B, C, T)`` -> ``(B, C, size)`` windows starting at ``starts (B,)``."""
    index = starts[:, None] + torch.arange(size, device=x.device)[None, :]
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.size(1), -1))


def random_starts(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Uniform window starts in ``[0, length - size]`` per item (0 when an item is shorter)."""
    span = (lengths - size + 1).clamp(min=1)
    return (torch.rand(lengths.shape, device=lengths.device) * span).long()


class PosteriorEncoder(nn.Module):
    """``enc_q``: linear spectrogram -> posterior ``z`` (16-layer WaveNet, speaker-conditioned)."""

    def __init__(self, spec_channels: int, inter: int, hidden: int, gin: int, depthwise: bool):
        super().__init__()
        self.inter = inter
        self.pre = nn.Conv1d(spec_channels, hidden, 1)
        self.enc = WN(hidden, 5, ENC_Q_LAYERS, gin_channels=gin, depthwise=depthwise)
        self.proj = nn.Conv1d(hidden, inter * 2, 1)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor, g: torch.Tensor):
        """``spec (B, F, T)``, ``mask (B, 1, T)`` -> ``z, m, logs`` each ``(B, inter, T)``."""
        x = self.pre(spec) * mask
        x = self.enc(x, mask, g=g)
        m, logs = torch.split(self.proj(x) * mask, self.inter, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
        return z, m, logs


def flow_forward(flow: CouplingBlock, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The flow in the training direction (posterior ``z`` -> prior space ``z_p``); mean-only couplings."""
    for layer in flow.flows:
        if isinstance(layer, Flip):
            x = torch.flip(x, [1])
        else:
            x = _coupling_forward(layer, x, mask, g)
    return x


def _coupling_forward(layer: CouplingLayer, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    x0, x1 = torch.split(x, [layer.half, layer.half], 1)
    h = layer.enc(layer.pre(x0) * mask, mask, g=g)
    m = layer.post(h) * mask
    return torch.cat([x0, m + x1 * mask], 1)


class TrainGenerator(SynthesizerTrn):
    """The 4.1 ``SynthesizerTrn`` as trained: ``forward`` returns everything the losses need."""

    def __init__(self, p: SynthesizerParams, spec_channels: int, segment_frames: int, p_dropout: float = 0.1):
        super().__init__(p)
        self.segment_frames = segment_frames
        self.enc_q = PosteriorEncoder(spec_channels, p.inter_channels, p.hidden_channels, p.gin_channels,
                                      p.use_depthwise_conv)
        self.dec.fast = False  # the module-by-module forward is the differentiable one
        _match_reference_order(self)
        _init_weights(self)
        _add_dropout(self, p_dropout)
        apply_weight_norm(self)

    def forward(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, spec: torch.Tensor, sid: torch.Tensor,
                lengths: torch.Tensor, vol: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One training pass.

        ``c (B, ssl, T)``, ``f0 (B, T)`` Hz, ``uv (B, T)``, ``spec (B, F, T)``, ``sid (B, 1)``,
        ``lengths (B,)``, ``vol (B, T)``.  Returns the generated segment ``audio (B, 1, seg*hop)``,
        its frame ``starts``, ``mask``, the prior/posterior statistics and the F0-decoder terms.
        """
        g = self.emb_g(sid).transpose(1, 2)
        mask = sequence_mask(lengths, c.size(2)).unsqueeze(1).to(c.dtype)
        x = self.pre(c) * mask + self.emb_uv(uv.long()).transpose(1, 2)
        if vol is not None and self.params.vol_embedding:
            x = x + self.emb_vol(vol[:, :, None]).transpose(1, 2)
        out: dict[str, torch.Tensor] = {"mask": mask}
        if self.params.use_automatic_f0_prediction:
            lf0 = hz_to_lf0(f0)
            # The reference scales the normalised pitch by a random factor in [0.8, 1.2] per item.
            factor = torch.empty(f0.size(0), 1, 1, device=f0.device).uniform_(0.8, 1.2)
            norm_lf0 = normalize_lf0(lf0, mask, uv) * factor
            out["lf0"], out["pred_lf0"] = lf0, self.f0_decoder(x.detach(), norm_lf0, mask, spk_emb=g)
        out["m_p"], out["logs_p"] = self._prior(x, mask, f0)
        z, out["m_q"], out["logs_q"] = self.enc_q(spec, mask, g)
        out["z_p"] = flow_forward(self.flow, z, mask, g)
        starts = random_starts(lengths, self.segment_frames)
        z_slice = slice_segments(z, starts, self.segment_frames)
        f0_slice = slice_segments(f0[:, None], starts, self.segment_frames)[:, 0]
        out["audio"] = self.dec(z_slice, f0_slice, g=g)
        out["starts"] = starts
        return out

    def _prior(self, x: torch.Tensor, mask: torch.Tensor, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.enc_p
        x = x + enc.f0_emb(f0_to_coarse(f0, self.params.version)).transpose(1, 2)
        x = enc.enc_(x * mask, mask)
        m, logs = torch.split(enc.proj(x) * mask, enc.inter_channels, dim=1)
        return m, logs


def _match_reference_order(model: nn.Module) -> None:
    """Reorder children so parameters enumerate as in the reference (enc_q after dec, etc.)."""
    top = ("emb_g", "emb_vol", "pre", "enc_p", "dec", "enc_q", "flow", "f0_decoder", "emb_uv")
    _reorder(model, top)
    for module in model.modules():
        order = _CHILD_ORDER.get(type(module))
        if order:
            _reorder(module, order)


def _reorder(module: nn.Module, order: tuple[str, ...]) -> None:
    children = module._modules
    names = [n for n in order if n in children] + [n for n in children if n not in order]
    module._modules = {name: children[name] for name in names}


def _init_weights(model: TrainGenerator) -> None:
    """The reference's initialisation where it is not PyTorch's default."""
    for module in model.modules():
        if isinstance(module, CouplingLayer):  # flows start as the identity
            nn.init.zeros_(module.post.weight)
            nn.init.zeros_(module.post.bias)
        elif isinstance(module, MultiHeadAttention):
            for conv in (module.conv_q, module.conv_k, module.conv_v):
                nn.init.xavier_uniform_(conv.weight)
            if module.window_size is not None:
                std = module.k_channels ** -0.5
                with torch.no_grad():
                    module.emb_rel_k.normal_(0.0, std)
                    module.emb_rel_v.normal_(0.0, std)
    for conv in model.dec.ups:
        nn.init.normal_(conv.weight, 0.0, 0.01)
    for block in model.dec.resblocks:
        for conv in _resblock_convs(block):
            nn.init.normal_(conv.weight, 0.0, 0.01)


def _resblock_convs(block: ResBlock) -> list[nn.Module]:
    return [*block.convs1, *block.convs2] if block.kind == "1" else list(block.convs)


def _add_dropout(model: nn.Module, p: float) -> None:
    """Dropout on attention and feed-forward outputs in training mode, where the reference has it.

    The inference modules have no dropout (eval mode makes it the identity), so it is added as
    forward hooks on every attention and FFN block (text encoder, F0 decoder, transformer flow).
    """
    if p <= 0:
        return

    def hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        return F.dropout(output, p, module.training)

    for module in model.modules():
        if isinstance(module, MultiHeadAttention | FFN):
            module.register_forward_hook(hook)


class DiscriminatorP(nn.Module):
    """Period discriminator: the waveform folded into ``(T/period, period)`` and 2-D convolved."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, divisor: int = 1):
        super().__init__()
        self.period = period
        pad = (get_padding(kernel_size, 1), 0)
        chans = [1] + [c // divisor for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList(
            weight_normed(nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1),
                                    padding=pad))
            for i in range(5)
        )
        self.conv_post = weight_normed(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The body both discriminators share: leaky-ReLU convs, then ``conv_post``; (logits, feature maps)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform (grouped strided 1-D convolutions)."""

    def __init__(self, divisor: int = 1):
        super().__init__()
        chans = [1] + [c // divisor for c in (16, 64, 256, 1024, 1024, 1024)]
        layers = [(15, 1, 1, 7), (41, 4, 4, 20), (41, 4, 16, 20), (41, 4, 64, 20), (41, 4, 256, 20), (5, 1, 1, 2)]
        self.convs = nn.ModuleList(
            weight_normed(nn.Conv1d(chans[i], chans[i + 1], k, s, groups=max(1, g // divisor), padding=p))
            for i, (k, s, g, p) in enumerate(layers)
        )
        self.conv_post = weight_normed(nn.Conv1d(chans[-1], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """4.1's ``net_d``: one scale discriminator and period discriminators 2, 3, 5, 7, 11.

    ``divisor`` > 1 divides every channel count (and group count): a cheap discriminator for
    tests and quick experiments, whose ``D_*.pth`` files do not fit so-vits-svc's.
    """

    def __init__(self, divisor: int = 1):
        super().__init__()
        discs: list[nn.Module] = [DiscriminatorS(divisor)]
        discs += [DiscriminatorP(p, divisor=divisor) for p in DISCRIMINATOR_PERIODS]
        self.discriminators = nn.ModuleList(discs)
        apply_weight_norm(self)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Real and generated ``(B, 1, N)`` -> (real scores, fake scores, real fmaps, fake fmaps)."""
        real, fake, fmap_real, fmap_fake = [], [], [], []
        for disc in self.discriminators:
            r, fr = disc(y)
            f, ff = disc(y_hat)
            real.append(r)
            fake.append(f)
            fmap_real.append(fr)
            fmap_fake.append(ff)
        return real, fake, fmap_real, fmap_fake


def count_parameters(model: nn.Module) -> int:
    """Unique trainable elements (a shared layer counted once)."""
    return sum(p.numel() for p in model.parameters())


def segment_audio(y: torch.Tensor, starts: torch.Tensor, frames: int, hop: int) -> torch.Tensor:
    """The ground-truth waveform windows ``(B, 1, frames*hop)`` matching frame ``starts``."""
    return slice_segments(y, starts * hop, frames * hop)


__all__ = ["DiscriminatorP", "DiscriminatorS", "MultiPeriodDiscriminator", "PosteriorEncoder", "TrainGenerator",
           "count_parameters", "flow_forward", "segment_audio", "sequence_mask", "slice_segments"]
