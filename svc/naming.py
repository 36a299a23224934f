"""The file name of a converted recording, shared by the CLI and the web UI."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^\w.+-]")  # letters (any script), digits, _ . + - are kept


def output_filename(input_stem: str, speaker: str, transpose: float, extension: str) -> str:
    """``<input>_<speaker>_<+N>key.<ext>``, e.g. ``song_alice_+3key.flac``, safe on every file system.

    Long names are shortened (60 characters of the input's name, 40 of the speaker's) and anything
    that is not a letter, digit, ``_``, ``.``, ``+`` or ``-`` becomes ``_``.
    """
    name = f"{input_stem[:60]}_{speaker[:40]}_{transpose:+g}key"
    return f"{_UNSAFE.sub('_', name)}.{extension}"
