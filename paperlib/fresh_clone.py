"""Time a Makefile target as a new user meets it: in a fresh clone of this repository's HEAD.

    python -m paperlib.fresh_clone test              # make test (what CI runs), into scratch
    python -m paperlib.fresh_clone all --publish     # make all, the row into results/benchmarks/
    python -m paperlib.fresh_clone all --only foundation abd   # make all over some notebooks only

The clone gets no cache and no offline assets of this checkout (``PAPERLIB_CACHE``,
``PAPERLIB_ASSETS`` and run_all's variables are dropped), so ``make`` sets everything up and trains
or reuses what a fresh machine would.  What this machine cannot make fresh is recorded instead of
hidden: pip's download cache and apt's installed packages are the machine's, and the load average
at the start and end says whether other work shared the cores.  One row per measurement goes to
``benchmarks/fresh_clone.csv`` (target, seconds, exit status, commit, CPU, cores, load, log, and
``notebooks``: those ``--only`` named, empty for all of them); the README's two-commands section
quotes it (``python -m paperlib.readme``): a whole ``make all``, else says what a partial one took.  Uncommitted changes are
not in the clone: the row names the commit measured.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paperlib.assets import repo_root

FILE = Path("benchmarks") / "fresh_clone.csv"
COLUMNS = ("target", "seconds", "rc", "commit", "cpu", "cores", "load_start", "load_end", "measured", "log",
           "notebooks")
KEY = ("target", "commit", "measured")
# what a run of this checkout sets and a new user's shell would not have
DROPPED_ENV = ("PAPERLIB_CACHE", "PAPERLIB_ASSETS", "PAPERLIB_SCRATCH", "PAPERLIB_RUN", "PAPERLIB_RUN_RESULTS",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VIRTUAL_ENV")


def clean_environment(env: dict | None = None) -> dict:
    """``env`` (default: this process's) without the variables a run of this checkout sets."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in DROPPED_ENV}


def measure(target: str, log_path: Path, keep: bool = False, say=print, record=None, only=()) -> dict:
    """Clone HEAD into a temporary folder, run ``make <target>`` there (output to ``log_path``) and
    return the measurement row, given first to ``record`` (so that it is written before the clone,
    gigabytes with its environment, is deleted); the clone is deleted unless ``keep``.  ``only``:
    the notebooks run_all runs (``RUN_ARGS=--only ...``; all when empty)."""
    from paperlib.bench import cpu_model
    from paperlib.results import git_commit
    root = repo_root()
    commit = git_commit()
    where = Path(tempfile.mkdtemp(prefix="paperlib-fresh-"))
    clone = where / "repo"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    say(f"[fresh_clone] make {target} in {clone} (commit {commit.removesuffix('+dirty')}"
        f"{'; uncommitted changes are not in the clone' if commit.endswith('+dirty') else ''}); log {log_path}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    t0 = time.time()
    env = clean_environment()
    if only:
        env["RUN_ARGS"] = "--only " + " ".join(only)
    with open(log_path, "w") as log:
        rc = subprocess.run(["make", target], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - t0
    load_end = os.getloadavg()[0]
    say(f"[fresh_clone] make {target}: rc {rc} after {seconds / 60:.1f} min (load average {load_start:.1f} at "
        f"the start, {load_end:.1f} at the end)")
    row = {"target": target, "seconds": round(seconds, 1), "rc": rc, "commit": commit.removesuffix("+dirty")[:12],
           "cpu": cpu_model(), "cores": os.cpu_count(), "load_start": round(load_start, 2),
           "load_end": round(load_end, 2), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "log": log_path.name,
           "notebooks": " ".join(only)}
    if record is not None:
        record(row)
    if keep:
        say(f"[fresh_clone] the clone stays in {clone}")
    else:
        shutil.rmtree(where, ignore_errors=True)
    return row


def sentence(res: Path) -> str:
    """What ``res/benchmarks/fresh_clone.csv`` says, for the README: the latest successful
    measurement of ``make all`` (over every notebook) and of ``make test``, or that there is none;
    where ``make all`` was timed over some notebooks only, the latest such time too, saying which."""
    import pandas as pd
    path = Path(res) / FILE
    rows = pd.read_csv(path, dtype={"commit": str}) if path.is_file() else pd.DataFrame(columns=list(COLUMNS))
    # rows written before --only existed (no column, or an empty cell) ran every notebook
    rows["notebooks"] = rows["notebooks"].fillna("").astype(str) if "notebooks" in rows.columns else ""
    rows["when"] = pd.to_datetime(rows["measured"], utc=True)

    def timed(r) -> str:
        busy = f", beside other work (load average {r.load_start:.1f} at the start)" if r.load_start >= 0.5 else ""
        return f"{r.seconds / 60:.1f} min (commit {r.commit[:7]}, {r.cpu}, {r.cores} cores{busy})"
    parts = []
    for target in ("all", "test"):
        done = rows[(rows.target == target) & (rows.rc.astype(int) == 0)].sort_values("when")
        whole, some = done[done.notebooks == ""], done[done.notebooks != ""]
        text = f"`make {target}` " + (timed(whole.iloc[-1]) if len(whole) else "not timed yet")
        if len(some) and (not len(whole) or some.iloc[-1].when > whole.iloc[-1].when):
            r = some.iloc[-1]
            text += f" (over {r.notebooks.replace(' ', ', ')} only: {timed(r)})"
        parts.append(text)
    where = ("[fresh_clone.csv](results/benchmarks/fresh_clone.csv)" if path.is_file()
             else "results/benchmarks/fresh_clone.csv, not written yet")
    return (f"Timed in a fresh clone with an empty cache (`python -m paperlib.fresh_clone all|test --publish`, "
            f"{where}; pip's download cache was the machine's): " + "; ".join(parts) + ".")


def main(argv=None) -> int:
    from paperlib.results import PUBLISHED, default_results_dir, prepare_results_dir, upsert_csv
    ap = argparse.ArgumentParser(prog="python -m paperlib.fresh_clone", description=__doc__.split("\n\n")[0])
    ap.add_argument("target", choices=("test", "all", "reproduce"), help="the Makefile target to time")
    ap.add_argument("--publish", action="store_true", help="write the row into the committed results/")
    ap.add_argument("--keep", action="store_true", help="keep the clone (to read what it made)")
    ap.add_argument("--only", nargs="+", default=(), metavar="NOTEBOOK",
                    help="make all over these notebooks only (run_all --only; recorded in the row)")
    args = ap.parse_args(argv)
    if args.only and args.target == "test":
        ap.error("--only names notebooks of make all / reproduce, not of make test")
    # the timed run is a clone of HEAD, so uncommitted changes here cannot reach its row
    results = prepare_results_dir(PUBLISHED if args.publish else default_results_dir(), check_dirty=False)
    log_path = repo_root() / "scratch" / "logs" / f"fresh_clone_{args.target}_{time.strftime('%Y%m%dT%H%M%S')}.log"
    def record(row: dict) -> None:
        upsert_csv(Path(results) / FILE, [row], KEY, COLUMNS)
        print(f"[fresh_clone] row written to {Path(results) / FILE}; deleting the clone", flush=True)
    row = measure(args.target, log_path, keep=args.keep, record=record, say=lambda m: print(m, flush=True),
                  only=tuple(args.only))
    return 0 if row["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
