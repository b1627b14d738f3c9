"""The main job: every notebook in notebooks/ executed by papermill at one scale.

    python -m paperlib.run_all                          # embedded scale, all notebooks, into scratch/results
    python -m paperlib.run_all --scale smoke --only foundation
    python -m paperlib.run_all --publish                # into the committed results/ (on purpose only)

Each notebook ``notebooks/<name>.ipynb`` runs with ``params/<name>/<scale>.yaml`` and is written,
executed, to ``<out>/<name>/<name>.ipynb``, and only once every cell has run: a failed run leaves
its output in ``<name>.partial.ipynb`` beside it.  ``<out>`` is the scratch results folder
(``scratch/results``, seeded with a copy of the committed results) unless ``--publish`` names the
committed ``results/`` or ``--out`` another folder; a smoke run is never published.  Trained models
and evaluations are shared through the artifact cache, so later notebooks reuse earlier ones' work.
The wall time of each notebook is recorded in ``<out>/run_all_<scale>.json``; at the end the papers'
``<out>/<paper>/claims.csv`` are gathered into ``<out>/claims.csv`` (:func:`paperlib.compare.collect_claims`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from paperlib.assets import configure_environment, repo_root

ORDER = ("foundation", "eftclip", "cleanerclip", "abd", "cfbd")


def notebooks(only: list[str] | None = None) -> list[str]:
    root = repo_root() / "notebooks"
    found = sorted(p.stem for p in root.glob("*.ipynb"))
    names = [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]
    if only:
        unknown = [n for n in only if n not in found]
        if unknown:
            raise SystemExit(f"unknown notebook(s) {unknown}; available: {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the kernels started meanwhile (they inherit the environment);
    the caller's values are restored."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def published_minutes(name: str, scale: str) -> float | None:
    """The published run's wall time of notebook ``name`` at ``scale`` (its manifest), if any."""
    from paperlib.costs import published_sections
    sections = published_sections(name, scale)
    return sum(sections.values()) / 60 if sections else None


def reproduce_estimate(names: list[str] | None = None, scale: str = "embedded", rows_dir: str | None = None) -> str:
    """What retraining everything costs here.  Where the published manifests list the artifacts their
    runs used, the sum of :func:`paperlib.costs.left` over the notebooks on the (empty) cache in use;
    otherwise what the cold caches recorded in ``results/benchmarks/cache_costs.csv`` took in all."""
    from paperlib import costs
    seen: set = set()   # an artifact two notebooks share (the base, the defence matrix) is built once
    estimates = [costs.left(n, scale, rows_dir=rows_dir, seen=seen) for n in (names or notebooks())]
    if estimates and all(e is not None and e.known for e in estimates):
        total = sum(estimates, costs.Estimate(known=True))
        return (f"{costs.describe(total)} for {len(estimates)} notebook(s) on 2 cores of this CPU kind "
                "(the published runs' artifacts, each at its recorded build cost)")
    from paperlib.train.loop import cpu_has_native_bf16
    recorded = costs.recorded_total(cpu_kind=str(cpu_has_native_bf16()))   # on a GPU too: the CPU's hours
    if recorded is None:
        return f"no recorded build costs for this kind of machine in {costs.COSTS_FILE.as_posix()}"
    seconds, artifacts = recorded
    return (f"at least {seconds / 3600:.1f} h on 2 cores of this CPU kind: what the {artifacts} artifacts "
            f"of the cold caches recorded in {costs.COSTS_FILE.as_posix()} took, which do not cover "
            "every notebook (a lent GPU is far faster)")


@contextlib.contextmanager
def progress_bars_off():
    """Hide paperlib's progress bars in the kernels started meanwhile (they inherit the environment):
    in a saved notebook every redraw would be a separate output.  The caller's setting is restored."""
    from paperlib.progress import ENV
    before = os.environ.get(ENV)
    os.environ[ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def _ipc_kernel_manager(folder: str):
    """A kernel manager whose kernels talk over local IPC sockets in ``folder``: nothing listens on
    a TCP port, and the kernel has no 'TCP without encryption' warning to print.  Its kernels leave
    the process's own stdout and stderr alone (``capture_fd_output`` off): the progress lines written
    there (:func:`paperlib.results.say_in_terminal`) reach run_all's terminal and stay out of the
    executed notebook, which keeps what the cells print."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(Path(folder) / "kernel"))
            super().__init__(**kwargs)

        def format_kernel_cmd(self, extra_arguments=None):
            return super().format_kernel_cmd([*(extra_arguments or []), "--IPKernelApp.capture_fd_output=False"])
    return IPCKernelManager


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository root where it lies inside it, else absolute (the kernel
    runs in the repository root, so a relative path from elsewhere would point somewhere else)."""
    p, root = Path(path).resolve(), repo_root().resolve()
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)


def run_notebook(name: str, scale: str, out_dir: Path, results_dir: str | None = None,
                 log_output: bool = False) -> float:
    import papermill as pm
    root = repo_root()
    params_file = root / "params" / name / f"{scale}.yaml"
    if not params_file.is_file():
        raise SystemExit(f"{name}: no parameter file {params_file} for scale {scale!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # relative to the repository (the kernel's working directory): the injected cell of a committed
    # notebook names no path of the machine that ran it
    parameters = {"params_file": repo_relative(params_file)}
    if results_dir is not None:
        parameters["results_dir"] = repo_relative(results_dir)
    # papermill saves the output after every cell: run into a side file and put it in place only
    # when every cell ran, so a failed or killed run never replaces the last complete notebook (the
    # side file stays for reading the error)
    final = out_dir / f"{name}.ipynb"
    partial = out_dir / f"{name}.partial.ipynb"
    t0 = time.time()
    from paperlib.costs import RUN_RESULTS_ENV
    rows = Path(results_dir) if results_dir is not None else None
    with progress_bars_off(), environment(PAPERLIB_RUN=f"{name}:{scale}",
                                          **({RUN_RESULTS_ENV: str(rows.resolve())} if rows else {})), \
            tempfile.TemporaryDirectory(prefix="paperlib-kernel-") as sockets:
        pm.execute_notebook(str(root / "notebooks" / f"{name}.ipynb"), str(partial),
                            parameters=parameters, cwd=str(root), kernel_name="python3",
                            log_output=log_output, progress_bar=False,
                            kernel_manager_class=_ipc_kernel_manager(sockets))
    paths_relative(partial, input_path=root / "notebooks" / f"{name}.ipynb", output_path=final)
    os.replace(partial, final)
    return time.time() - t0


def paths_relative(notebook: Path, input_path: Path, output_path: Path) -> None:
    """Papermill records the paths it read and wrote in the notebook's metadata; a committed
    notebook names them relative to the repository, not as the machine that ran it had them."""
    import nbformat
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # noqa: BLE001  (not a notebook papermill wrote: nothing to rewrite, never a failed run)
        return
    meta = nb.metadata.get("papermill")
    if meta is None:
        return
    meta["input_path"], meta["output_path"] = repo_relative(input_path), repo_relative(output_path)
    tmp = notebook.with_name(f".{notebook.name}.tmp{os.getpid()}")
    nbformat.write(nb, tmp)
    os.replace(tmp, notebook)


def main(argv=None) -> int:
    from paperlib.results import (PUBLISHED, RUN_COMMIT_ENV, default_results_dir, is_published,
                                  prepare_results_dir, scratch_root, start_commit)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="embedded", choices=("smoke", "embedded", "gpu", "paper"))
    ap.add_argument("--only", nargs="*", help="notebook names (default: all)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", help="folder for executed notebooks and results (default: scratch/results)")
    where.add_argument("--publish", action="store_true",
                       help="write the executed notebooks and every result into the committed results/ "
                            "(the only run that changes them; never at the smoke scale)")
    where.add_argument("--reproduce", action="store_true",
                       help="retrain everything: a cache of its own (.cache/reproduce) and an empty results "
                            "folder (scratch/reproduce), so no model and no committed row is reused; "
                            "prints its estimate first, and resumes where it stopped when run again")
    args = ap.parse_args(argv)
    if args.publish and args.scale == "smoke":
        raise SystemExit("--publish: a smoke run never writes into the committed results/; drop --publish "
                         "(smoke results go to scratch/results) or choose another scale")
    configure_environment()
    if args.reproduce:
        os.environ["PAPERLIB_CACHE"] = str(repo_root() / ".cache" / "reproduce")
        args.out = str(scratch_root() / "reproduce")
        estimate = reproduce_estimate(notebooks(args.only), args.scale, rows_dir=args.out)
        print(f"[run_all] retraining everything from scratch: {estimate}", flush=True)
    results_dir = PUBLISHED if args.publish else (args.out or default_results_dir())
    if is_published(results_dir) and (args.scale == "smoke" or not args.publish):
        raise SystemExit(f"--out {args.out}: that is the committed results folder; only --publish writes there, "
                         "and never at the smoke scale")
    base_out = prepare_results_dir(results_dir, log=lambda m: print(f"[run_all] {m}", flush=True))
    # the notebooks' kernels record (and are checked against) the commit run_all started from, so an
    # edit made while a long publish runs neither stops it half-way nor relabels its later notebooks
    inherited = os.environ.get(RUN_COMMIT_ENV)
    os.environ[RUN_COMMIT_ENV] = start_commit()
    try:
        return _run_notebooks(args, base_out)
    finally:   # run_all called in-process (tests, a kernel) leaves the environment as it found it
        if inherited is None:
            os.environ.pop(RUN_COMMIT_ENV, None)
        else:
            os.environ[RUN_COMMIT_ENV] = inherited


def _run_notebooks(args, base_out: Path) -> int:
    """Execute the chosen notebooks into ``base_out``, then write run_all's record and the claims."""
    print(f"[run_all] results go to {base_out}"
          + (" (published)" if args.publish else " (the committed results/ stay as they are; "
                                                 "--publish writes there)"), flush=True)
    timings = {}
    names = notebooks(args.only)
    known = {n: published_minutes(n, args.scale) for n in names}
    if not args.reproduce and all(v is not None for v in known.values()):
        print(f"[run_all] the published run took {sum(known.values()):.0f} min for these notebooks "
              "(on its own cache; a cold cache takes far longer)", flush=True)
    t_start = time.time()
    from paperlib import costs
    for i, name in enumerate(names):
        ref = known[name]
        print(f"[run_all] {name} at scale {args.scale} ({i + 1}/{len(names)}; elapsed "
              f"{(time.time() - t_start) / 60:.1f} min"
              + (f"; the published run took {ref:.1f} min, here "
                 f"{costs.describe(costs.left(name, args.scale, rows_dir=str(base_out)))}"
                 if ref is not None else "") + ") ...", flush=True)
        seconds = run_notebook(name, args.scale, base_out / name, str(base_out))
        timings[name] = seconds
        print(f"[run_all] {name}: {seconds / 60:.1f} min", flush=True)
    path = base_out / f"run_all_{args.scale}.json"
    if args.only and path.is_file():   # a partial run keeps the other notebooks' timings
        timings = {**json.loads(path.read_text()).get("wall_seconds", {}), **timings}
    record = {"scale": args.scale, "wall_seconds": timings, "total_seconds": sum(timings.values())}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    print(json.dumps(record, indent=1))
    # every paper's claims in one file, <out>/claims.csv (the committed one only under --publish)
    from paperlib.compare import collect_claims
    collect_claims(base_out, log=lambda m: print(f"[run_all] {m}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
