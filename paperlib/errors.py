"""Exception types shared across paperlib, in a leaf module that imports nothing of paperlib."""
from __future__ import annotations


class ParamError(ValueError):
    """A parameter file or dictionary is invalid; the message names the key and valid values."""


__all__ = ["ParamError"]
