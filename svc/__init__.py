"""so-vits-svc compatible singing voice conversion."""

from .errors import SvcError
from .options import ConvertOptions

__version__ = "0.1.0"

__all__ = ["ConvertOptions", "SvcError", "VitsSvc", "__version__"]


def __getattr__(name: str):
    # The session pulls in torch and the models; import it only when it is asked for.
    if name == "VitsSvc":
        from .session import VitsSvc

        return VitsSvc
    raise AttributeError(name)
