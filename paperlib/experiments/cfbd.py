"""CFBD's tables and figures: coarse-to-fine detection of poisoned pairs, against ABL.

Parameters: ``params/cfbd/<scale>.yaml`` (schema :class:`CFBDParams`: the detection experiment's
schema plus this paper's sweeps).  The detection experiment (:mod:`paperlib.experiments.detection`)
screens every victim's poisoned set and retrains on the kept pairs (``results/detection/cfbd.csv``);
this module adds:

* Table 3: TPR of CFBD and ABL at poison rates of 0.3-0.6% (``results/detection/abl.csv`` and
  ``results/cfbd/table3_rates.csv``, with the effective seed-set size ``q_eff`` and threshold
  ``gamma_z`` of each CFBD row);
* from the screened sets, no training (:mod:`paperlib.experiments.cfbd_screened`): Table 5, fault
  tolerance, the seed set mixed with benign pairs (``results/cfbd/table5_fault.csv``); Fig. 6, the
  K / gamma ablation under each benign-set rule of ``ablation_benign_rules`` (the paper's printed
  posterior rule beside our reconstructions, :mod:`paperlib.detect.cfbd`) and the q ablation
  (``results/cfbd/fig6_ablation.csv``); the detector's former rules as ablation rows
  (``results/cfbd/former_rules.csv``);
* the mapping ablation (:mod:`paperlib.experiments.cfbd_mapping`): the poisoned sets screened
  again with the LM-loss captioner at the first seed (``mapping_ablation``;
  ``results/detection/cfbd_mapping-lm.csv``);
* Figs. 2, 4, 5: score distributions, the GMM on the consistency values, PR curves, drawn from their
  data files (``results/cfbd/fig2_fig4_pairs.csv``, ``fig4_gmm.csv``, ``fig5_pr_curves.csv``);
* Tables 1, 2, 4 (:mod:`paperlib.experiments.cfbd_tables`, with Tables 3 and 5 laid out as the
  paper's) assembled from ``results/attacks/victims.csv``, ``results/defences/matrix.csv`` and
  ``results/detection/cfbd.csv`` beside the paper's numbers (the "CFBD (coarse-grained)" rows
  need ``retrain_stages`` to hold ``coarse``: the model retrained on D_b alone); the claims table.

A set whose rows (all of the above) are published and whose models this cache lacks is not
screened again: its rows stand in (:mod:`paperlib.experiments.cfbd_standin`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from paperlib.attacks import ATTACK_IDS
from paperlib.config import ParamError, load_params, param
from paperlib.detect.cfbd import BENIGN_RULES
from paperlib.experiments.cfbd_figures import (fig5_curves, fig24_data, plot_fig2, plot_fig4, plot_fig5,  # noqa: F401
                                                plot_fig6)
from paperlib.experiments.cfbd_mapping import detection_rows, mapping_ablation, mapping_ablation_wide  # noqa: F401
from paperlib.experiments.cfbd_screened import (FORMER_RULES, OTHER_RULES, RULE_VARIANTS,  # noqa: F401 (re-exported)
                                                ablations, at_seeds, fault_tolerance, former_rules, former_rules_wide, mean_spread, seed_mask)
from paperlib.experiments.cfbd_tables import (METHODS, ca_asr_rows, table_3_wide, table_4, table_5_wide,  # noqa: F401 (re-exported)
                                               tables_ca_asr)
from paperlib.experiments.detection import DetectionParams
from paperlib.experiments.victims import complete_victims

PAPER = "cfbd"


@dataclass(frozen=True)
class CFBDParams(DetectionParams):
    rate_attacks: tuple[str, ...] = param(("badnet", "blended", "ssba", "trojannn", "wanet"), choices=ATTACK_IDS,
                                          doc="attacks of Table 3 (each needs a victim entry for its settings)")
    rate_counts: tuple[int, ...] = param((30, 40, 50, 60), range=(1, None),
                                         doc="poisoned pairs of Table 3 (the paper's 0.3-0.6 %: of 50,000 pairs at the embedded scale, 150-300)")
    rate_abl_seeds: tuple[int, ...] | None = param(None, doc="seeds at which Table 3 runs ABL beside CFBD, those of "
                                                            "`seeds` listed here (None: every seed); ABL trains one pass over the set's pairs per "
                                                            "attack x rate cell (~5 min at the embedded scale on 2 "
                                                            "cores, 20 cells a seed), CFBD only screens")
    fault_attacks: tuple[str, ...] = param(("badnet", "blended", "sig", "ssba", "trojannn", "wanet"), choices=ATTACK_IDS,
                                           doc="attacks of Table 5")
    fault_ratios: tuple[float, ...] = param((0.2, 0.4, 0.6, 0.8), range=(0.0, 1.0), doc="benign share of the seed set")
    fault_qs: tuple[int, ...] = param((50, 400), range=(1, None), doc="seed-set sizes of Table 5")
    ablation_ks: tuple[int, ...] = param((1, 2, 3, 4, 5, 6), range=(1, 50), doc="GMM components of Fig. 6a")
    ablation_gammas: tuple[float, ...] = param((0.5, 0.75, 0.875, 0.9, 0.95, 0.99), range=(0.0, 1.0),
                                               doc="gammas of Fig. 6a")
    ablation_benign_rules: tuple[str, ...] = param(("mixture_cdf", "posterior", "component_cdf"), choices=BENIGN_RULES,
                                                   doc="benign-set rules of Fig. 6a (posterior: as printed)")
    ablation_qs: tuple[int, ...] = param((50, 100, 200, 400), range=(1, None), doc="seed-set sizes of Fig. 6b")
    figure_attack: str = param("badnet", choices=ATTACK_IDS, doc="the attack of Figs. 2 and 4")
    matrix_params: str | None = param(None, doc="the defence matrix's parameter file whose RoCLIP and CleanCLIP "
                                               "rows Tables 1-2 show (their settings and lr; the matrix file also "
                                               "holds rows of other settings, e.g. CleanCLIP's two-pass ablation); "
                                               "None: every row of the victim")
    mapping_ablation: tuple[str, ...] = param((), choices=("regression", "lm"),
                                              doc="mapping networks screened beside ``mapping`` as ablation rows "
                                                  "(the first seed, no retraining): 'lm' is Sec. 2.2's LM-loss "
                                                  "captioner, the default before issue 23 (embedded, smoke: [lm]; "
                                                  "at the gpu and paper scales a second screening of every set "
                                                  "costs what the first does, so off unless asked)")
    fault_seed: int = param(0, range=(0, None), doc="seed of the benign pairs mixed into the seed set")
    rows_only: bool = param(False, doc="stop after the result rows (detection, rates, Table 5, Fig. 6, former "
                                       "rules, mapping ablation): a parallel job's run, whose tables, figures "
                                       "and claims come from one run over the shared results folder afterwards")

    def validate(self):
        super().validate()
        have = {v.attack for v in self.victims}
        for key in ("rate_attacks", "fault_attacks"):
            missing = [a for a in getattr(self, key) if a not in have]
            if missing:
                raise ParamError(f"{key}: no victim entry for {missing} (it gives the attack's settings); "
                                 f"victims: {sorted(have)}")
        if self.figure_attack not in have:
            raise ParamError(f"figure_attack={self.figure_attack!r}: no such victim; victims: {sorted(have)}")
        short = [f"{v.attack} ({v.poison.poison_count})" for v in self.victims
                 if v.attack in self.fault_attacks and v.poison.poison_count < max(self.fault_qs)]
        if short:
            raise ParamError(f"fault_qs: Table 5 builds seed sets of up to {max(self.fault_qs)} poisoned pairs, "
                             f"but these fault_attacks have fewer: {', '.join(short)}; lower fault_qs or "
                             "their poison_count")


def load(path: str | Path | None = None, overrides: dict | None = None) -> CFBDParams:
    return load_params(CFBDParams, path, overrides, complete=complete_victims)


def _victim(p: CFBDParams, attack: str):
    from paperlib.experiments.common import victim_config
    return victim_config(p, attack)


# ---------------------------------------------------------------------------
# Table 3: TPR at low poison rates, CFBD against ABL
# ---------------------------------------------------------------------------
def rate_sweep(p: CFBDParams, screener, log=print) -> pd.DataFrame:
    from dataclasses import replace

    from paperlib import cache as ledger
    from paperlib.cache import artifact_key
    from paperlib.detect.cfbd import detect
    from paperlib.detect.metrics import tpr_fpr
    from paperlib.experiments.cfbd_standin import published_rates
    from paperlib.experiments.common import victim_model_name
    from paperlib.experiments.detection import (ABL_COLUMNS, ABL_KEY, abl_key, detector_digest, detector_settings,
                                                run_abl_on)
    from paperlib.results import say_in_terminal, upsert_csv
    rows, abl_rows, stood = [], [], []
    digest = detector_digest(p, screener.base) if p.rate_attacks else ""
    abl_seeds = [s for s in p.seeds if p.run_abl and (p.rate_abl_seeds is None or s in p.rate_abl_seeds)]
    if p.run_abl and p.rate_attacks and p.rate_abl_seeds is not None and set(p.rate_abl_seeds) - set(p.seeds):
        log(f"Table 3: rate_abl_seeds {sorted(set(p.rate_abl_seeds) - set(p.seeds))} are not among seeds "
            f"{list(p.seeds)}: ABL runs at {abl_seeds or 'none of them'}")
    for attack in p.rate_attacks:
        v = _victim(p, attack)
        for count in p.rate_counts:
            for seed in p.seeds:
                at_count = replace(v, poison=replace(v.poison, poison_count=count))
                runs_abl = seed in abl_seeds
                abl_model = artifact_key("model", abl_key(p, screener.base, at_count, seed, screener.device)) \
                    if runs_abl else None
                set_name = victim_model_name(p, screener.base, at_count, seed)
                there = published_rates(p, at_count, seed, set_name, abl_model, digest)
                if there is not None:   # published, and this cache lacks ABL's model: not screened again
                    stood += there
                    # for the estimate of a run without these rows (make reproduce): ABL's model was not built
                    ledger.note_stood_in("cfbd_set", ledger.work_key("cfbd_set", set_name, digest),
                                         {abl_model: "abl_isolation"} if abl_model else {})
                    continue
                sc = screener.screen(v, seed, count)
                det = detect(sc.c, sc.caption_emb, p.cfbd)
                tpr, fpr = tpr_fpr(sc.truth, det.flagged)
                rows.append({"attack": attack, "poison_count": count, "poison_rate": 100.0 * count / len(sc.truth),
                             "method": "cfbd", "scale": p.scale, "seed": seed, "tpr": tpr, "fpr": fpr,
                             **detector_settings(det, p, digest), "victim_model": sc.victim_model})
                if runs_abl:
                    # ABL's isolation model is keyed by the victim entry's pairs: the entry at this count
                    # (before, every count of an attack and seed shared the first count's model)
                    a = run_abl_on(p, screener.base, sc.ps, at_count, v.attack_config(), seed, sc.truth,
                                   screener.device)
                    abl_rows.append(a)
                    rows.append({"attack": attack, "poison_count": count, "poison_rate": rows[-1]["poison_rate"],
                                 "method": "abl", "scale": p.scale, "seed": seed, "tpr": a["tpr"], "fpr": a["fpr"],
                                 "victim_model": sc.victim_model})
                log(f"rate {attack} {count}: CFBD TPR {tpr:.1f} (q_eff {det.coarse.q_eff}, gamma_z {det.gamma_z:.3f})" + (f", ABL TPR {abl_rows[-1]['tpr']:.1f}" if runs_abl else ""))
    out = Path(p.results_dir)
    if stood:
        text = (f"Table 3: {sum(r['method'] == 'cfbd' for r in stood)} of "
                f"{len(p.rate_attacks) * len(p.rate_counts) * len(p.seeds)} sets taken from the results files "
                + ("(ABL's models are absent from this cache; " if p.run_abl else "(")
                + "reuse_rows: false screens them)")
        log(text)
        say_in_terminal(text)
    if not rows and not stood:   # no attack of Table 3 here (a parallel job of another attack)
        return pd.DataFrame(columns=["attack", "poison_count", "poison_rate", "method", "scale", "seed", "tpr",
                                     "fpr", "victim_model"])
    if abl_rows:
        upsert_csv(out / "detection" / "abl.csv", abl_rows, ABL_KEY, ABL_COLUMNS)
    table = upsert_csv(out / PAPER / "table3_rates.csv", rows,
                       ("attack", "poison_count", "method", "scale", "seed", "victim_model"))
    ours = {str(r["victim_model"]) for r in rows + stood}
    # this run's rows: its sets, and ABL only at the seeds it runs ABL (the file keeps other runs' rows)
    mine = table.victim_model.astype(str).isin(ours) & ((table.method != "abl") | table.seed.isin(abl_seeds))
    return table[mine].reset_index(drop=True)


# ---------------------------------------------------------------------------
# Claims (the figures: paperlib.experiments.cfbd_figures)
# ---------------------------------------------------------------------------
def claims(p: CFBDParams, rates: pd.DataFrame | None = None, fault: pd.DataFrame | None = None,
           rows12: pd.DataFrame | None = None, det: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's headline claims, checked seed by seed with the two-SEM rule of
    :mod:`paperlib.claims` (``results/cfbd/claims.csv``), on the per-seed rows: ``rates``
    (:func:`rate_sweep`, Table 3), ``fault`` (:func:`fault_tolerance`, Table 5), ``rows12``
    (:func:`ca_asr_rows`, Table 2; read from the result files when None) and ``det``
    (:func:`detection_rows`, Table 4 and Fig. 5; read when None).  CFBD and ABL are paired by seed
    at each attack and poison rate; a claim "at every ..." holds only if each member holds."""
    from paperlib.claims import AllOf, Claim, Compare, claims_table, num, per_seed
    from paperlib.papers import lookup
    from paperlib.results import write_csv_atomic
    rows12 = ca_asr_rows(p) if rows12 is None else rows12
    det = detection_rows(p) if det is None else det
    r = at_seeds(rates, p) if rates is not None and len(rates) else pd.DataFrame(columns=["attack", "method", "seed"])
    fault = at_seeds(fault, p) if fault is not None and len(fault) else pd.DataFrame(columns=["attack", "seed"])
    seeds = p.seeds_for    # each attack's seeds (Table 3's rates exist at ``seeds`` only)

    def cells(df, keys):
        """The (key values) groups of ``df`` in a stable order; KeyError when there is none."""
        groups = sorted({tuple(x) for x in df[list(keys)].itertuples(index=False)}) if len(df) else []
        if not groups:
            raise KeyError("no rows")
        return groups

    def rng(parts, what="a"):
        """Range over the members of their means, written as the paper writes a range (lo-hi)."""
        vals = [float(getattr(p_, what).mean()) for p_ in parts if p_.n_seeds]
        return f"{num(min(vals))}-{num(max(vals))}"

    def rate_label(attack, count):
        return f"{attack} {count} pairs"

    def tpr_at_rates():
        cfbd_rows = r[r.method == "cfbd"]
        return AllOf([Compare(per_seed(cfbd_rows, "tpr", seeds(a), attack=a, poison_count=c), ">=", threshold=98.0,
                              names=("CFBD TPR",), label=rate_label(a, c))
                      for a, c in cells(cfbd_rows, ["attack", "poison_count"])],
                     form=lambda parts: rng(parts) + f" (Table 3, {len(parts)} attack x rate cells)",
                     unit="attack x rate cells")

    def auroc_every_attack():
        fine = det[det.stage == "fine"] if len(det) else det
        return AllOf([Compare(per_seed(fine, "auroc", seeds(a), attack=a), ">=", threshold=99.0, names=("AUROC",),
                              label=a) for (a,) in cells(fine, ["attack"])],
                     form=lambda parts: rng(parts) + f" over {len(parts)} attacks", unit="attacks")

    def auprc_fine_over_coarse():
        if not len(det):
            raise KeyError("no detection rows")
        # mean over attacks, per seed: at the seeds every attack has (BadNet's extra seeds would
        # otherwise make means of BadNet alone)
        common = det[det.seed.isin(list(p.seeds))]
        g = common.groupby(["seed", "stage"])["auprc"].mean().unstack("stage")
        if not {"fine", "coarse"} <= set(g.columns):
            raise KeyError("needs both stages")
        return Compare(g["fine"], ">", g["coarse"], names=("fine", "coarse"),
                       form="fine {a} vs coarse {b} (AUPRC, %, mean over attacks)")

    def retrained_asr():
        cf = rows12[rows12.method == "cfbd"] if len(rows12) else rows12
        parts = [Compare(per_seed(cf, "asr_top1", seeds(a), attack=a), "<", threshold=1.0, names=("ASR after retraining",),
                         label=a) for (a,) in cells(cf, ["attack"])]

        def form(parts):
            worst = max((p_ for p_ in parts if p_.n_seeds), key=lambda p_: p_.a.mean())
            return f"{rng(parts)} over {len(parts)} attacks (worst: {worst.label} {num(worst.a.mean())})"
        return AllOf(parts, form=form, unit="attacks")

    def cfbd_beats_abl():
        cfbd_rows, abl = r[r.method == "cfbd"], r[r.method == "abl"]
        parts = [Compare(per_seed(cfbd_rows, "tpr", seeds(a), attack=a, poison_count=c), ">",
                         per_seed(abl, "tpr", seeds(a), attack=a, poison_count=c), names=("CFBD", "ABL"),
                         label=rate_label(a, c))
                 for a, c in cells(abl, ["attack", "poison_count"])]
        return AllOf(parts, form=lambda parts: f"ABL {rng(parts, 'b')} vs CFBD {rng(parts)}",
                     unit="attack x rate cells")

    def fault_80():
        f = fault[(fault.q == 400) & (fault.fault_ratio == 80)] if len(fault) else fault
        return AllOf([Compare(per_seed(f, "auroc", seeds(a), attack=a), ">=", threshold=99.0, names=("AUROC",), label=a)
                      for (a,) in cells(f, ["attack"])], form="range", unit="attacks")

    t3 = lookup(PAPER, "Table 3")
    t4p = lookup(PAPER, "Table 4")
    cl = [
        Claim("CFBD TPR >= 98% at poison rates 0.3-0.6% (Table 3, every attack and rate)",
              f"{t3[t3.defence == 'cfbd'].value.min():.2f}-{t3[t3.defence == 'cfbd'].value.max():.2f} "
              f"(Table 3, {int((t3.defence == 'cfbd').sum())} attack x rate cells)", tpr_at_rates),
        Claim("CFBD AUROC >= 99% on every attack (Table 4, coarse-to-fine)",
              f"{100 * t4p.value.min():.2f}-{100 * t4p.value.max():.2f} over {len(t4p)} attacks", auroc_every_attack),
        Claim("The fine stage raises AUPRC above the coarse stage (Fig. 5, mean over attacks)",
              "fine approaching 1 vs coarse lower (Fig. 5 draws PR curves; no number printed)", auprc_fine_over_coarse),
        Claim("Retraining on CFBD's kept pairs leaves top-1 ASR < 1% (Table 2, every attack)", _paper_retrain_asr(),
              retrained_asr),
        Claim("CFBD's TPR beats ABL's at every poison rate (Table 3, CFBD vs ABL paired by seed per attack and rate)",
              f"ABL {t3[t3.defence == 'abl'].value.min():.2f}-{t3[t3.defence == 'abl'].value.max():.2f} vs CFBD "
              f"{t3[t3.defence == 'cfbd'].value.min():.2f}-{t3[t3.defence == 'cfbd'].value.max():.2f}", cfbd_beats_abl),
        Claim("With 80% benign pairs in a q=400 seed set AUROC stays >= 99% (Table 5, every attack)",
              _paper_fault_range(), fault_80),
    ]
    out = claims_table(cl, p.scale)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / "claims.csv")
    return out


def _paper_retrain_asr() -> str:
    """The paper's Table 2 ASR after coarse-to-fine CFBD, as printed: 0.00 except LC's 0.84."""
    from paperlib.papers import lookup
    ref = lookup(PAPER, "Table 2", defence="cfbd", setting_contains="stage=coarse_to_fine")
    worst = ref.loc[ref["value"].idxmax()]
    return (f"{ref['value'].min():.2f}-{ref['value'].max():.2f} over {len(ref)} attacks "
            f"(worst: {worst['attack']} {worst['value']:.2f})")


def _paper_fault_range() -> str:
    from paperlib.papers import lookup
    ref = lookup(PAPER, "Table 5", setting="q=400;fault_ratio=80%")
    return f"{100 * ref['value'].min():.2f}-{100 * ref['value'].max():.2f}" if len(ref) else "see Table 5"


def save_tables(p: CFBDParams, made: dict) -> None:
    from paperlib.results import to_markdown, write_csv_atomic
    out = Path(p.results_dir) / PAPER
    for name, df in made.items():
        if len(df):
            stem = name.lower().replace(" ", "")
            write_csv_atomic(df, out / f"{stem}_{p.scale}.csv")
            to_markdown(df, out / f"{stem}_{p.scale}.md", floatfmt=".2f")


def screen_and_detect(p: CFBDParams, log=print) -> dict:
    """The detection experiment on every victim's set (:func:`paperlib.experiments.detection.run`)
    as this paper needs it: ABL only at Table 3's low rates (as the paper compares them), and a set
    stands in by its published rows only when its studies (Table 5, Fig. 6, the former rules, the
    figures' data) are published too (:func:`~paperlib.experiments.cfbd_standin.studies_published`)."""
    from paperlib.config import replace
    from paperlib.experiments import detection
    from paperlib.experiments.cfbd_standin import studies_published
    return detection.run(replace(p, run_abl=False), log, also_published=studies_published(p, not p.rows_only))


def run(p: CFBDParams, log=print) -> dict:
    """Everything of the paper at the scale of ``p``."""
    from paperlib.results import Timer, write_manifest
    timer = Timer()
    with timer("detection"):
        out = screen_and_detect(p, log)
    scores, screener = out["scores"], out["screener"]
    screened = {k: v["screened"] for k, v in scores.items()}
    with timer("rates"):
        rates = rate_sweep(p, screener, log)
    with timer("fault_and_ablation"):
        fault = fault_tolerance(p, screened)
        abl = ablations(p, screened)
        former = former_rules(p, screened)
    with timer("mapping_ablation"):
        mapping_abl = mapping_ablation(p, log)
    if p.rows_only:   # a parallel job: its log and jobs.csv record it, the shared folder gets no manifest
        return {"rates": rates, "fault": fault, "ablation": abl, "former_rules": former}
    # the figures' data where the figures are drawn (a parallel job's seeds are not the figures')
    pairs24, gmm4 = fig24_data(scores, p)
    curves5 = fig5_curves(scores, p)
    from paperlib.experiments.cfbd_goals import goals_table
    t12, t4 = tables_ca_asr(p), table_4(p)
    made = {"Table 1-2": t12, "Table 3": table_3_wide(rates, p), "Table 4": t4, "Table 5": table_5_wide(fault, p),
            "Former rules": former_rules_wide(former, p), "Mapping ablation": mapping_abl, "Goals": goals_table(p)}
    save_tables(p, made)
    figs = [plot_fig2(pairs24, p), plot_fig4(pairs24, gmm4, p), plot_fig5(curves5, p), plot_fig6(abl, p)]
    cl = claims(p, rates, fault)
    write_manifest(Path(p.results_dir) / PAPER / f"manifest_{p.scale}.json", asdict(p), timer.sections)
    return {"tables": made, "figures": figs, "claims": cl, "rates": rates, "fault": fault, "ablation": abl,
            "former_rules": former, "figure_data": {"fig2_fig4_pairs": pairs24, "fig4_gmm": gmm4, "fig5_pr_curves": curves5}}


if __name__ == "__main__":
    from paperlib.experiments.common import cli
    raise SystemExit(cli(load, run, description=__doc__))

__all__ = ["CFBDParams", "FORMER_RULES", "OTHER_RULES", "RULE_VARIANTS", "load", "screen_and_detect", "rate_sweep", "fault_tolerance", "ablations", "former_rules",
           "former_rules_wide", "mapping_ablation", "mapping_ablation_wide", "ca_asr_rows", "tables_ca_asr",
           "detection_rows", "table_4", "table_3_wide", "table_5_wide", "fig24_data", "fig5_curves", "plot_fig2", "plot_fig4", "plot_fig5", "plot_fig6", "claims", "run"]
