"""Content-addressed artifact cache.

A trained model, a rendered split, a poisoned dataset or an evaluation is stored under
``<cache root>/<kind>/<key>/`` where ``key`` is a hash of everything that determines it: the
parameters that made it, the keys of the artifacts it was built from, and a per-kind code
version (bumped by hand when the code that builds that kind changes meaning).  Notebooks
that ask for the same clean model or victim therefore share it instead of training again.

Building happens in ``<kind>/<key>.partial/``, a directory that survives interruption: a
builder may leave checkpoints there and find them again when the same artifact is asked for
after a crash (training resumes from its last checkpoint).  Only when the builder returns is
the directory renamed to its final name, so a final directory is always complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

# Bump the version of a kind when the code that builds it changes what it produces.
CODE_VERSIONS = {
    "sprites": 1,
    "split": 2,  # 2: limited vocabularies pick well-covered classes; fewer shortcut words
    "tokens": 1,
    "model": 1,
    "poison": 1,
    "eval": 1,
    "classifier": 1,
}


def canonical(obj: Any) -> Any:
    """A JSON-able, order-independent form of ``obj`` (dataclasses, tuples, paths...)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return float(f"{obj:.12g}")
    return obj


# What this process used, for the manifest of the run (``used_artifacts``), and who hears of builds.
_USED: dict[tuple[str, str], dict] = {}
_SECTION = [""]
_STARTED = time.time()
_BUILDING = [0]          # how deep this process is in builds (a build may build what it needs)
_BUILD_SECONDS = [0.0]   # seconds this process spent in its outermost builds (nested ones inside them)
BUILD_HOOKS: list[Callable[[str, dict], None]] = []
MADE_OF_A_MODEL = ("eval", "classifier")   # kinds whose params name the model they were made from


def set_section(name: str) -> str:
    """Name the section that artifacts used from now on belong to; returns the previous name."""
    before, _SECTION[0] = _SECTION[0], name
    return before


def current_section() -> str:
    return _SECTION[0]


def used_artifacts() -> list[dict]:
    """Every artifact this process built or took from the cache (``get_or_build``, ``cached``), once
    each, in order: its section (where it was first used), kind, role, key and the seconds spent
    building it during this run, by this process or another one of the run (a parallel job; 0 when
    it was in the cache before the run began; None, with ``stood_in``, for a model whose results
    row stood in: :func:`note_model_stood_in`); for an evaluation or classifier, ``of``: the key of
    the model it was made from.
    A published run's manifest keeps this list, so a later run can tell what it will have to build
    (:mod:`paperlib.costs`)."""
    return [dict(entry) for entry in _USED.values()]


WORK_KIND = "work"   # a ledger entry that is no artifact: a unit of work a published row may stand in for


def work_key(role: str, *names: str) -> str:
    """The ledger key of a unit of work: its role and what identifies it (a CFBD screening:
    ``cfbd_set/<victim model>/<detector digest>``, the two columns its detection rows carry, so
    that :func:`paperlib.costs.stand_in_keys` finds the same key in the results files)."""
    return "/".join((role, *names))


def note_work(role: str, key: str, seconds: float, models: list[str]) -> None:
    """Record in this run's ledger a unit of work that builds no artifact of its own but may be
    skipped where its rows stand in (a CFBD screening: rendering, embedding and judging one poisoned
    set, :mod:`paperlib.experiments.cfbd_standin`): its seconds beyond this process's builds
    meanwhile (:func:`build_seconds_spent`) and ``models``, the cache names of the models whose
    rows must stand in too.  The cost estimate (:func:`paperlib.costs.section_estimate`) counts it
    except where its own rows (``key``) and every model's row stand in.  The first note of a key
    in a run is kept, like an artifact's first use."""
    _USED.setdefault((WORK_KIND, key), {"section": _SECTION[0], "kind": WORK_KIND, "role": role, "key": key,
                                        "built_seconds": round(max(0.0, seconds), 1), "models": list(models)})


def note_stood_in(role: str, key: str, models: Mapping[str, str]) -> None:
    """Record a unit of work that results rows stood in for in this run (a CFBD screening whose rows
    the files hold): no seconds were spent on it here, so none are recorded (``built_seconds`` None),
    and ``models`` (cache name -> role: its retrainings', ABL's isolation model) were not built.  A
    published run made of such entries still tells a later run without those rows what it must do
    (:func:`paperlib.costs.section_estimate` prices the models by their recorded build costs and
    counts the screening itself as uncosted)."""
    _USED.setdefault((WORK_KIND, key), {"section": _SECTION[0], "kind": WORK_KIND, "role": role, "key": key,
                                        "built_seconds": None, "models": list(models),
                                        "model_roles": dict(models)})


def note_model_stood_in(name: str, role: str) -> None:
    """Record a model (cache name ``name``, key role ``role``) whose results row stood in for it in
    this run: it was neither built nor loaded (``built_seconds`` None, ``stood_in``), so a run
    published on a cache without it still lists it, and a later run without the row (``make
    reproduce``) prices it at its recorded cost (:func:`paperlib.costs.section_estimate`).  The
    evaluations the row stands in for are not listed: the estimate leans low by them."""
    _USED.setdefault(("model", name), {"section": _SECTION[0], "kind": "model", "role": role, "key": name,
                                       "built_seconds": None, "stood_in": True})


def build_seconds_spent() -> float:
    """Seconds this process has spent building artifacts so far; a build inside another build
    counts once, within the outer one (take the difference over a stretch of work)."""
    return _BUILD_SECONDS[0]


def _note_use(kind: str, key: str, params: Any, built_seconds: float, path: Path | None = None) -> None:
    if (kind, key) in _USED and not _USED[(kind, key)].get("stood_in"):   # a stood-in model built later: noted
        return
    if path is not None:   # found complete: built by another process of this run (a parallel job)?
        try:
            if (path / "DONE").stat().st_mtime >= _STARTED:
                built_seconds = float(json.loads((path / "params.json").read_text()).get("build_seconds") or 0.0)
        except (OSError, ValueError, AttributeError):
            pass
    plain = canonical(params)
    role = plain.get("role", "") if isinstance(plain, Mapping) else ""
    _USED[(kind, key)] = {"section": _SECTION[0], "kind": kind, "role": role if isinstance(role, str) else "",
                          "key": key, "built_seconds": round(built_seconds, 1)}
    model = plain.get("model") if isinstance(plain, Mapping) and kind in MADE_OF_A_MODEL else None
    if isinstance(model, Mapping):   # what it measured: not made where that model's row stands in
        _USED[(kind, key)]["of"] = artifact_key("model", model)


def _tell(event: str, info: dict) -> None:
    """Tell the hooks; a hook that fails (a progress line) never stops a build."""
    for hook in BUILD_HOOKS:
        try:
            hook(event, info)
        except Exception as err:  # noqa: BLE001
            log.warning("build hook %r failed: %s", hook, err)


def artifact_key(kind: str, params: Any) -> str:
    """The hash that names an artifact of ``kind`` made from ``params``."""
    payload = json.dumps({"kind": kind, "version": CODE_VERSIONS.get(kind, 0),
                          "params": canonical(params)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class ArtifactCache:
    """Directory-per-artifact cache; see the module docstring."""

    def __init__(self, root: str | Path | None = None):
        if root is None:
            from paperlib.assets import cache_root
            root = cache_root()
        self.root = Path(root)

    def path(self, kind: str, params: Any) -> Path:
        return self.root / kind / artifact_key(kind, params)

    def exists(self, kind: str, params: Any) -> bool:
        """Whether the artifact is complete here (a check: the run's ledger is not told, see
        :meth:`cached`)."""
        return (self.path(kind, params) / "DONE").is_file()

    def cached(self, kind: str, params: Any) -> Path | None:
        """The artifact's directory when it is complete here, for a caller that will use it (it
        joins :func:`used_artifacts` under the current section); None when it is absent."""
        path = self.path(kind, params)
        if not (path / "DONE").is_file():
            return None
        _note_use(kind, path.name, params, 0.0, path)
        return path

    def get_or_build(self, kind: str, params: Any, builder: Callable[[Path], Any],
                     collective: bool = False) -> Path:
        """Return the directory of the artifact, calling ``builder(work_dir)`` if it is absent.

        ``builder`` writes the artifact's files into ``work_dir`` (which may already hold a
        previous attempt's checkpoints).  ``params.json`` and a ``DONE`` marker are added here.

        Under torchrun (several ranks, one file system), rank 0 alone builds and finalises; with
        ``collective=True`` (training) every rank runs the builder and rank 0 alone writes.
        """
        rank, world = _rank_world()
        final = self.path(kind, params)
        if (final / "DONE").is_file():
            log.info("cache hit %s/%s", kind, final.name)
            _note_use(kind, final.name, params, 0.0, final)
            return final
        work = final.with_name(final.name + ".partial")
        if rank == 0:
            work.mkdir(parents=True, exist_ok=True)
        _barrier(world)
        resumed = any(work.iterdir())
        log.info("building %s/%s%s", kind, final.name, " (resuming)" if resumed else "")
        start = time.time()
        info = {"kind": kind, "key": final.name, "params": params, "resumed": resumed}
        if rank == 0:
            _tell("start", info)
        if rank == 0 or collective:
            _BUILDING[0] += 1
            try:
                builder(work)
            finally:
                _BUILDING[0] -= 1
                if _BUILDING[0] == 0:
                    _BUILD_SECONDS[0] += time.time() - start
        _barrier(world)
        if rank != 0:
            _barrier(world)
            return final
        meta = {"kind": kind, "key": final.name, "params": canonical(params),
                "code_version": CODE_VERSIONS.get(kind, 0), "build_seconds": time.time() - start,
                "resumed": resumed}
        write_json_atomic(work / "params.json", meta)
        (work / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        if final.exists():  # a stale, incomplete final directory (should not happen)
            shutil.rmtree(final)
        os.replace(work, final)
        _note_use(kind, final.name, params, meta["build_seconds"])
        _tell("done", {**info, "seconds": meta["build_seconds"]})
        _barrier(world)
        return final


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist
        dist.barrier()


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Moving artifacts between machines (a victim trained on the 2 cores, defended on a lent GPU)
# ---------------------------------------------------------------------------
# files an imported artifact may not hold: pickles run code when loaded
UNSAFE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


class ArtifactError(ValueError):
    """An artifact that cannot be exported or imported (named, with the reason)."""


def check_artifact(kind: str, path: Path) -> dict:
    """The metadata of a complete artifact directory, after checking that its name is the key
    its own ``params.json`` hashes to under this code's version of ``kind`` and that it holds no
    pickle.  An artifact copied from elsewhere is trusted only this far: its weights are loaded as
    safetensors, never unpickled."""
    path = Path(path)
    if not (path / "DONE").is_file() or not (path / "params.json").is_file():
        raise ArtifactError(f"{path}: not a complete artifact (needs DONE and params.json)")
    meta = json.loads((path / "params.json").read_text())
    if meta.get("kind") != kind:
        raise ArtifactError(f"{path}: params.json says kind {meta.get('kind')!r}, the folder is under {kind!r}")
    if meta.get("code_version", 0) != CODE_VERSIONS.get(kind, 0):
        raise ArtifactError(f"{path}: built by code version {meta.get('code_version')} of {kind!r}; "
                            f"this code is version {CODE_VERSIONS.get(kind, 0)}")
    expected = artifact_key(kind, meta.get("params"))
    if path.name != expected:
        raise ArtifactError(f"{path}: its params.json hashes to {expected}, not to its name {path.name}")
    links = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_symlink())
    if links:
        raise ArtifactError(f"{path}: holds symbolic links {links}; an artifact is plain files")
    unsafe = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.suffix.lower() in UNSAFE_SUFFIXES)
    if unsafe:
        raise ArtifactError(f"{path}: holds pickle files {unsafe}; artifacts keep weights as safetensors")
    return meta


def _copy_tree_atomic(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + f".copy{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        shutil.copytree(src, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_artifacts(cache: ArtifactCache, kind: str, keys, dest: str | Path) -> list[Path]:
    """Copy complete artifacts ``<cache>/<kind>/<key>`` to ``dest/<kind>/<key>`` (a folder laid
    out like a cache, e.g. to carry to another machine)."""
    out = []
    for key in keys:
        src = cache.root / kind / key
        check_artifact(kind, src)
        target = Path(dest) / kind / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            _copy_tree_atomic(src, target)
        out.append(target)
    return out


def import_artifacts(cache: ArtifactCache, src: str | Path) -> list[Path]:
    """Copy every artifact of a folder laid out like a cache (``src/<kind>/<key>``) into
    ``cache``, each checked by :func:`check_artifact` first (nothing is copied if one fails).
    Artifacts the cache already has are left as they are."""
    found = [d for k in sorted(Path(src).iterdir()) if k.is_dir() for d in sorted(k.iterdir()) if d.is_dir()]
    if not found:
        raise ArtifactError(f"{src}: no <kind>/<key> artifact folders")
    for d in found:
        check_artifact(d.parent.name, d)
    out = []
    for d in found:
        target = cache.root / d.parent.name / d.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target / "DONE").is_file():
            if target.exists():
                shutil.rmtree(target)
            _copy_tree_atomic(d, target)
        out.append(target)
    return out


def main(argv=None) -> int:
    """``python -m paperlib.cache export KIND KEY... --to DIR`` | ``python -m paperlib.cache import DIR``

    Carry cached artifacts (victims, defended models) between machines: export writes a folder laid
    out like the cache; import checks each artifact's key against its parameters, refuses pickles,
    and copies it into this machine's cache (``$PAPERLIB_CACHE`` or ``.cache/paperlib``)."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="copy artifacts out of the cache")
    e.add_argument("kind")
    e.add_argument("keys", nargs="+")
    e.add_argument("--to", required=True, help="destination folder")
    i = sub.add_parser("import", help="copy checked artifacts into the cache")
    i.add_argument("src", help="a folder laid out like a cache (<kind>/<key>/)")
    a = ap.parse_args(argv)
    cache = ArtifactCache()
    try:
        done = (export_artifacts(cache, a.kind, a.keys, a.to) if a.cmd == "export"
                else import_artifacts(cache, a.src))
    except ArtifactError as err:
        raise SystemExit(f"error: {err}")
    for p in done:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
