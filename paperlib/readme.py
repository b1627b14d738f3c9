"""The README's "Results at a glance", written from the results files (issue 24, item 3).

    python -m paperlib.readme            # rewrite the sections between the markers in README.md, docs/defences.md,
                                         # docs/gpu.md and docs/deviations-cfbd.md (the glance, the fresh-clone
                                         # times, the defence matrix, the device check, CFBD's goals)
    python -m paperlib.readme --check    # exit 1 if either section differs from what the files give

Every number of the section is read here from a file under ``results/``: the verdict counts from
``results/claims.csv`` when it exists and has the paper's rows (verdicts by the two-SEM rule of
:mod:`paperlib.claims`), else from the paper's own ``results/<paper>/claims.csv`` (its ``verdict``
column, or, in a file of older code, its ``holds`` column mapped yes -> holds, no -> fails,
not measured -> inconclusive and labelled as the old yes/no verdicts); the headline numbers from the
paper's tables.  The citations: the paper texts of ``../shared/papers`` (titles, EftCLIP's authors) and
the papers' arXiv and OpenReview pages (identifiers, the other authors).  ``tests/test_readme.py`` fails when the
README's section differs from what this module makes of the committed results.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

# the README's paragraphs on the victims and the matrix (new_victims, new_matrix) live in readme_world
from paperlib.readme_world import DEFENCE_NAMES, _pm, attack_name, new_matrix, new_victims
from paperlib.results import is_gpu_label


BEGIN = "<!-- glance:start -->"
END = "<!-- glance:end -->"
OLD_VERDICTS = {"yes": "holds", "no": "fails", "not measured": "inconclusive"}


def _row(df: pd.DataFrame, **match) -> pd.Series:
    sel = df
    for k, v in match.items():
        sel = sel[sel[k] == v]
    if len(sel) != 1:
        raise KeyError(f"{len(sel)} rows for {match}")
    return sel.iloc[0]


def _headline_eftclip(res: Path) -> str:
    t = pd.read_csv(res / "eftclip" / "table2_embedded.csv")
    e, c = _row(t, attack="badnet", model="eftclip"), _row(t, attack="badnet", model="cleanclip")
    n = int(min(e.n_seeds, c.n_seeds))
    return (f"Table 2, BadNet top-1 ASR, EftCLIP vs CleanCLIP: paper {e.asr_top1_paper:.2f} vs {c.asr_top1_paper:.2f}; "
            f"ours {_pm(e.asr_top1_mean, e.asr_top1_std, n)} vs {_pm(c.asr_top1_mean, c.asr_top1_std, n)} "
            f"(mean ± std, {n} seeds)")


def _headline_beside(res: Path, paper: str, file: str, table: str, attack: str, ours: str, theirs: str,
                     names: tuple[str, str]) -> str:
    t = pd.read_csv(res / paper / file)
    t = t[(t.metric == "asr") & (t.k == 1)]
    a, b = _row(t, attack=attack, defence=ours), _row(t, attack=attack, defence=theirs)
    n = int(min(a.n_seeds, b.n_seeds))
    return (f"{table}, {attack_name(attack)} top-1 ASR, {names[0]} vs {names[1]}: paper {a.paper:.2f} vs {b.paper:.2f}; "
            f"ours {_pm(a.ours_mean, a.ours_std, n)} vs {_pm(b.ours_mean, b.ours_std, n)} (mean ± std, {n} seeds)")


def _headline_cfbd(res: Path) -> str:
    t = pd.read_csv(res / "cfbd" / "table4_embedded.csv")
    r = _row(t, attack="badnet", stage="fine")
    return (f"Table 4, BadNet detection AUROC (coarse-to-fine, %): paper {r.auroc_paper:.2f}; "
            f"ours {_pm(r.auroc, r.auroc_std, int(r.n_seeds))} (mean ± std, {int(r.n_seeds)} seeds)")


@dataclass(frozen=True)
class Paper:
    id: str
    name: str
    citation: str
    headline: Callable[[Path], str]


PAPERS: tuple[Paper, ...] = (
    Paper("eftclip", "EftCLIP",
          "Md. Iqbal Hossain, Afia Sajeeda, Neeresh Kumar Perla, Ming Shao: *Robust Defense Strategies for "
          "Multimodal Contrastive Learning: Efficient Fine-tuning Against Backdoor Attacks*, "
          "arXiv:2511.13545 (2025)", _headline_eftclip),
    Paper("cleanerclip", "CleanerCLIP",
          "Yuan Xun, Siyuan Liang, Xiaojun Jia, Xinwei Liu, Xiaochun Cao: *CleanerCLIP: Fine-grained "
          "Counterfactual Semantic Augmentation for Backdoor Defense in Contrastive Learning*, arXiv:2409.17601 "
          "(2024; v1 titled *TA-Cleaner*)",
          lambda res: _headline_beside(res, "cleanerclip", "table1.csv", "Table 1", "badclip", "cleanerclip",
                                       "cleanclip", ("CleanerCLIP", "CleanCLIP"))),
    Paper("abd", "ABD",
          "Junhao Kuang, Siyuan Liang, Jiawei Liang, Kuanrong Liu, Xiaochun Cao: *Adversarial Backdoor Defense "
          "in CLIP*, arXiv:2409.15968 (2024)",
          lambda res: _headline_beside(res, "abd", "table_i.csv", "Table I", "badclip", "abd", "cleanclip",
                                       ("ABD", "CleanCLIP"))),
    Paper("cfbd", "CFBD",
          "anonymous authors: *CFBD: Coarse-to-Fine Detection of Backdoor Attacks in Multimodal Contrastive "
          "Learning*, a submission under double-blind review, OpenReview id CdqQKXGKq3", _headline_cfbd),
)


def verdicts(res: Path, paper: str) -> tuple[dict[str, int], str, str]:
    """(counts of holds / fails / inconclusive, the scale, where they come from)."""
    collected = res / "claims.csv"
    if collected.is_file():
        df = pd.read_csv(collected)
        df = df[df.paper == paper]
        if len(df):
            return _counts(df.verdict), _scale(df), "[`results/claims.csv`](results/claims.csv), two-SEM rule"
    f = res / paper / "claims.csv"
    df = pd.read_csv(f)
    where = f"[`claims.csv`](results/{paper}/claims.csv)"
    if "verdict" in df.columns:
        return _counts(df.verdict), _scale(df), f"{where}, two-SEM rule"
    return _counts(df.holds.map(OLD_VERDICTS)), _scale(df), f"{where}, old yes/no verdicts, pre-SEM rule"


def _counts(v: pd.Series) -> dict[str, int]:
    return {k: int((v == k).sum()) for k in ("holds", "fails", "inconclusive")}


def _scale(df: pd.DataFrame) -> str:
    scales = sorted(set(df["scale"].astype(str))) if "scale" in df else []
    return ", ".join(scales) or "?"


# the victims of the papers' regime (issue 22): their recipe is params/attacks/embedded-victims.yaml's
def device_check(res: Path, limit: float = 3.0) -> str:
    """What ``res/defences/device_check.csv`` says: models of one cache key trained on two devices,
    how far their top-1 ASR and CA lie apart, and the attacks whose models differ by more than
    ``limit`` points of ASR (GPU minus CPU, as a range)."""
    path = Path(res) / "defences" / "device_check.csv"
    if not path.is_file():
        return ""
    check = pd.read_csv(path)
    key = ["attack", "defence", "scale", "seed", "model"]
    gpu = check[check.device.map(is_gpu_label)]
    cpu = check[~check.index.isin(gpu.index)]
    # one pair per model: a key on two CPUs (a matrix row and the attack suite's) takes the file's first
    pairs = gpu.merge(cpu, on=key, suffixes=("_gpu", "_cpu")).drop_duplicates(key)
    if not len(pairs):
        return ""
    pairs = pairs.assign(dasr=pairs.asr_top1_gpu - pairs.asr_top1_cpu, dca=pairs.ca_top1_gpu - pairs.ca_top1_cpu)
    far = pairs[pairs.dasr.abs() > limit]
    near = pairs[pairs.dasr.abs() <= limit]
    text = (f"**Same cache key, two devices** ([device_check.csv](results/defences/device_check.csv)): "
            f"{len(pairs)} models trained both on a CPU and on "
            f"{', '.join(sorted(gpu.device.unique()))}; top-1 ASR differs by a median "
            f"{pairs.dasr.abs().median():.1f} points, clean top-1 by at most {pairs.dca.abs().max():.1f}")
    if len(near) and len(far):
        text += f"; {len(near)} of them within {limit:g} points of ASR"
    if len(far):
        parts = [f"{attack_name(a)} {'victims' if defence == 'none' else DEFENCE_NAMES.get(defence, defence)} "
                 f"({len(g)}): {g.dasr.min():+.1f}" + (f" to {g.dasr.max():+.1f}" if len(g) > 1 else "")
                 for (a, defence), g in far.groupby(["attack", "defence"])]
        text += "; beyond, GPU minus CPU: " + "; ".join(parts)
    return text + "."


def on_shipped_base(res: Path, paper: str, scale: str = "embedded") -> bool:
    """Whether paper's published run (its manifest) started from the shipped clean base, as every
    parameter file of the new victims does (the old runs pre-trained their own)."""
    import ast
    import json
    path = Path(res) / paper / f"manifest_{scale}.json"
    if not path.is_file():
        return False
    params = json.loads(path.read_text()).get("params", {})
    if isinstance(params, str):
        params = ast.literal_eval(params)
    return bool(params.get("base_checkpoint"))


def which_runs(res: Path) -> str:
    """The glance's opening: which papers' published runs are on the new victims, which are not."""
    fresh = [p.name for p in PAPERS if on_shipped_base(res, p.id)]
    stale = [p.name for p in PAPERS if p.name not in fresh]
    return ((f"Executed on the new victims and methods (the shipped clean base, issues 22-23): {', '.join(fresh)}. "
             if fresh else "")
            + (f"{'Still from' if fresh else 'All made on'} the old base and victims, before the method defaults "
               f"of issue 23, to be re-made: {', '.join(stale)}. " if stale else ""))


def glance(res: str | Path = "results") -> str:
    """The section's Markdown (between the markers) from the results folder ``res``: each paper's
    verdict counts, headline and citation first, then the victims and defences they rest on (the
    CPU/GPU device check is in docs/gpu.md, :func:`render_gpu_docs`)."""
    res = Path(res)
    collected = (res / "claims.csv").is_file()
    lines = [
        which_runs(res) + "Verdict counts come from "
        + ("`results/claims.csv` (every paper's claims, verdicts by the two-SEM rule of "
           "[docs/verdicts.md](docs/verdicts.md)) where it has a paper's rows, else from the paper's own claims.csv."
           if collected else
           "each paper's own claims.csv: until the notebooks run again these are the **old yes/no verdicts "
           "(pre-SEM rule)**, yes counted as holds, no as fails and not measured as inconclusive; a new run writes "
           "`results/claims.csv` with the two-SEM rule of [docs/verdicts.md](docs/verdicts.md)."),
        "",
        "| paper | claims: holds / fails / inconclusive | headline: paper vs ours | notebook, tables |",
        "|---|---|---|---|",
    ]
    for p in PAPERS:
        counts, scale, where = verdicts(res, p.id)
        links = (f"[notebook](notebooks/{p.id}.ipynb), [executed](results/{p.id}/{p.id}.ipynb), "
                 f"[tables](results/{p.id}/), [deviations](docs/deviations-{p.id}.md)")
        lines.append(f"| {p.name} | {counts['holds']} / {counts['fails']} / {counts['inconclusive']} "
                     f"({scale}; {where}) | {p.headline(res)} | {links} |")
    lines += ["", "The papers (titles as in `../shared/papers`; authors and identifiers from their arXiv and "
                  "OpenReview pages):", ""]
    lines += [f"* **{p.name}**: {p.citation}." for p in PAPERS]
    world = [part for part in (new_victims(res), new_matrix(res)) if part]
    if world:
        lines += ["", *[x for part in world for x in (part, "")]]
        lines.append("The same models trained on a CPU and on a GPU, side by side: [docs/gpu.md](docs/gpu.md).")
    return "\n".join(lines)


def render(text: str, res: str | Path = "results") -> str:
    """``text`` (the README) with the section between the markers replaced by :func:`glance`."""
    return between(text, BEGIN, END, glance(res), "the README")


def between(text: str, begin: str, end: str, body: str, name: str, indent: str = "") -> str:
    """``text`` with what lies between its markers ``begin`` and ``end`` replaced by ``body``;
    ``indent`` goes before every line of it and before ``end`` (a section inside a list item)."""
    if begin not in text or end not in text:
        raise ValueError(f"{name} has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = "\n".join(indent + line if line else "" for line in body.splitlines()) if indent else body
    return f"{head}{begin}\n{body}\n{indent}{end}{tail}"


DOCS_BEGIN = "<!-- new-matrix:start -->"
DOCS_END = "<!-- new-matrix:end -->"
DOCS_FILE = "docs/defences.md"


def render_docs(text: str, res: str | Path = "results") -> str:
    """``docs/defences.md`` with the section between its markers replaced by the defence matrix on
    the new victims (:func:`new_matrix`, links made relative to ``docs/``)."""
    body = new_matrix(Path(res)).replace("](results/", "](../results/").replace("](docs/", "](") or "(no rows of the new victims yet)"
    return between(text, DOCS_BEGIN, DOCS_END, body, DOCS_FILE)


GPU_BEGIN = "<!-- device-check:start -->"
GPU_END = "<!-- device-check:end -->"
GPU_FILE = "docs/gpu.md"


def render_gpu_docs(text: str, res: str | Path = "results") -> str:
    """``docs/gpu.md`` with the section between its markers replaced by :func:`device_check`
    (links made relative to ``docs/``)."""
    body = device_check(Path(res)).replace("](results/", "](../results/")
    return between(text, GPU_BEGIN, GPU_END, body or "(no model trained on both devices yet)", GPU_FILE)


FRESH_BEGIN = "<!-- fresh-clone:start -->"
FRESH_END = "<!-- fresh-clone:end -->"


def render_fresh(text: str, res: str | Path = "results") -> str:
    """The README with the section between its fresh-clone markers replaced by what
    ``benchmarks/fresh_clone.csv`` says (:func:`paperlib.fresh_clone.sentence`)."""
    from paperlib.fresh_clone import sentence
    return between(text, FRESH_BEGIN, FRESH_END, sentence(Path(res)), "the README")


def _cpu_params(load, params_file: str, res):
    """A parameter file as the docs' tables read rows for it: keys as a CPU run makes them (device auto
    would give a GPU machine other victim keys), the shipped base named from the repository wherever
    this runs from, rows from ``res``."""
    from paperlib.assets import repo_root
    raw = load(repo_root() / params_file)
    return load(repo_root() / params_file, {"results_dir": str(res), "device": "cpu",
                                            **({"base_checkpoint": str(repo_root() / raw.base_checkpoint)}
                                               if raw.base_checkpoint else {})})


CFBD_GOALS_BEGIN = "<!-- cfbd-goals:start -->"
CFBD_GOALS_END = "<!-- cfbd-goals:end -->"
CFBD_GOALS_FILE = "docs/deviations-cfbd.md"
CFBD_PARAMS = "params/cfbd/embedded.yaml"


def render_cfbd_goals(text: str, res: str | Path = "results") -> str:
    """``docs/deviations-cfbd.md`` with the section between its markers replaced by CFBD's detector
    against issue 23's goals (:mod:`paperlib.experiments.cfbd_goals`), per attack over the seeds of
    ``results/detection/cfbd.csv`` that the embedded parameter file makes."""
    from paperlib.experiments import cfbd
    from paperlib.experiments.cfbd_goals import goals_table, markdown
    p = _cpu_params(cfbd.load, CFBD_PARAMS, res)
    t = goals_table(p)
    body = (f"Read from `results/detection/cfbd.csv`, `results/defences/matrix.csv` and `results/attacks/victims.csv` "
            f"by `paperlib.experiments.cfbd_goals` at the settings of `{CFBD_PARAMS}` (means over the seeds listed, "
            "± the std over them; [k/n]: the seeds at which the goal is met; victim and clean base: top-1 ASR):\n\n"
            + markdown(t)) if len(t.dropna(subset=["fine_tpr"])) else "(no CFBD rows of these settings yet)"
    return between(text, CFBD_GOALS_BEGIN, CFBD_GOALS_END, body, CFBD_GOALS_FILE)


BUDGET_BEGIN = "<!-- pretrain-budget:start -->"
BUDGET_END = "<!-- pretrain-budget:end -->"
BUDGET_FILE = "docs/deviations-eftclip.md"
EFTCLIP_PARAMS = "params/eftclip/embedded.yaml"


def render_budget(text: str, res: str | Path = "results") -> str:
    """``docs/deviations-eftclip.md`` with the section between its markers replaced by the budget
    study's rows (:mod:`paperlib.experiments.pretrain_budget`) for the pre-training victims of the
    embedded EftCLIP file at its ``pretrain_seeds``, summarised over seeds."""
    from paperlib.experiments import eftclip, pretrain_budget
    p = _cpu_params(eftclip.load, EFTCLIP_PARAMS, res)
    rows = pretrain_budget.rows_so_far(p)
    body = (f"Read from `results/eftclip/pretrain_budget.csv` by `paperlib.experiments.pretrain_budget.summary` "
            f"for the pre-training victims of `{EFTCLIP_PARAMS}` at its `pretrain_seeds` (mean ± sample std over the "
            "seeds listed; each seed's victim is its own training from scratch):\n\n"
            + pretrain_budget.summary_markdown(pretrain_budget.summary(rows),
                                               (p.defence.train.epochs, p.defence.train.lr))
            ) if len(rows) else "(no budget rows for these victims yet)"
    return between(text, BUDGET_BEGIN, BUDGET_END, body, BUDGET_FILE, indent="  ")   # inside the Tables 3-4 item


CURVE_BEGIN = "<!-- poison-curve:start -->"
CURVE_END = "<!-- poison-curve:end -->"
CURVE_FILE = "docs/foundation.md"
FOUNDATION_PARAMS = "params/foundation/embedded.yaml"


def render_curve(text: str, res: str | Path = "results") -> str:
    """``docs/foundation.md`` with its poison-curve table read from ``res/foundation/poison_curve.csv``
    for the victims of the foundation's embedded file (:func:`foundation_report.curve_markdown`)."""
    from paperlib.experiments import foundation
    from paperlib.experiments.foundation_report import curve_markdown
    from paperlib.results import read_results
    p = _cpu_params(foundation.load, FOUNDATION_PARAMS, res)
    curve = read_results(Path(res) / "foundation" / "poison_curve.csv")
    body = ("Top-1 ASR / clean top-1 (%) of the BadNet victims, read from `results/foundation/poison_curve.csv` "
            f"for `{FOUNDATION_PARAMS}` (its seeds; mean ± sample std over them):\n\n" + curve_markdown(curve, p)
            ) if curve is not None else "(no poison-curve rows yet)"
    return between(text, CURVE_BEGIN, CURVE_END, body, CURVE_FILE)


def main(argv=None) -> int:
    from paperlib.assets import repo_root
    ap = argparse.ArgumentParser(prog="python -m paperlib.readme", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results files")
    ap.add_argument("--results", default=None, help="results folder (default: the committed results/)")
    args = ap.parse_args(argv)
    root = repo_root()
    res = args.results or root / "results"
    stale = 0
    for path, rend, what in ((root / "README.md", render, "results at a glance"),
                             (root / "README.md", render_fresh, "fresh-clone times"),
                             (root / DOCS_FILE, render_docs, "defence matrix on the new victims"),
                             (root / GPU_FILE, render_gpu_docs, "device check"),
                             (root / CFBD_GOALS_FILE, render_cfbd_goals, "CFBD's goals table"),
                             (root / BUDGET_FILE, render_budget, "EftCLIP's budget study"),
                             (root / CURVE_FILE, render_curve, "the foundation's poison curve")):
        text = path.read_text()
        new = rend(text, res)
        name = path.relative_to(root)
        if args.check:
            if new != text:
                print(f"{name}: the {what} differ from the results files; run python -m paperlib.readme")
                stale = 1
            else:
                print(f"{name}: {what} current")
            continue
        if new != text:
            path.write_text(new)
        print(f"{name}: {what} {'rewritten' if new != text else 'already current'} ({len(new.encode())} bytes)")
    return stale


if __name__ == "__main__":
    sys.exit(main())
