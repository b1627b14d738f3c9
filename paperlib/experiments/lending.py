"""A GPU lending in one prepared call: what travels to the lent machine, and what runs there.

A lending is short (minutes of device time, a bare machine each time, 64 MiB carried with the
working tree, nothing reachable from it), so everything is prepared here first::

    python -m paperlib.experiments.lending prepare params/cfbd/embedded.yaml --module cfbd
    # the device tool's call, from the repository root (the tree and .gpu/ travel):
    python3 -m paperlib.experiments.lending run params/cfbd/embedded.yaml --module cfbd \\
        --pairs badnet:0 sig:0 ... --jobs 16 --budget 540
    python -m paperlib.experiments.lending take lending.tgz --publish   # back here (CFBD's files)

``prepare`` writes ``.gpu/``: the bundle (a vocabulary snapshot, the sprite banks cut to the kept
classes, this machine's fitted triggers: :func:`parallel_seeds.bundle`), WordNet zipped, and wheels
of the packages the GPU image lacks, at this environment's versions; it refuses a ``.gpu/`` larger
than the carry limit.  ``run`` installs those, renders the data, starts the (attack, seed) jobs of
``parallel_seeds run`` until ``--budget`` seconds after the call began, and packs what the jobs
wrote into ``$OUT/lending.tgz`` with their logs.  Only the standard library is imported before
the wheels are in place; the work itself runs in subprocesses that see them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

CARRY_LIMIT = 64 * 2**20   # what one device call carries, the working tree included
WHEELS = ("open_clip_torch", "nltk", "ftfy", "wcwidth")   # what the GPU image lacked on 2026-12-04
# and what a module's jobs need beyond (EftCLIP's oracle runs in ultralytics, which imports polars and
# its platform client only where the project does not go)
MODULE_WHEELS = {"eftclip": ("ultralytics", "ultralytics-thop")}
SHARED_RESULTS_MODULES = ("cfbd", "eftclip")   # their jobs write into the carried results/
SITE = Path("/tmp/site")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rezip_lzma(path: Path) -> None:
    """Rewrite the zip (an ``.npz``) at ``path`` with LZMA members, the same members and bytes."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_LZMA) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    os.replace(tmp, path)


def prepare(params: Path, module: str, out: Path, wheels: bool = True, log=print) -> dict[str, int]:
    """Write ``out`` (bundle/, wordnet.zip, whl/) for a lending of ``params``; returns each part's
    bytes.  Raises SystemExit when the parts pass :data:`CARRY_LIMIT`."""
    from paperlib.assets import asset_root
    from paperlib.config import read_yaml
    from paperlib.experiments import parallel_seeds as ps
    from paperlib.results import git_commit
    commit = git_commit()   # before .gpu/ is written: the device gets the working tree, so its rows come
    if commit.endswith("+dirty"):   # from exactly this commit or not at all (PAPERLIB_PUBLISH_DIRTY does not apply)
        raise SystemExit(f"lending prepare: this checkout's code, parameters or docs differ from its commit "
                         f"{commit.removesuffix('+dirty')[:12]} (git status lists them); the device gets the "
                         "working tree, and take compares the returned files against the commit: commit first")
    if commit == "unknown":
        raise SystemExit("lending prepare: git cannot read this checkout's commit, which take compares the "
                         "returned files against; prepare from a git clone")
    raw = ps.fp32_params(params, read_yaml(Path(params).read_text()).get("seeds", [0]), module=module)
    if (out / "bundle").exists():
        shutil.rmtree(out / "bundle")
    for bank in ps.bundle(raw, out / "bundle", module):
        if bank.suffix == ".npz":   # LZMA: a quarter smaller than numpy's deflate, and np.load reads it
            _rezip_lzma(bank)
    wordnet = asset_root() / "nltk_data" / "corpora" / "wordnet"
    if not wordnet.is_dir():
        raise SystemExit(f"{wordnet}: WordNet is not set up here (python -m paperlib.assets setup-wordnet)")
    tmp = out / "wordnet.zip.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_LZMA) as z:   # 7.7 MiB, deflate's 10.5
        for f in sorted(wordnet.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(wordnet.parent))
    os.replace(tmp, out / "wordnet.zip")
    if wheels:
        (out / "whl").mkdir(parents=True, exist_ok=True)
        pins = {_norm(name): metadata.version(name) for name in (*WHEELS, *MODULE_WHEELS.get(module, ()))}
        for f in (out / "whl").glob("*.whl"):   # a wheel of another version (an older prepare) goes
            name, version = f.name.split("-")[:2]
            if pins.get(_norm(name)) != version:
                f.unlink()
        have = {_norm(f.name.split("-")[0]) for f in (out / "whl").glob("*.whl")}
        todo = [f"{name}=={version}" for name, version in pins.items() if name not in have]
        if todo:
            log(f"[lending] downloading wheels: {' '.join(todo)}")
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            "-d", str(out / "whl"), *todo], check=True)
    (out / "commit.txt").write_text(commit + "\n")   # what `take` compares the returned files against
    sizes = {p.name: _size(p) if p.is_dir() else p.stat().st_size for p in sorted(out.iterdir())}
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    sizes["tracked tree"] = sum(Path(os.fsdecode(f)).stat().st_size for f in tracked if f and Path(os.fsdecode(f)).is_file())
    total = sum(sizes.values())
    log(f"[lending] {out}: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
        + f"; {total / 2**20:.1f} of the {CARRY_LIMIT / 2**20:.0f} MiB a call carries")
    if total > CARRY_LIMIT:
        raise SystemExit(f"{out}: {total / 2**20:.1f} MiB, over the {CARRY_LIMIT / 2**20:.0f} MiB a call carries")
    return sizes


def _env(repo: Path, gpu: Path, cache: Path, assets: Path) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(SITE), str(repo), os.environ.get("PYTHONPATH", "")) if p),
            "PAPERLIB_CACHE": str(cache), "PAPERLIB_ASSETS": str(assets),
            "PAPERLIB_VOCABULARY": str(gpu / "bundle" / "vocabulary.json")}


def setup(gpu: Path, env: dict, install: bool, log=print) -> None:
    """Install the carried wheels, the sprite banks, WordNet and the fitted triggers on this machine."""
    if install and list((gpu / "whl").glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", str(SITE), *map(str, sorted((gpu / "whl").glob("*.whl")))],
                       check=True)
    cache, assets = Path(env["PAPERLIB_CACHE"]), Path(env["PAPERLIB_ASSETS"])
    (cache / "sprites").mkdir(parents=True, exist_ok=True)
    for bank in (gpu / "bundle" / "sprites").glob("*.npz"):
        shutil.copy2(bank, cache / "sprites" / bank.name)
    corpora = assets / "nltk_data" / "corpora"
    corpora.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(gpu / "wordnet.zip") as z:
        z.extractall(corpora)
    if (gpu / "bundle" / "cache").is_dir():
        subprocess.run([sys.executable, "-m", "paperlib.cache", "import", str(gpu / "bundle" / "cache")],
                       env=env, check=True)
    log(f"[lending] set up: {cache}, {assets}")


def _step(args: list[str], env: dict, logfile: Path, log=print) -> int:
    t0 = time.time()
    with open(logfile, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "paperlib.experiments.parallel_seeds", *args], env=env,
                            stdout=f, stderr=subprocess.STDOUT).returncode
    log(f"[lending] {args[0]}: rc {rc}, {time.time() - t0:.0f} s")
    return rc


def pack(work: Path, results: Path, since: float, out: Path, gpu: Path | None = None) -> Path:
    """``out/lending.tgz``: the results files the jobs wrote or changed after ``since`` (CFBD's jobs
    write into ``results``, the carried copy of the committed folder, so the files come back whole;
    the matrix's each into their own folder under ``work``), the jobs' logs and parameters."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "lending.tgz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(results.rglob("*")) if results.is_dir() else ():
            if f.is_file() and f.suffix in (".csv", ".json", ".md") and f.stat().st_mtime >= since:
                tar.add(f, f"results/{f.relative_to(results)}")
        if gpu is not None and (gpu / "commit.txt").is_file():
            tar.add(gpu / "commit.txt", "commit.txt")
        for pattern in ("*/defences/*.csv", "*/log.txt", "*/params.yaml", "jobs.csv", "*.log"):
            for f in sorted(work.glob(pattern)):
                if f.is_file() and not f.is_relative_to(results):
                    tar.add(f, f"work/{f.relative_to(work)}")
    os.replace(tmp, out / "lending.tgz")
    return out / "lending.tgz"


def jobs_outcome(jobs_csv: Path) -> tuple[list[str], list[str], list[str]]:
    """(finished, stopped, failed) job names of ``parallel_seeds run``'s jobs.csv: a job the deadline
    stopped ends by SIGTERM (a negative exit status) or never started (no status).  Read with the
    standard library's csv, as the rest of this module before the lent machine is set up."""
    import csv
    finished, stopped, failed = [], [], []
    with open(jobs_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        name, code = row["job"], (row.get("rc") or "").strip()
        if code == "" or float(code) < 0:
            stopped.append(name)
        else:
            (finished if float(code) == 0 else failed).append(name)
    return finished, stopped, failed


def run(a: argparse.Namespace, log=print) -> int:
    t0 = time.time()
    repo, gpu, work = Path.cwd(), Path(a.gpu).resolve(), Path(a.work).resolve()
    out = Path(a.out or os.environ.get("OUT") or work / "out")
    env = _env(repo, gpu, Path(a.cache).resolve(), Path(a.assets).resolve())
    if work.exists():   # a warm machine keeps the last call's folder: its jobs.csv and logs are not this call's
        shutil.rmtree(work)
    work.mkdir(parents=True)
    # CFBD's jobs write into one folder: by default the carried copy of the committed results
    results = Path(a.results or (repo / "results" if a.module in SHARED_RESULTS_MODULES else work / "results")).resolve()
    rc = 1
    try:
        setup(gpu, env, not a.skip_pip, log)
        log(f"[lending] setup {time.time() - t0:.0f} s")
        common = [str(a.params), "--module", a.module, "--device", a.device, "--work", str(work)]
        which = ["--pairs", *a.pairs] if a.pairs else ["--seeds", *map(str, a.seeds)]
        rc = _step(["data", *common, *which, "--workers", str(a.workers)], env, work / "data.log", log)
        if rc == 0:
            rc = _step(["run", *common, *which, "--jobs", str(a.jobs), "--threads", str(a.threads),
                        "--until", str(t0 + a.budget), "--results", str(results)], env, work / "run.log", log)
        if (work / "jobs.csv").is_file():
            finished, stopped, failed = jobs_outcome(work / "jobs.csv")
            log(f"[lending] jobs: {len(finished)} finished, stopped by the budget {stopped or 'none'}, "
                f"failed {failed or 'none'} (their logs: work/<job>/log.txt in the tar)")
            rc = rc or (1 if failed else 0)
    finally:   # whatever happened, what there is comes back
        tgz = pack(work, results, t0, out, gpu)
        log(f"[lending] {tgz} ({tgz.stat().st_size / 2**20:.1f} MiB); total {time.time() - t0:.0f} s")
    return rc


def take(tgz: Path, into: Path, log=print) -> list[Path]:
    """Back here: the results files of a CFBD lending's ``tgz`` (whole files: the committed ones plus
    the jobs' rows) replace those of ``into``, each only if ``into``'s file is still the one the
    lending carried (``git show <commit>:results/<file>``, the commit ``prepare`` recorded), so no
    row written here since is lost; a file changed since is refused, by name, for a merge by hand, and
    so is a returned file lacking a row of the carried one.  Nothing is replaced unless every file can be."""
    import tempfile

    from paperlib.assets import repo_root
    repo = repo_root()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
        tmp = Path(tmp)
        if not (tmp / "commit.txt").is_file():
            raise SystemExit(f"{tgz}: no commit.txt (the lending's commit); prepare records it")
        commit = (tmp / "commit.txt").read_text().strip()
        files = sorted(f for f in (tmp / "results").rglob("*") if f.is_file()) if (tmp / "results").is_dir() else []
        if not files:
            log(f"[lending] {tgz}: no results files (a defence-matrix lending's rows are under work/: "
                "extract it and run parallel_seeds merge --work <folder>)")
            return []
        refused, lost = [], []
        for f in files:
            rel = f.relative_to(tmp / "results")
            carried = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:results/{rel.as_posix()}"],
                                     capture_output=True)
            here = into / rel
            was = carried.stdout if carried.returncode == 0 else None   # None: a file the lending made
            if (here.read_bytes() if here.is_file() else None) != was:
                refused.append(str(rel))
            elif was is not None and not set(was.decode().splitlines()) <= set(f.read_text().splitlines()):
                lost.append(str(rel))   # the jobs wrote another folder than the carried results/
        if refused:
            raise SystemExit(f"{into}: changed since the lending's commit {commit[:10]}, not replaced: "
                             f"{', '.join(refused)} (merge those rows by hand, or check out the carried files)")
        if lost:
            raise SystemExit(f"{tgz}: would drop rows of the carried {', '.join(lost)}; not replaced "
                             "(merge those rows by hand)")
        done = []
        for f in files:
            target = into / f.relative_to(tmp / "results")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target.with_name(target.name + ".tmp"))
            os.replace(target.with_name(target.name + ".tmp"), target)
            done.append(target)
    log(f"[lending] {len(done)} results files taken into {into}")
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("prepare", "run", "take"))
    ap.add_argument("params", type=Path, help="the parameter file (take: the returned lending.tgz)")
    ap.add_argument("--module", default="defences", choices=("defences", "cfbd", "eftclip"))
    ap.add_argument("--gpu", default=".gpu", help="what travels (prepare writes it, run reads it)")
    ap.add_argument("--no-wheels", action="store_true", help="prepare: no wheels (a machine that has the packages)")
    ap.add_argument("--pairs", nargs="+", default=None, help="run: attack:seed jobs in the order to start them")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run: every victim at these seeds")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--budget", type=float, default=540.0, help="run: seconds from the call's start when jobs stop")
    ap.add_argument("--work", default="/tmp/lending")
    ap.add_argument("--cache", default="/tmp/plcache")
    ap.add_argument("--assets", default="/tmp/plassets")
    ap.add_argument("--out", default=None, help="run: where lending.tgz goes (default $OUT)")
    ap.add_argument("--results", default=None,
                    help="run --module cfbd / eftclip: the folder the jobs write into (default: the carried results/)")
    ap.add_argument("--skip-pip", action="store_true", help="run: the packages are installed already")
    ap.add_argument("--publish", action="store_true", help="take: into the committed results/ (default: scratch)")
    a = ap.parse_args(argv)
    if a.step == "take":
        from paperlib.results import PUBLISHED, default_results_dir, prepare_results_dir
        # the rows were made by the lending's copy, whose commit prepare checked and take compares
        take(a.params, prepare_results_dir(PUBLISHED if a.publish else default_results_dir(), check_dirty=False))
        return 0
    if a.step == "prepare":
        prepare(a.params, a.module, Path(a.gpu), wheels=not a.no_wheels)
        return 0
    return run(a)


if __name__ == "__main__":
    raise SystemExit(main())
