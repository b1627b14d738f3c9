"""Living with ultralytics (the FastSAM-analogue oracle's library): its side effects on the process
that trains and runs the segmenter, undone or worked around, each where it is used.

* its progress bars follow paperlib's switch (:func:`quiet`);
* its device selection leaves torch's CPU threads changed (:func:`torch_threads_kept`);
* its trainer reads its own results with polars, absent from a lent GPU's image
  (:func:`results_csv_without_polars`).
"""
from __future__ import annotations

import contextlib
import logging

import torch


@contextlib.contextmanager
def quiet():
    """Ultralytics draws a progress bar per epoch even with ``verbose=False`` (its bars are off
    only when its logger is above INFO): in an executed notebook that is thousands of lines of
    output.  Its bars follow paperlib's switch (:mod:`paperlib.progress`): off in batch execution,
    where our own log line reports the training instead; shown in a terminal."""
    from paperlib.progress import enabled
    logger = logging.getLogger("ultralytics")
    level = logger.level
    if not enabled():
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def torch_threads_kept():
    """Ultralytics' ``select_device`` sets torch's CPU threads to its own count (CPU cores - 1:
    one thread on a 2-core machine) and leaves it so, which would halve the speed of everything
    the process runs afterwards (the detection sweep, the curated fine-tunings).  Restored here."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def results_csv_without_polars():
    """Ultralytics' trainer reads its own results.csv with polars, only to store it in the
    checkpoint it writes (``read_results_csv``); the lent GPU's image has no polars (whose runtime
    alone is larger than what a call carries).  There, pandas reads it instead, into the same dict
    of columns; where polars is installed nothing changes."""
    try:
        import polars  # noqa: F401
        have_polars = True
    except ImportError:
        have_polars = False
    if have_polars:   # (outside the try: an ImportError in the training itself is the training's)
        yield
        return
    from ultralytics.engine.trainer import BaseTrainer
    original = BaseTrainer.read_results_csv

    def read_results_csv(trainer):
        import pandas as pd
        try:
            return pd.read_csv(trainer.csv).to_dict(orient="list")
        except Exception:   # ultralytics' own: no results yet
            return {}

    BaseTrainer.read_results_csv = read_results_csv
    try:
        yield
    finally:
        BaseTrainer.read_results_csv = original
