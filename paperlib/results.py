"""Where results go and what records them: the committed and scratch results folders, the publishing
check, manifests (commit, machine, packages, wall time), the run's terminal lines with their estimate,
and Markdown tables.

The rows themselves (one per measurement, merged by key columns, written atomically) are
:mod:`paperlib.result_rows`', re-exported here: :func:`upsert_csv` replaces rows with the same key and
keeps the rest, so re-running one notebook never erases another's results.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Mapping

import pandas as pd

# the rows' own module, re-exported: results files are merged, read and written through these names
from paperlib.result_rows import (NAME_COLUMNS, _is_writer, column_equals, read_results,  # noqa: F401
                                  row_naming_model, upsert_csv, write_csv_atomic)

PACKAGES = ("torch", "torchvision", "open_clip_torch", "ultralytics", "nltk", "scikit-learn",
            "numpy", "pandas", "matplotlib", "papermill", "safetensors", "pillow")


# Where runs write.  Committed ``results/`` is evidence: it changes only when a run is published
# on purpose (``run_all --publish`` or ``results_dir: results``).  Every other run (a notebook
# opened by hand, a smoke run, an override) writes to the scratch folder, which starts as a copy
# of the committed results so that tables and row reuse see what a published run would.
PUBLISHED = "results"
SCRATCH_ENV = "PAPERLIB_SCRATCH"


def scratch_root() -> Path:
    """``$PAPERLIB_SCRATCH`` or ``<repo>/scratch`` (git-ignored)."""
    from paperlib.assets import repo_root
    env = os.environ.get(SCRATCH_ENV)
    return Path(env).expanduser().resolve() if env else repo_root() / "scratch"


def default_results_dir() -> str:
    """The parameters' default ``results_dir``: the scratch results folder, repository-relative
    when it lies inside the checkout (manifests then name no machine's absolute path)."""
    from paperlib.assets import repo_root
    path = scratch_root() / "results"
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


def results_dir_param():
    """The ``results_dir`` field every experiment's parameters share."""
    from paperlib.config import param
    return param(default_factory=default_results_dir,
                 doc="where CSV files and figures go: by default scratch/results (a copy of the "
                     "committed results that runs add to); 'results' publishes into the committed "
                     "results, which only a deliberate run should do")


def is_published(results_dir: str | Path) -> bool:
    """Whether ``results_dir`` is the committed results folder or lies inside it (``results/eftclip``
    is as committed as ``results``)."""
    from paperlib.assets import repo_root
    path = Path(results_dir)
    path = path if path.is_absolute() else repo_root() / path
    return path.resolve().is_relative_to((repo_root() / PUBLISHED).resolve())


def prepare_results_dir(results_dir: str | Path, log=None, check_dirty: bool = True) -> Path:
    """Make ``results_dir`` ready to write into.  The scratch folder is seeded, when it does not
    exist yet, with a copy of the committed results (copied beside it, then renamed: an interrupted
    copy leaves no half-seeded folder); any other folder is only created.  Delete the scratch
    folder to start again from the committed results.  The committed folder is refused to a run
    that started from a modified checkout (:func:`refuse_dirty_publishing`); ``check_dirty=False``
    is for commands whose rows were made by other code (a clone of HEAD, a lending's copy, jobs)."""
    import shutil

    from paperlib.assets import repo_root
    path = Path(results_dir)
    path = path if path.is_absolute() else repo_root() / path
    commit = start_commit()
    if check_dirty and is_published(path) and _is_writer():
        refuse_dirty_publishing(path, commit)
    scratch = scratch_root() / "results"
    if path.resolve() == scratch.resolve() and not path.exists() and _is_writer():
        committed = repo_root() / PUBLISHED
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.seeding{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        if committed.is_dir():
            shutil.copytree(committed, tmp, ignore=shutil.ignore_patterns("*.partial.ipynb", ".*"))
        else:
            tmp.mkdir(parents=True)
        os.replace(tmp, path)
        if log:
            log(f"scratch results folder {path} seeded with a copy of {committed}")
    path.mkdir(parents=True, exist_ok=True)
    return path


PUBLISH_DIRTY_ENV = "PAPERLIB_PUBLISH_DIRTY"
RUN_COMMIT_ENV = "PAPERLIB_RUN_COMMIT"   # run_all's start commit, which the notebooks' kernels inherit
_START_COMMIT: str | None = None        # set once per process: see start_commit


def start_commit() -> str:
    """The commit this process's run started from, as :func:`git_commit` reads it at the first
    results folder the process prepares (a kernel that ``run_all`` started inherits run_all's).
    Set once: Python runs the code it imported, whatever is checked out or committed later."""
    global _START_COMMIT
    if _START_COMMIT is None:
        _START_COMMIT = os.environ.get(RUN_COMMIT_ENV) or git_commit()
    return _START_COMMIT


def refuse_dirty_publishing(path: str | Path, commit: str | None = None, what: str = "results_dir") -> None:
    """Refuse to write into the committed results from a run that started while code, parameters or
    docs differed from HEAD (tracked changes or new files outside ``results/``).

    A manifest names the commit that made its rows; from a modified checkout it can only say
    ``<commit>+dirty``, and nobody can check out the code that made them.  ``PAPERLIB_PUBLISH_DIRTY=1``
    publishes anyway (the manifest then says ``+dirty``).  A checkout git cannot read (``unknown``)
    is let through: there is nothing to compare.
    """
    from paperlib.errors import ParamError
    commit = start_commit() if commit is None else commit
    if commit.endswith("+dirty") and os.environ.get(PUBLISH_DIRTY_ENV) != "1":
        raise ParamError(
            f"{what}: {path} lies in the committed results folder, and this run started while the "
            f"checkout's code, parameters or docs differed from its commit {commit.removesuffix('+dirty')[:12]} "
            "(git status lists them), so the manifest could not name the code that made the rows. "
            "Commit or stash the changes and run again (in Jupyter: restart the kernel), or write to the "
            f"scratch folder (the default results_dir); {PUBLISH_DIRTY_ENV}=1 publishes anyway, its "
            "manifest saying +dirty")


def open_results_dir(p, log=None) -> Path:
    """The entry points' check of a loaded parameter set's ``results_dir`` before any work: a smoke
    run never writes into the committed results; the folder is prepared (the scratch one seeded)."""
    from paperlib.config import ParamError
    if getattr(p, "scale", None) == "smoke" and is_published(p.results_dir):
        raise ParamError(f"results_dir: {p.results_dir!r} is the committed results folder, and a smoke run "
                         "never writes there; leave results_dir at its default (scratch/results) or name "
                         "another folder")
    return prepare_results_dir(p.results_dir, log)


GPU_LABEL = re.compile(r"\bnvidia\b|\binstinct\b|\bgpu\b|^cuda", re.IGNORECASE)   # get_device_name's vendors


def is_gpu_label(label) -> bool:
    """Whether a row's ``device`` label names a GPU: rows record ``torch.cuda.get_device_name``
    (``NVIDIA H200``, ``AMD Instinct MI300X``) or the CPU's model name (``AMD EPYC 9B14``, and an
    APU's ``... with Radeon Graphics`` is a CPU); a missing label is a CPU's, from before rows named it."""
    return isinstance(label, str) and GPU_LABEL.search(label) is not None


def git_commit(repo_dir: Path | None = None) -> str:
    """HEAD of the checkout, with ``+dirty`` when files outside ``results/`` differ from it: tracked
    files changed, or new files git does not ignore (a module or parameter file not yet added).

    The outputs a run writes (executed notebooks, tables, figures under ``results/``) are tracked
    files too, so counting them would mark every run dirty; only changes to code, parameters and
    documentation say that the outputs may not come from the named commit.  (Before 2026-11-30,
    commit dbc0f88, results/ counted too.)
    """
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=cwd, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--",
                                ":/", ":(top,exclude)results"],   # the whole checkout but results/
                               capture_output=True, text=True, cwd=cwd, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict:
    """Package versions, device and machine: what a manifest records besides parameters."""
    import torch

    from paperlib.train.loop import cpu_has_native_bf16, resolve_precision
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    now = git_commit()
    started = start_commit()
    return {
        "commit": started,   # the code the run started from; commit_at_end when HEAD or its state moved
        **({"commit_at_end": now} if now != started else {}),
        "python": platform.python_version(),
        "packages": versions,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "precision_auto": resolve_precision("auto"),   # what `precision: auto` trains in here
        "machine": platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_manifest(path: str | Path, params: Mapping, sections: Mapping[str, float], extra=None) -> dict:
    """Parameters, environment, wall time per section and the artifacts the run used (section, kind,
    role, key, seconds built here: what a later run's estimate reads, :mod:`paperlib.costs`), as JSON
    (atomically)."""
    from paperlib.cache import canonical, used_artifacts, write_json_atomic
    manifest = {"params": canonical(params), "environment": environment(),
                "wall_seconds": dict(sections), "total_wall_seconds": float(sum(sections.values())),
                "artifacts": used_artifacts()}
    if extra:
        manifest.update(canonical(dict(extra)))
    if _is_writer():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, manifest)
    return manifest


RUN_ENV = "PAPERLIB_RUN"   # "<notebook>:<scale>", set by run_all for the kernels it starts


def say_in_terminal(text: str) -> None:
    """Under run_all (``$PAPERLIB_RUN`` names the notebook), a line on the kernel's own stderr, which
    is run_all's terminal, not the notebook; elsewhere nothing (the caller's log shows it)."""
    import sys
    notebook = os.environ.get(RUN_ENV, "").partition(":")[0]
    if notebook and sys.__stderr__ is not None:
        print(f"[{notebook}] {text}", file=sys.__stderr__, flush=True)


class Timer:
    """Wall time per named section: ``with timer("pretrain"): ...``.

    Under ``run_all`` (``$PAPERLIB_RUN`` names the notebook and scale) every section also prints a
    line to the kernel's own stderr, which is run_all's terminal, not the notebook: the section, its
    time, the notebook's elapsed time, and what is left, estimated from the published run's manifest
    and the recorded build costs of what this cache lacks (:mod:`paperlib.costs`); every model or
    other artifact built meanwhile gets a line too, with its recorded cost.  Artifacts used inside a
    section are listed under its name in the manifest.  Where a section of an experiment runs inside
    a notebook's, the notebook's (outermost) section names the artifacts and alone prints lines.
    """

    def __init__(self):
        self.sections: dict[str, float] = {}
        self.started = time.time()
        run = os.environ.get(RUN_ENV, "")
        self.notebook, _, self.scale = run.partition(":")
        self.unforeseen: list[str] = []   # sections the published run's manifest does not have
        announce_builds()

    def _say(self, text: str) -> None:
        say_in_terminal(text)

    def _left(self) -> str:
        from paperlib import costs
        text = costs.describe(costs.left(self.notebook, self.scale, done=self.sections))
        if self.unforeseen:   # parameters asking for more than the published run did (another seed)
            text += (f", plus what the published run did not do ({', '.join(self.unforeseen)} so far), "
                     "not in the estimate")
        return text

    def _forecast(self, section: str) -> str:
        from paperlib import costs
        text = _section_forecast(self.notebook, self.scale, section)
        # only beside a published run that timed its sections (without one nothing is estimated);
        # work the published run did under the same section name (another seed's) is not seen here
        if (text == NOT_PUBLISHED and section not in self.unforeseen
                and costs.published_manifest(self.notebook, self.scale).get("wall_seconds")):
            self.unforeseen.append(section)
        return text

    def __call__(self, name: str):
        timer = self

        class _Section:
            def __enter__(self):
                from paperlib.cache import current_section, set_section
                self.t0 = time.time()
                # the outermost section names the artifacts and speaks in the terminal: a notebook's
                # section (its manifest's) holds the sections of the experiments it calls
                self.outer = current_section()
                if not self.outer:
                    set_section(name)
                if timer.notebook and not self.outer:
                    timer._say_safely(lambda: f"{name} ... ({timer._forecast(name)})")

            def __exit__(self, *exc):
                from paperlib.cache import set_section
                set_section(self.outer)
                took = time.time() - self.t0
                timer.sections[name] = timer.sections.get(name, 0.0) + took
                if timer.notebook and not self.outer:
                    timer._say_safely(lambda: f"{name}: {_minutes(took)}; elapsed "
                                              f"{_minutes(time.time() - timer.started)}; {timer._left()}")
        return _Section()

    def _say_safely(self, line) -> None:
        """Print ``line()``; an estimate that fails (a damaged manifest) never stops the notebook."""
        try:
            text = line()
        except Exception as err:  # noqa: BLE001
            text = f"(no estimate: {type(err).__name__}: {err})"
        self._say(text)


NOT_PUBLISHED = "not in the published run"


def _section_forecast(notebook: str, scale: str, section: str) -> str:
    """``published run: 8 s; 2 artifacts to build here, ~6 min``: what a section start line says."""
    from paperlib import costs
    manifest = costs.published_manifest(notebook, scale)
    published = manifest.get("wall_seconds", {}).get(section)
    if published is None:
        return NOT_PUBLISHED
    text = f"published run: {_minutes(float(published))}"
    if "artifacts" in manifest:
        text += f"; here {costs.describe(costs.left(notebook, scale, sections=[section]))}"
    return text


_ANNOUNCING = [False]


def announce_builds() -> None:
    """Under run_all, a terminal line whenever the cache starts or finishes building an artifact,
    with what such a build cost when recorded (installed once per process; nothing elsewhere).
    Called by :func:`paperlib.notebook.setup` too, so that what a notebook renders before its
    first section (a split) is announced."""
    if _ANNOUNCING[0] or not os.environ.get(RUN_ENV):
        return
    from paperlib import cache, costs
    from paperlib.cache import canonical

    def hook(event: str, info: dict) -> None:
        params = canonical(info["params"])
        role = params.get("role", "") if isinstance(params, dict) else ""
        what = f"{info['kind']}{' (' + role + ')' if role else ''} {info['key'][:8]}"
        if event == "start":
            scale = os.environ.get(RUN_ENV, "").partition(":")[2]
            cost = costs.expected_build(info["kind"], role, info["key"]) if scale == costs.COSTS_SCALE else ""
            say_in_terminal(f"  building {what}" + (" (resuming)" if info.get("resumed") else "")
                            + (f": {cost}" if cost else ""))
        else:
            say_in_terminal(f"  built {what} in {_minutes(info['seconds'])}")
    cache.BUILD_HOOKS.append(hook)
    _ANNOUNCING[0] = True


def _minutes(seconds: float) -> str:
    from paperlib.costs import minutes
    return minutes(seconds)


def to_markdown(df: pd.DataFrame, path: str | Path | None = None, floatfmt=".1f") -> str:
    """A Markdown table (written next to the CSV when ``path`` is given).  Floats in ``floatfmt``,
    except that a missing value is blank and a small nonzero one (a learning rate, 1e-4) keeps two
    significant digits instead of showing as 0.0."""
    def fmt(v):
        if isinstance(v, float):
            if v != v:
                return ""
            if v != 0 and abs(v) < 0.05:
                return format(v, ".2g")
            return format(v, floatfmt)
        return str(v)
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    text = "\n".join(lines) + "\n"
    if path is not None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return text

