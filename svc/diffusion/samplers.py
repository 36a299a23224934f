"""The samplers of so-vits-svc 4.1's diffusion decoder, in one registry.

Each sampler takes the noised mel ``x [1, 1, M, T]`` at step ``k`` (k diffusion steps to undo) and
returns the denoised one.  ``speedup`` strides the schedule (``ddim``, ``pndm``) or sets the
solver's step count to ``k // speedup`` (``dpm-solver``, ``dpm-solver++``, ``unipc``: multistep,
order 2, time-uniform, as the reference calls them).  A speedup of 1 is DDPM ancestral sampling
over every step whatever the method, as in the reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import OptionsError
from .model import GaussianDiffusion
from .schedule import DiscreteSchedule

StepReport = Callable[[int, int], None]  # (denoiser evaluations done, total)


@dataclass
class _Denoiser:
    """The WaveNet with the conditioning bound, counting its evaluations for progress reports."""

    diffusion: GaussianDiffusion
    cond: torch.Tensor
    total: int
    report: StepReport | None
    done: int = 0

    def __call__(self, x: torch.Tensor, step: torch.Tensor | int) -> torch.Tensor:
        step = torch.as_tensor(step, device=x.device).reshape(1)
        eps = self.diffusion.denoise_fn(x, step, self.cond)
        self.done += 1
        if self.report is not None:
            self.report(self.done, self.total)
        return eps


class Sampler(ABC):
    """One way of running the reverse diffusion."""

    name: str = ""

    @abstractmethod
    def evaluations(self, k: int, speedup: int) -> int:
        """How many denoiser evaluations ``sample`` makes (the unit of progress and of cost)."""

    def check(self, k: int, speedup: int) -> None:
        """Raise ``OptionsError`` when ``k`` and ``speedup`` give this sampler nothing valid to do."""
        if k < 1:
            raise OptionsError(f"k_step must be at least 1, got {k}")

    @abstractmethod
    def run(self, denoise: _Denoiser, x: torch.Tensor, k: int, speedup: int,
            generator: torch.Generator | None) -> torch.Tensor:
        """Undo ``k`` steps of ``x [1, 1, M, T]``."""

    def sample(self, diffusion: GaussianDiffusion, x: torch.Tensor, cond: torch.Tensor, k: int, speedup: int,
               generator: torch.Generator | None = None, report: StepReport | None = None) -> torch.Tensor:
        self.check(k, speedup)
        denoise = _Denoiser(diffusion, cond, self.evaluations(k, speedup), report)
        return self.run(denoise, x, k, speedup, generator)


def _strided(k: int, speedup: int) -> range:
    return range(k - 1 - (k - 1) % speedup, -1, -speedup)  # = reversed(range(0, k, speedup))


class Ddim(Sampler):
    """DDIM (deterministic) over every ``speedup``-th step."""

    name = "ddim"

    def evaluations(self, k: int, speedup: int) -> int:
        return len(_strided(k, speedup))

    def run(self, denoise, x, k, speedup, generator):
        ac = denoise.diffusion.alphas_cumprod
        for i in _strided(k, speedup):
            a_t, a_prev = ac[i], ac[max(i - speedup, 0)]
            eps = denoise(x, i)
            x = a_prev.sqrt() * (x / a_t.sqrt() + (((1 - a_prev) / a_prev).sqrt() - ((1 - a_t) / a_t).sqrt()) * eps)
        return x


class Pndm(Sampler):
    """PLMS (pseudo linear multistep): a second-order first step, then Adams–Bashforth up to order 4."""

    name = "pndm"

    def evaluations(self, k: int, speedup: int) -> int:
        return len(_strided(k, speedup)) + 1

    def run(self, denoise, x, k, speedup, generator):
        ac = denoise.diffusion.alphas_cumprod
        history: list[torch.Tensor] = []
        for i in _strided(k, speedup):
            eps = denoise(x, i)
            if not history:
                eps_next = denoise(self._step(ac, x, eps, i, speedup), max(i - speedup, 0))
                eps_prime = (eps + eps_next) / 2
            elif len(history) == 1:
                eps_prime = (3 * eps - history[-1]) / 2
            elif len(history) == 2:
                eps_prime = (23 * eps - 16 * history[-1] + 5 * history[-2]) / 12
            else:
                eps_prime = (55 * eps - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
            x = self._step(ac, x, eps_prime, i, speedup)
            history = (history + [eps])[-3:]
        return x

    @staticmethod
    def _step(ac: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, i: int, speedup: int) -> torch.Tensor:
        a_t, a_prev = ac[i], ac[max(i - speedup, 0)]
        a_t_sq, a_prev_sq = a_t.sqrt(), a_prev.sqrt()
        delta = (a_prev - a_t) * ((1 / (a_t_sq * (a_t_sq + a_prev_sq))) * x - 1 / (
            a_t_sq * (((1 - a_prev) * a_t).sqrt() + ((1 - a_t) * a_prev).sqrt())) * eps)
        return x + delta


class Ddpm(Sampler):
    """Ancestral DDPM sampling over every step (x0 clamped to [-1, 1], fresh noise each step)."""

    name = "ddpm"

    def evaluations(self, k: int, speedup: int) -> int:
        return k

    def run(self, denoise, x, k, speedup, generator):
        d = denoise.diffusion
        for i in reversed(range(k)):
            eps = denoise(x, i)
            x0 = (d.sqrt_recip_alphas_cumprod[i] * x - d.sqrt_recipm1_alphas_cumprod[i] * eps).clamp_(-1.0, 1.0)
            mean = d.posterior_mean_coef1[i] * x0 + d.posterior_mean_coef2[i] * x
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            if i > 0:  # the reference draws the last noise too and masks it out
                x = mean + (0.5 * d.posterior_log_variance_clipped[i]).exp() * noise
            else:
                x = mean
        return x


class _Multistep(Sampler):
    """Shared frame of the multistep ODE solvers: ``k // speedup`` steps on the continuous schedule."""

    clip_lambda = True

    def check(self, k: int, speedup: int) -> None:
        super().check(k, speedup)
        if k // speedup < 2:
            raise OptionsError(f"{self.name} needs at least 2 steps: k_step ({k}) // speedup ({speedup}) is "
                               f"{k // speedup}; raise k_step to at least {2 * speedup} or lower the speedup")

    def evaluations(self, k: int, speedup: int) -> int:
        return k // speedup

    def schedule(self, denoise: _Denoiser, k: int) -> DiscreteSchedule:
        return DiscreteSchedule(denoise.diffusion.betas[:k], self.clip_lambda)


class DpmSolver(_Multistep):
    """DPM-Solver (``dpm-solver``: noise prediction) and DPM-Solver++ (``dpm-solver++``: data
    prediction), 2M multistep; the last step is first order when there are fewer than 10 steps."""

    def __init__(self, name: str, data_prediction: bool) -> None:
        self.name = name
        self.data_prediction = data_prediction

    def run(self, denoise, x, k, speedup, generator):
        ns = self.schedule(denoise, k)
        steps = k // speedup
        grid = ns.time_grid(steps)

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps = denoise(x, ns.model_step(t.reshape(1)))
            return (x - ns.sigma(t) * eps) / ns.alpha(t) if self.data_prediction else eps

        times, outs = [grid[0]], [model(x, grid[0])]
        for step in range(1, steps + 1):
            t = grid[step]
            order = 1 if step == 1 or (steps < 10 and step == steps) else 2
            x = self._update(ns, x, outs, times, t, order)
            times, outs = (times + [t])[-2:], (outs + [None])[-2:]
            if step < steps:
                outs[-1] = model(x, t)
        return x

    def _update(self, ns: DiscreteSchedule, x: torch.Tensor, outs: list, times: list, t: torch.Tensor,
                order: int) -> torch.Tensor:
        s, m0 = times[-1], outs[-1]
        lam_s, lam_t = ns.lam(s), ns.lam(t)
        h = lam_t - lam_s
        if self.data_prediction:
            phi = torch.expm1(-h)
            base = ns.sigma(t) / ns.sigma(s) * x - ns.alpha(t) * phi * m0
            scale = ns.alpha(t) * phi
        else:
            phi = torch.expm1(h)
            base = torch.exp(ns.log_alpha(t) - ns.log_alpha(s)) * x - (ns.sigma(t) * phi) * m0
            scale = ns.sigma(t) * phi
        if order == 1:
            return base
        r0 = (lam_s - ns.lam(times[-2])) / h
        d1 = (1.0 / r0) * (m0 - outs[-2])
        return base - 0.5 * scale * d1


class UniPc(_Multistep):
    """UniPC, variant bh2, data prediction, multistep order 2 with the corrector on every step but the last."""

    name = "unipc"
    clip_lambda = False  # the reference's UniPC schedule keeps the whole tail

    def run(self, denoise, x, k, speedup, generator):
        ns = self.schedule(denoise, k)
        steps = k // speedup
        grid = ns.time_grid(steps)

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps = denoise(x, ns.model_step(t.reshape(1)))
            return (x - ns.sigma(t) * eps) / ns.alpha(t)

        times, outs = [grid[0]], [model(x, grid[0])]
        for step in range(1, steps + 1):
            t = grid[step]
            order = min(2, step, steps + 1 - step)
            x, model_t = self._update(ns, x, outs, times, t, order, corrector=step < steps, model=model)
            times, outs = (times + [t])[-2:], (outs + [model_t])[-2:]
        return x

    @staticmethod
    def _update(ns: DiscreteSchedule, x: torch.Tensor, outs: list, times: list, t: torch.Tensor, order: int,
                corrector: bool, model: Callable) -> tuple[torch.Tensor, torch.Tensor | None]:
        s, m0 = times[-1], outs[-1]
        lam_s = ns.lam(s)
        h = ns.lam(t) - lam_s
        hh = -h
        h_phi_1 = torch.expm1(hh)
        b_h = torch.expm1(hh)  # bh2
        rks: list = []
        d1 = None
        if order == 2:
            rk = (ns.lam(times[-2]) - lam_s) / h
            rks.append(rk)
            d1 = (outs[-2] - m0) / rk
        rks.append(1.0)
        rks_t = torch.tensor([float(r) for r in rks], device=x.device)
        rows, b = [], []
        h_phi_k, factorial = h_phi_1 / hh - 1, 1
        for i in range(1, order + 1):
            rows.append(torch.pow(rks_t, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        alpha_t = ns.alpha(t)
        x_base = ns.sigma(t) / ns.sigma(s) * x - alpha_t * h_phi_1 * m0
        x_t = x_base if d1 is None else x_base - alpha_t * b_h * (0.5 * d1)
        if not corrector:
            return x_t, None
        if order == 1:
            rhos_c = torch.tensor([0.5], device=x.device)
        else:
            rhos_c = torch.linalg.solve(torch.stack(rows), torch.cat(b))
        model_t = model(x_t, t)
        corr = 0 if d1 is None else rhos_c[0] * d1
        return x_base - alpha_t * b_h * (corr + rhos_c[-1] * (model_t - m0)), model_t


SAMPLERS: dict[str, Sampler] = {
    s.name: s for s in (Ddim(), Pndm(), DpmSolver("dpm-solver", False), DpmSolver("dpm-solver++", True), UniPc())
}
ANCESTRAL = Ddpm()  # what any method means at speedup 1


def get_sampler(method: str, speedup: int) -> Sampler:
    """The sampler for ``method`` at ``speedup`` (speedup 1 is always ancestral DDPM)."""
    if method not in SAMPLERS:
        raise OptionsError(f"unknown diffusion sampler {method!r}; available: {', '.join(SAMPLERS)}")
    if speedup < 1:
        raise OptionsError(f"the diffusion speedup must be at least 1, got {speedup}")
    return ANCESTRAL if speedup == 1 else SAMPLERS[method]
