"""Loading downloaded ``.pt`` files without letting them run code.

``torch.load(weights_only=True)`` admits only tensors and plain containers.  fairseq
checkpoints also pickle a ``fairseq.data.dictionary.Dictionary`` (the label list, unused for
inference) and, in older files, ``argparse.Namespace`` hyper-parameters.  We admit exactly
those, as inert data: the Dictionary becomes a stand-in that only stores its attributes, and
a Namespace is a plain attribute bag.  Any other global is refused.  omegaconf containers are
not admitted: fairseq stores ``cfg`` via ``OmegaConf.to_container`` (plain dicts), and a pickled
DictConfig would need a dozen omegaconf classes rebuilt.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightFileError

_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class FairseqDictionary:
    """Inert stand-in for ``fairseq.data.dictionary.Dictionary``: keeps its pickled attributes."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = dict(state)

    @property
    def symbols(self) -> list[str]:
        return list(self.state.get("symbols", []))


# (class, the fully qualified name it is pickled under)
ADMITTED_GLOBALS = [
    (FairseqDictionary, "fairseq.data.dictionary.Dictionary"),
    (argparse.Namespace, "argparse.Namespace"),
]


def load_weights(path: str | Path, what: str) -> Any:
    """Unpickle ``path`` with only plain data admitted; on CPU.

    ``what`` names the expected kind of file for error messages ("a ContentVec checkpoint").
    A file that would run code, or that is corrupt or not a torch file, is a ``WeightFileError``.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(ADMITTED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_name(str(exc))
        if refused is not None:
            raise WeightFileError(
                f"refusing to load '{path}': it would run code (it pickles {refused}), which "
                f"{what} never does; use the officially published file"
            ) from None
        raise _unreadable(path, what, exc) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as exc:
        raise _unreadable(path, what, exc) from None


def _refused_name(message: str) -> str | None:
    # torch names the first unsupported global as "GLOBAL module.name".
    match = _REFUSED_GLOBAL.search(message)
    return None if match is None else match.group(1)


def _unreadable(path: Path, what: str, exc: Exception) -> WeightFileError:
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return WeightFileError(
        f"'{path}' cannot be read as {what} ({detail[:200]}); the file is corrupt, truncated "
        "or of another kind: download it again"
    )
