"""The 4.1 GAN losses (least-squares adversarial, feature matching, KL), computed in float32."""

from __future__ import annotations

import torch


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over discriminators of ``mean((1-D(y))²) + mean(D(ŷ)²)``."""
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2) for r, f in zip(real, fake, strict=True))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over discriminators of ``mean((1-D(ŷ))²)``."""
    return sum(torch.mean((1 - f.float()) ** 2) for f in fake)


def feature_loss(fmap_real: list[list[torch.Tensor]], fmap_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Twice the summed L1 distance between real and generated discriminator features."""
    total = sum(
        torch.mean(torch.abs(r.float().detach() - f.float()))
        for maps_r, maps_f in zip(fmap_real, fmap_fake, strict=True)
        for r, f in zip(maps_r, maps_f, strict=True)
    )
    return total * 2


def kl_loss(z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor,
            mask: torch.Tensor) -> torch.Tensor:
    """KL between the flowed posterior sample and the prior, averaged over unmasked frames."""
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)
