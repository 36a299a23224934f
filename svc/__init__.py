"""so-vits-svc compatible singing voice conversion."""

import os

# torch's pre-packed oneDNN convolutions (the vocoder's, svc/models/conv2d_plan.py) keep a cache of
# their own, ideep's, of LRU_CACHE_CAPACITY entries (default 1024), read once when torch is
# imported: every piece length adds entries, and on a 60 s song the default held about 0.2 GB more
# at the peak (2.45-2.61 GB against 2.32-2.37 GB with 32-64 entries, at the same speed).  So it is
# set here, before anything imports torch; a program that imported torch first keeps torch's default.
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")

from .errors import SvcError  # noqa: E402
from .options import ConvertOptions  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ConvertOptions", "SvcError", "VitsSvc", "__version__"]


def __getattr__(name: str):
    # The session pulls in torch and the models; import it only when it is asked for.
    if name == "VitsSvc":
        from .session import VitsSvc

        return VitsSvc
    raise AttributeError(name)
