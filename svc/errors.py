"""Exceptions the application raises for problems the user can fix.

Every error a user can cause (a bad file, a missing weight, an unknown speaker) is an
``SvcError`` whose message is one readable sentence: the CLI prints it as a one-line error and
the web UI shows it in the page.  Anything else escaping is a bug.
"""

from __future__ import annotations


class SvcError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(SvcError):
    """A ``config.json`` is missing, unreadable or inconsistent."""


class CheckpointError(SvcError):
    """A model checkpoint is missing, corrupt or does not match its config."""


class WeightFileError(SvcError):
    """A pretrained weight file (encoder, F0 model, vocoder) is missing or of the wrong kind."""


class AudioError(SvcError):
    """An input audio file cannot be used."""


class OptionsError(SvcError):
    """A conversion setting is out of range or unknown."""


class TimbreFileError(SvcError):
    """A cluster model, feature index or speaker-mix file is missing, unsafe or does not fit the model."""


class DatasetError(SvcError):
    """A training dataset or run folder cannot be used."""
