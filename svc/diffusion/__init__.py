"""Shallow diffusion (so-vits-svc 4.1): a mel diffusion model that refines, or replaces, the generator's output.

``loading`` finds and loads ``model_N.pt`` + ``config.yaml``; ``model`` and ``wavenet`` are the
network; ``samplers`` is the one table of samplers; ``mel`` is the vocoder's mel domain (the
enhancer's NSF-HiFiGAN, ``svc.enhancer``, reused); ``stage`` runs one piece.
"""

from .config import DiffusionConfig
from .loading import DiffusionFiles, DiffusionModel, find_diffusion_files, load_diffusion, resolve_diffusion_files
from .samplers import SAMPLERS, get_sampler
from .stage import DiffusionStage

__all__ = [
    "SAMPLERS", "DiffusionConfig", "DiffusionFiles", "DiffusionModel", "DiffusionStage", "find_diffusion_files",
    "get_sampler", "load_diffusion", "resolve_diffusion_files",
]
