"""Errors of the data tools: every one is a problem with the user's input, printed as one line by the command.

:class:`DatasetError` derives from :class:`scsa_yolo.errors.UsageError`, so ``scsa-yolo prepare`` / ``profile`` /
``demo-data`` print it as ``scsa-yolo SUB: error: MESSAGE`` and exit 2; anything else that escapes is a bug and is
shown with its traceback. Messages name the file, line or argument and say how to fix it.
"""

from __future__ import annotations

from scsa_yolo.errors import UsageError


class DatasetError(UsageError):
    """Input of a data tool that cannot be used (a source, a folder, a YAML, an option)."""


class ConversionError(DatasetError):
    """Input that `prepare` cannot convert at all (nothing usable found, missing split file, a bad --source)."""


class DestError(ConversionError):
    """An output folder that may not be written (foreign files, a bad file list, another run holding it)."""


class OptionError(ConversionError, ValueError):
    """An option that does not exist for the dataset, or a value outside its range."""


class ProfileError(DatasetError):
    """A dataset YAML or output folder that `profile` cannot use."""
