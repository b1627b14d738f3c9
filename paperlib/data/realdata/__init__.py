"""Loaders for the papers' own data formats, used at the "paper" scale.

The reproduced papers (via CleanCLIP's code base) train on CC3M given as a CSV
of ``image,caption`` rows and evaluate zero-shot on an ImageNet validation
folder with ``labels.csv`` plus a ``classes.py`` file of class names and prompt
templates. This module reads both formats and yields items that follow the
project's dataset protocol (see the shared design):

* captioned:      ``ds[i] -> (uint8 tensor [3, S, S], caption: str)``
* classification: ``ds[i] -> (uint8 tensor [3, S, S], label: int)`` with
  ``ds.classnames`` and ``ds.templates`` (format strings with one ``"{}"``).

Images are preprocessed like CLIP (shorter side resized to ``S`` with bicubic
interpolation, then centre-cropped to ``S x S``) but are NOT normalised:
attacks act in pixel space, and normalisation happens later on the device.

Unreadable images (chosen design)
---------------------------------
A 3M-row CSV cannot be validated up front by opening every image, and web
scraped datasets always have some missing or corrupt files. So:

1. ``ds[i]`` raises :class:`UnreadableImage` (carrying the row index, the path
   and the reason) instead of a generic PIL/OS error; nothing is opened at
   construction.
2. :class:`SkippingLoader` wraps a ``torch.utils.data.DataLoader``; the
   training/evaluation loop iterates it exactly like a DataLoader
   (``for images, captions in loader``). Bad rows are dropped from their batch
   (so a batch may be smaller than ``batch_size``), counted in the main process
   (``loader.n_skipped``: unique files, correct with worker processes too) and
   the first few are logged as warnings by file name. This works with
   ``num_workers > 0`` because the skip information travels with each batch
   rather than living in per-worker counters.
3. Optionally, ``ds.valid_indices(mode)`` scans the rows once (``"exists"``:
   cheap file check; ``"decode"``: full decode) and ``ds.select(indices)``
   returns a filtered view, for when many files are known to be missing and
   ragged batches are unwanted.

The lower-level pieces (:class:`SkipUnreadable`, :func:`collate_skipping`) are
public so a caller that builds its own DataLoader can reuse them.

``classes.py`` is never imported or executed: it is parsed with :mod:`ast` and
only literal class-name lists and simple template lambdas are accepted.

Modules: :mod:`~paperlib.data.realdata.image` (one image file, :class:`UnreadableImage`),
:mod:`~paperlib.data.realdata.classes` (class names and templates),
:mod:`~paperlib.data.realdata.datasets` (:class:`CaptionCSV`, :class:`ImageFolderZeroShot`) and
:mod:`~paperlib.data.realdata.loader` (:class:`SkippingLoader` and its pieces); every public name
is re-exported here.  Their loggers are children of ``paperlib.data.realdata``.
"""

from __future__ import annotations

from paperlib.data.realdata.classes import check_template, default_templates, load_class_metadata, parse_classes_py
from paperlib.data.realdata.datasets import CaptionCSV, ImageFolderZeroShot
from paperlib.data.realdata.image import UnreadableImage, clip_resize_crop, load_image
from paperlib.data.realdata.loader import SkippingLoader, SkipUnreadable, Unreadable, collate_skipping

__all__ = [
    "UnreadableImage",
    "Unreadable",
    "CaptionCSV",
    "ImageFolderZeroShot",
    "SkipUnreadable",
    "SkippingLoader",
    "collate_skipping",
    "load_image",
    "clip_resize_crop",
    "parse_classes_py",
    "load_class_metadata",
    "default_templates",
    "check_template",
]
