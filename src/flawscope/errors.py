"""Typed errors with messages a user can act on.

Every error raised for bad input derives from :class:`FlawscopeError`. Its message names the
problem *and* the fix in one line; the CLI prints exactly that line and exits non-zero, never a
traceback.
"""

from __future__ import annotations


class FlawscopeError(Exception):
    """Base class: a problem with the user's input, data or model directory.

    Args:
        problem: what is wrong, naming the file / option / value.
        fix: what the user should do about it.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} -- {fix}" if fix else problem)


class DataError(FlawscopeError):
    """A path is missing, holds no images, or an image cannot be used."""


class ImageReadError(DataError):
    """One image file is corrupt, truncated, empty or in an unsupported format."""


class ImageTooSmallError(DataError):
    """An image is smaller than the model's minimum side length."""


class ConfigError(FlawscopeError):
    """An option has an unknown or out-of-range value (e.g. an unknown model name)."""


class ModelDirError(FlawscopeError):
    """A model directory is missing, incomplete or from an incompatible flawscope version."""


class StoreError(FlawscopeError):
    """The results database cannot be opened, created or written."""
