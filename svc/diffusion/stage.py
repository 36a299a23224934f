"""One piece through the diffusion decoder: shallow diffusion of the generator's output, or only diffusion.

Shallow (so-vits-svc 4.1 ``shallow_diffusion``): the generator's audio → its vocoder log-mel →
noised to step ``k`` → denoised with the content, F0, volume and speaker → NSF-HiFiGAN.
Only diffusion (``only_diffusion``): the same from pure noise over the whole schedule, conditioned on
the input alone.  The random numbers continue the piece's generator (after the generator's own
draws), in the reference's order: the q-sample (or start) noise, any sampler noise, the vocoder's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import OptionsError
from ..features import repeat_expand
from ..volume import extract_volume
from .loading import DiffusionModel
from .mel import audio_to_mel, mel_to_audio
from .samplers import Sampler, StepReport, get_sampler


@dataclass
class DiffusionStage:
    """A loaded diffusion model bound to a vocoder, a sampler and the settings of one conversion.

    ``vocoder`` is the session's ``svc.enhancer.Enhancer`` (NSF-HiFiGAN + its mel).  ``encoder``
    re-extracts content when the diffusion model's speech encoder differs from the generator's, or
    for a second encoding; ``reuse_units`` says the generator's content can be used as it is.
    """

    model: DiffusionModel
    vocoder: object  # svc.enhancer.Enhancer
    sampler: Sampler
    speedup: int
    k_step: int
    only: bool = False
    second_encoding: bool = False
    encoder: object | None = None  # svc.encoders.ContentEncoder
    unit_interpolate_mode: str = "left"
    reuse_units: bool = True

    @classmethod
    def create(cls, model: DiffusionModel, vocoder: object, *, method: str | None, speedup: int, k_step: int,
               only: bool, **kwargs) -> DiffusionStage:
        """Validate the settings against the model (a clear error when they cannot work) and bind them."""
        cfg = model.config
        speedup = speedup or cfg.speedup
        sampler = get_sampler(method or cfg.method, speedup)
        if only:
            if cfg.shallow_only:
                raise OptionsError(f"the diffusion model {model.files.model.name} was trained for shallow diffusion "
                                   f"only (k_step_max {cfg.k_step_max} < {cfg.timesteps} steps); it cannot run alone")
            k_step = cfg.timesteps
        elif not 1 <= k_step <= cfg.k_step_max:
            raise OptionsError(f"k_step {k_step} is beyond this diffusion model's k_step_max ({cfg.k_step_max}); "
                               f"use 1 to {cfg.k_step_max}")
        sampler.check(k_step, speedup)
        return cls(model, vocoder, sampler, speedup, k_step, only, **kwargs)

    @property
    def evaluations(self) -> int:
        """Denoiser evaluations per piece (the diffusion's cost unit)."""
        return self.sampler.evaluations(self.k_step, self.speedup)

    def check_speaker(self, speaker_id: int) -> None:
        n_spk = self.model.config.n_spk
        if n_spk > 1 and not 0 <= speaker_id < n_spk:
            raise OptionsError(f"speaker id {speaker_id} is outside the diffusion model's {n_spk} speakers")

    @torch.inference_mode()
    def render(self, wav: torch.Tensor, sr: int, hop: int, units: torch.Tensor, f0: torch.Tensor,
               vol: torch.Tensor | None, speaker_id: int, gan_audio: torch.Tensor | None,
               generator: torch.Generator, report: StepReport | None = None) -> torch.Tensor:
        """The piece's audio ``[N]``.

        ``wav [N]`` is the padded input at ``sr``, ``units [1, E, T]`` the content the generator used
        (or, only diffusion, the diffusion encoder's), ``f0 [1, T]`` the F0 it used, ``vol [1, T]`` the
        input's volume when the generator takes one, ``gan_audio [N]`` the generator's output (None
        for only diffusion).
        """
        net, device = self.model.net, f0.device
        frames = f0.shape[-1]
        source = wav if gan_audio is None else gan_audio
        if vol is None:
            vol = extract_volume(source.float()[None], hop)[None].to(device)
        units = self._units(wav, gan_audio, sr, units, frames)
        cond = net.condition(units.transpose(1, 2).to(device), f0[..., None], vol[..., None], speaker_id)
        mel_shape = (1, 1, self.model.mel_bins, frames)
        decoder = net.decoder
        if gan_audio is None:
            x = torch.randn(mel_shape, generator=generator, device=device)
        else:
            mel = audio_to_mel(self.vocoder, gan_audio).to(device)
            x0 = decoder.norm_spec(mel)[:, None]
            noise = torch.randn(x0.shape, generator=generator, device=device)
            x = decoder.q_sample(x0, self.k_step - 1, noise)
        x = self.sampler.sample(decoder, x, cond, self.k_step, self.speedup, generator, report)
        mel = decoder.denorm_spec(x[:, 0])
        return mel_to_audio(self.vocoder, mel, f0, generator, self.model.config.vocoder_type)

    def _units(self, wav: torch.Tensor, gan_audio: torch.Tensor | None, sr: int, units: torch.Tensor,
               frames: int) -> torch.Tensor:
        if self.only or (self.reuse_units and not self.second_encoding) or self.encoder is None:
            return units
        source = gan_audio if (self.second_encoding and gan_audio is not None) else wav
        encoded = self.encoder.encode(source.float().cpu(), sr)
        return repeat_expand(encoded[0].to(units.device), frames, self.unit_interpolate_mode)[None]


