"""Exceptions of our own. Each message names the file (or setting) and the problem."""

from __future__ import annotations


class HighlightsError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(HighlightsError):
    """The user gave us something we cannot use. The CLI exits with status 2."""


class VideoError(InputError):
    """A video file is missing, empty, corrupt or has no video stream."""


class ModelError(InputError):
    """A model directory or weights file is missing, broken or does not match."""


class ConfigError(InputError):
    """A configuration value or file is invalid."""


class DatasetError(InputError):
    """A training data set folder is missing, empty or badly laid out."""


class OutputExistsError(InputError):
    """An output would overwrite something the user did not ask us to replace."""


class OutputBusyError(InputError):
    """Another run is writing into the same output folder."""


class SupersededError(HighlightsError):
    """The input changed or went away after its run was started; a newer run handles it."""


class QueueError(HighlightsError):
    """Messages could not be taken off the upload queue; they will be delivered again."""
