"""One switch for every progress bar in paperlib.

Bars are on by default (a terminal redraws one line in place).  In an executed notebook every tqdm
redraw becomes a separate stderr output, so batch execution (``run_all``, the notebook tests) turns
them off with ``PAPERLIB_PROGRESS=0``; the work is still logged.  tqdm's own ``TQDM_DISABLE`` cannot
do this because the bars here pass ``disable=`` and ``mininterval=`` explicitly.
"""
from __future__ import annotations

import os

ENV = "PAPERLIB_PROGRESS"
_OFF = {"0", "false", "off", "no"}


def enabled() -> bool:
    """Whether progress bars are shown (the environment variable is read at every call)."""
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


def bar(iterable=None, *, disable: bool = False, **kwargs):
    """A tqdm bar that honours the switch; ``disable=True`` still hides it (e.g. non-zero DDP ranks)."""
    try:
        import ipywidgets  # noqa: F401  (tqdm's notebook bars need it; without it tqdm.auto warns on import)
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm import tqdm
    return tqdm(iterable, disable=disable or not enabled(), **kwargs)
