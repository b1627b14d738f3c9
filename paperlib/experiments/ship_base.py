"""Build the clean base that the project ships, in place of OpenAI's downloaded weights.

    python -m paperlib.experiments.ship_base params/foundation/embedded.yaml [pretrain.epochs=8 ...]

Pre-trains the base with the parameter file's ``data`` / ``model`` / ``pretrain`` recipe (the
artifact cache's ``clean_pretrain``; resumed from its checkpoints when interrupted), stores its
weights in fp16 as ``paperlib/bases/<model>-<scale>.safetensors`` (the repository holds at most
30 MB per file) beside a record ``.json`` with the recipe, the weights' SHA-256, the training's
cost and machine, and the zero-shot accuracy of the shipped (fp16) weights, whose rows also go to
``<results_dir>/base/zeroshot.csv``.  A parameter file then names the file as ``base_checkpoint``
and every machine imports the same weights (:func:`paperlib.pipeline.shipped_base`) instead of
training its own.  The cost of a rebuild is in ``results/benchmarks/cache_costs.csv``
(``model / clean_pretrain``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

MAX_BYTES = 30 * 1024 * 1024


def ship(p, name: str | None = None, out_dir: Path | None = None, log=print, force: bool = False,
         command: str | None = None) -> dict:
    """Train (or find) the base of ``p``'s recipe, write the fp16 file and its record, evaluate it.
    A shipped file of another recipe is replaced only with ``force``."""
    import torch
    from safetensors.torch import save_file

    from paperlib import pipeline as pl
    from paperlib.assets import repo_root
    from paperlib.bench import cpu_model
    from paperlib.cache import canonical, write_json_atomic
    from paperlib.experiments.foundation import ZEROSHOT_COLUMNS, ZEROSHOT_KEY, _zeroshot_row
    from paperlib.models import read_safetensors
    from paperlib.results import upsert_csv
    out_dir = Path(out_dir) if out_dir is not None else repo_root() / "paperlib" / "bases"
    name = name or f"{p.model}-{p.scale}"
    recipe = canonical({"data": p.data, "pretrain": p.pretrain})
    record_path = out_dir / f"{name}.json"
    if record_path.is_file() and not force:
        before = json.loads(record_path.read_text()).get("recipe")
        if before != recipe:
            raise SystemExit(f"{record_path}: a base of another recipe is shipped under this name; "
                             "give --force to replace it, or --name for a new file")
    t0 = time.time()
    trained = pl.pretrain_clean(p.data, p.model, p.pretrain, p.device)
    log(f"trained base {trained.path.name}: {trained.summary.get('samples')} samples in "
        f"{trained.summary.get('seconds', 0):.0f} s")
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in read_safetensors(trained.path / trained.weights_file).items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    tmp = weights.with_name(f".{weights.name}.tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"model": p.model, "source_key": trained.path.name})
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise ValueError(f"{weights.name}: {size / 2**20:.1f} MiB is over the repository's 30 MiB per file")
    summary = trained.summary
    record = {"model": p.model, "scale": p.scale, "sha256": pl.file_sha256(tmp), "dtype": "float16",
              "recipe": recipe, "source_key": trained.path.name,
              "summary": {k: summary.get(k) for k in ("samples", "seconds", "device", "precision") if k in summary},
              "cpu": cpu_model(), "torch": torch.__version__,
              "command": command or f"python -m paperlib.experiments.ship_base params/foundation/{p.scale}.yaml"}
    # the record first, then the weights it names, back to back (each by a rename)
    write_json_atomic(record_path, record)
    os.replace(tmp, weights)
    base = pl.shipped_base(p.model, weights)
    rows = []
    for split in p.eval.splits:
        m = pl.evaluate(base, p.data, split, templates=p.eval.templates, device=p.device,
                        batch_size=p.eval.batch_size)
        rows.append(_zeroshot_row("shipped_base", split, p.scale, p.pretrain.seed, m, base.path.name))
        log(f"shipped base {split}: top-1 {m['ca_top1']:.2f}")
    record["zeroshot_top1"] = {r["split"]: r["top1"] for r in rows}
    record["base_model"] = base.path.name
    write_json_atomic(record_path, record)
    upsert_csv(Path(p.results_dir) / "base" / "zeroshot.csv", rows, ZEROSHOT_KEY, ZEROSHOT_COLUMNS)
    log(f"wrote {weights} ({weights.stat().st_size / 2**20:.1f} MiB) and {weights.with_suffix('.json').name} "
        f"in {time.time() - t0:.0f} s")
    return record


def main(argv=None) -> int:
    from paperlib.assets import configure_environment, repo_root
    from paperlib.config import read_yaml
    from paperlib.experiments.foundation import load
    from paperlib.results import open_results_dir
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("params", help="foundation parameter file (its data / model / pretrain recipe)")
    ap.add_argument("overrides", nargs="*", help="dotted.key=value (value read as YAML)")
    ap.add_argument("--name", help="file name without suffix (default: <model>-<scale>)")
    ap.add_argument("--out-dir", help="folder (default: paperlib/bases)")
    ap.add_argument("--force", action="store_true", help="replace a shipped base of another recipe")
    a = ap.parse_args(argv)
    overrides = {"base_checkpoint": None}   # the file may name the shipped base; this rebuilds it
    for item in a.overrides:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} is not dotted.key=value")
        overrides[k] = read_yaml(v)
    configure_environment()
    params_file = Path(a.params).resolve()
    os.chdir(repo_root())
    p = load(params_file, overrides)
    open_results_dir(p)
    import shlex
    import sys
    command = "python -m paperlib.experiments.ship_base " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    print(json.dumps(ship(p, a.name, a.out_dir, force=a.force, command=command), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
