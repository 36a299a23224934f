"""The continuous-time view of the discrete DDPM schedule that DPM-Solver and UniPC sample on.

As the reference's ``NoiseScheduleVP('discrete', betas=betas[:k])``: log α at t_n = (n+1)/N is
½·cumsum(log(1 − β)), piecewise linear in t between those points (and extrapolated from the end
segments), σ = √(1 − α²), λ = log α − log σ.
"""

from __future__ import annotations

import torch

CLIPPED_LAMBDA = -5.1  # DPM-Solver drops the schedule's tail where λ falls below this


class DiscreteSchedule:
    """Piecewise-linear log α(t) over t ∈ [1/N, 1] for the first N = ``len(betas)`` steps."""

    def __init__(self, betas: torch.Tensor, clip_lambda: bool) -> None:
        log_alphas = 0.5 * torch.log(1 - betas).cumsum(dim=0)
        if clip_lambda:
            log_alphas = _clip_tail(log_alphas)
        self.log_alphas = log_alphas.float()
        self.total_n = log_alphas.shape[0]
        self.t_grid = torch.linspace(0.0, 1.0, self.total_n + 1)[1:].to(log_alphas.device)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """log α(t) for ``t [n]`` → ``[n]``."""
        xp, yp = self.t_grid, self.log_alphas
        j = (torch.searchsorted(xp, t.reshape(-1).contiguous()) - 1).clamp(0, xp.shape[0] - 2)
        x0, x1, y0, y1 = xp[j], xp[j + 1], yp[j], yp[j + 1]
        return y0 + (t.reshape(-1) - x0) * (y1 - y0) / (x1 - x0)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_alpha(t)))

    def lam(self, t: torch.Tensor) -> torch.Tensor:
        """Half log-SNR λ(t) = log α − log σ."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alpha))

    def model_step(self, t: torch.Tensor) -> torch.Tensor:
        """The denoiser's (fractional) step index for continuous time ``t``."""
        return (t - 1.0 / self.total_n) * self.total_n

    def time_grid(self, steps: int) -> torch.Tensor:
        """``steps + 1`` time-uniform points from 1 down to 1/N."""
        return torch.linspace(1.0, 1.0 / self.total_n, steps + 1).to(self.log_alphas.device)


def _clip_tail(log_alphas: torch.Tensor) -> torch.Tensor:
    log_sigmas = 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alphas))
    lambdas = log_alphas - log_sigmas
    cut = int(torch.searchsorted(torch.flip(lambdas, [0]), CLIPPED_LAMBDA))
    return log_alphas[:-cut] if cut > 0 else log_alphas
