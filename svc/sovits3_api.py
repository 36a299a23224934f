"""Pieces of the original so-vits-svc 3.0 session API (``VitsSvc.loadCheckpoint/inference``, ``.speakers``).

``sovits_gradio.py`` and scripts written against 3.0's ``inference/infer_tool_grad.py`` hand
Gradio's numpy audio in and expect ``(sampling_rate, int16 array)`` back; these helpers do the
conversions (without 3.0's bugs: float input works, full scale clips instead of wrapping).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import AudioError


class SpeakerMap(dict):
    """The config's ``spk`` map (name -> id, in id order) that also reads as the list of names.

    3.0's session exposed ``speakers`` as the ``spk`` dict; this project's API as the list of
    names.  Names are strings, so an integer or a slice index is unambiguous: ``speakers["nen"]``
    is an id, ``speakers[0]`` the first name; iteration yields the names; it equals both the dict
    and the list of names.
    """

    def __init__(self, spk: dict[str, int]):
        super().__init__(sorted(spk.items(), key=lambda item: item[1]))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) or (isinstance(key, int) and not isinstance(key, bool)):
            return list(self)[key]
        return super().__getitem__(key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


def gradio_audio_to_float(srcaudio: Any) -> tuple[np.ndarray, int]:
    """Gradio's numpy audio ``(sr, array)`` -> ``(mono float32 [N], sr)``.

    ``array`` is ``[N]`` or ``[N, channels]`` (Gradio's layout); integer samples are divided by
    their dtype's maximum, as 3.0 does; float samples are taken as they are.
    """
    if not isinstance(srcaudio, (tuple, list)) or len(srcaudio) != 2:
        raise AudioError("audio must be a (sampling_rate, samples) pair, as gr.Audio(type='numpy') gives it")
    sr, audio = srcaudio
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / np.iinfo(audio.dtype).max
    elif np.issubdtype(audio.dtype, np.floating):
        audio = audio.astype(np.float32)
    else:
        raise AudioError(f"audio samples must be integers or floats, got {audio.dtype}")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # Gradio gives [N, channels]
    if audio.ndim != 1:
        raise AudioError(f"audio must be mono [N] or [N, channels], got shape {tuple(audio.shape)}")
    return audio, int(sr)


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """[-1, 1] float audio -> int16 as 3.0 does it (x 32768, truncated), but clipped: 3.0 wraps +1.0 to -32768."""
    return np.clip(np.asarray(audio, dtype=np.float64) * 32768.0, -32768, 32767).astype(np.int16)
