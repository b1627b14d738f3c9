"""Figures as every notebook writes them: the seeds a title names, and a PNG laid out, its titles kept
inside the figure, written atomically by the writing rank only."""
from __future__ import annotations

import os
from pathlib import Path


def seeds_caption(seeds) -> str:
    """A figure's seeds as its title says them: ``seed 0``, or ``seeds 0, 1, 2, mean over seeds``
    where its panels average several (``no seed`` for none)."""
    seeds = sorted({int(x) for x in seeds})
    if len(seeds) > 1:
        return f"seeds {', '.join(map(str, seeds))}, mean over seeds"
    return f"seed {seeds[0]}" if seeds else "no seed"


def save_figure(fig, path: str | Path, dpi: int = 120, tight: bool = True) -> Path:
    """Lay out ``fig`` (``tight``: matplotlib's tight layout), write it as PNG to ``path`` (rank 0
    only, atomically) and close it.  The figure's title, and a lone panel's, wrap at the figure's
    edges (a long title naming scale, seeds and settings is otherwise cut off by the edge)."""
    import matplotlib.pyplot as plt
    path = Path(path)
    titles = [getattr(fig, "_suptitle", None)] + ([fig.axes[0].title] if len(fig.axes) == 1 else [])
    for title in titles:
        if title is not None:
            title.set_wrap(True)
    if tight:
        fig.tight_layout()
    from paperlib.results import _is_writer
    if _is_writer():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    plt.close(fig)
    return path
