"""EftCLIP's tables beside the paper and claims (the figures: :mod:`paperlib.experiments.eftclip_figures`).

Split from :mod:`paperlib.experiments.eftclip` (the detection sweep and curated defences), which
re-exports every public name here, so ``eftclip.table_1`` etc. keep working.  This module reads the
parameters and workbench from :mod:`paperlib.experiments.eftclip_setup`, so it imports no module
that imports it.

The detection rows carry ``theta_scale`` (calibrated / paper: how theta reached our segmenter),
``theta_oracle`` (the cut on its confidences) and ``alg1_reading`` (printed / paper_trend);
Table 1 and the claims (and Figs. 3a and 4, :mod:`paperlib.experiments.eftclip_figures`) read the
rows of ``eftclip.theta_scale`` and ``eftclip.alg1_reading``; Fig. 3b draws the theta trend of every
reading the sweep ran.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.common import victim_config
from paperlib.experiments.eftclip_setup import PAPER, PAPER_DATASET, ROW_DEFAULTS, EftCLIPParams, _table4_pretrain


def with_row_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``theta_scale`` / ``alg1_reading`` filled where rows of older code lack them
    (they were the paper's scale and Algorithm 1 as printed, :data:`ROW_DEFAULTS`)."""
    df = df.copy()
    for col, value in ROW_DEFAULTS.items():
        df[col] = df[col].fillna(value) if col in df else value
    return df


def main_rows(det: pd.DataFrame, p: EftCLIPParams, reading: bool = True) -> pd.DataFrame:
    """Detection rows at ``eftclip.theta_scale`` (and ``eftclip.alg1_reading`` unless ``reading`` is False)."""
    det = with_row_defaults(det)
    keep = det.theta_scale == p.eftclip.theta_scale
    if reading:
        keep &= det.alg1_reading == p.eftclip.alg1_reading
    return det[keep]


# ---------------------------------------------------------------------------
# Tables beside the paper, claims
# ---------------------------------------------------------------------------
_PAPER_ROWS = {"clean": "clean", "none": "none", "cleanclip": "cleanclip", "eftclip": "eftclip",
               "roclip": "roclip", "eftclip_fastsam": "eftclip", "eftclip_exact": "eftclip",
               "eftclip_detected": "eftclip", "eftclip_paper": "eftclip"}


def beside_paper_table(tables: pd.DataFrame, table: str, scale: str, seeds=None) -> pd.DataFrame:
    """One of Tables 2-6: our top-1 CA / ASR (mean, std over ``seeds``; default every seed in
    ``tables``) beside the paper's value; ``n_seeds`` says how many seeds a row averages."""
    from paperlib.papers import lookup
    t = tables[(tables.table == table) & (tables.scale == scale)]
    if seeds is not None:
        t = t[t.seed.isin(list(seeds))]
    if t.empty:
        return pd.DataFrame()
    cols = ["ca_top1", "asr_top1"] + (["cifar_ca_top1"] if "cifar_ca_top1" in t and t["cifar_ca_top1"].notna().any() else [])
    g = t.groupby(["attack", "model"], sort=False)
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["n_seeds"] = g["seed"].nunique()
    out = out.reset_index()
    if "curated" in t or "finetune_set" in t:
        size_col = "finetune_set" if "finetune_set" in t else "curated"
        out["finetune_set"] = g[size_col].first().values
    if "threat_model" in t and t["threat_model"].notna().any():
        # Table 5's rows from before the column are the fine-tuning victims' (a row measured again
        # gains the column: the table would otherwise name the threat for that attack alone)
        threat = _table5_threat(t) if table == "Table 5" else t["threat_model"]
        out["threat_model"] = threat.groupby([t.attack, t.model], sort=False).first().values
    ref = lookup(PAPER, table)
    for metric, dataset, col in (("ca", "imagenet", "ca_top1"), ("asr", "imagenet", "asr_top1"),
                                 ("ca", "cifar10", "cifar_ca_top1")):
        vals = []
        for _, r in out.iterrows():
            theirs = _PAPER_ROWS.get(r["model"], r["model"])
            sel = ref[(ref.defence == theirs) & (ref.metric == metric) & (ref.dataset == dataset)
                      & ((ref.attack == r["attack"]) | ref.attack.isna())]
            if r["model"] in ("eftclip_fastsam", "eftclip_exact"):
                sel = sel[sel.setting.str.contains("oracle=" + ("fastsam" if r["model"].endswith("fastsam") else "sam"))]
            vals.append(float(sel["value"].iloc[0]) if len(sel) else np.nan)
        if col in out or col == "ca_top1" or col == "asr_top1":
            out[f"{col}_paper"] = vals
    out.insert(0, "scale", scale)
    out.insert(0, "table", table)
    return out


def table_1(det: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """Table 1: detection rate at the default settings for each dataset and n, beside the paper:
    theta on ``eftclip.theta_scale``, one row per Algorithm 1 reading the sweep ran."""
    from paperlib.papers import lookup
    d = p.detection
    det = main_rows(sweep_rows(det, p, p.seeds_for("badnet")), p, reading=False)
    sel = det[(det.rho == d.default_rho) & (det.mu == d.default_position)
              & np.isclose(det.theta, p.eftclip.theta) & (det.tau == p.eftclip.tau)]
    g = sel.groupby(["dataset", "n_backdoor", "oracle", "alg1_reading"])
    out = g[["detection_rate", "false_alarm_rate"]].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["n_seeds"] = g["seed"].nunique()
    out["theta_oracle"] = g["theta_oracle"].mean() if "theta_oracle" in sel else sel.theta.iloc[:0]
    out = out.reset_index()
    out.insert(4, "theta_scale", p.eftclip.theta_scale)
    ref = lookup(PAPER, "Table 1")
    out["paper_detection_rate"] = [
        float(ref[(ref.dataset == PAPER_DATASET[r.dataset]) & ref.setting.str.endswith(f"={r.n_backdoor}")]["value"].iloc[0])
        if len(ref[(ref.dataset == PAPER_DATASET[r.dataset]) & ref.setting.str.endswith(f"={r.n_backdoor}")]) else np.nan
        for r in out.itertuples()]
    out.insert(0, "scale", p.scale)
    return out


def rows_asked(tables: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """The rows of ``tables.csv`` that these parameters make, each table at its own seeds (the
    file keeps rows of earlier runs): Table 6 and Algorithm 2's other readings at ``ablation_seeds``,
    Tables 3-4 at ``pretrain_seeds`` (Table 4 with RoCLIP as fine-tuning, at BadNet's seeds, when no
    BadNet pre-training victim is given), the rest at each attack's seeds (``seeds``, or its own in
    ``seeds_by_attack``); Table 4 only in the threat model
    these parameters compare in."""
    t = tables[tables.scale == p.scale]
    if t.empty:
        return t
    every = pd.Series([s in p.seeds_for(a) for a, s in zip(t.attack, t.seed)], index=t.index, dtype=bool)
    abl = t.seed.isin(list(p.ablation_seed_list))
    pre = t.seed.isin(list(p.pretrain_seed_list))
    threat = t["threat_model"] if "threat_model" in t else pd.Series(np.nan, index=t.index)
    scratch = _table4_pretrain(p) is not None
    variant = t.model.isin([f"eftclip_{r}" for r in p.other_rules]) & t.table.isin(["Table 2", "Table 5"])
    keep = np.select([t.table == "Table 6", variant, t.table == "Table 3", t.table == "Table 4"],
                     [abl, abl, pre, (pre & (threat == "pretrain")) if scratch else (every & (threat == "finetune"))],
                     default=every)
    # Table 5 of one threat model (rows written before it had one are the fine-tuning victims')
    t5_threat = _table5_threat(t)
    keep &= ((t.table != "Table 5") | (t5_threat == p.table5_threat)).to_numpy()
    if p.table5_threat == "pretrain":
        keep &= ((t.table != "Table 5") | pre).to_numpy()
    return t[keep]


def _table5_threat(t: pd.DataFrame) -> pd.Series:
    """Each row's threat model, rows written before Table 5 had one being the fine-tuning victims'."""
    threat = t["threat_model"] if "threat_model" in t else pd.Series(np.nan, index=t.index)
    return threat.astype(object).where(threat.notna(), "finetune")


def finetune_table5_rows(tables: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """With ``table5_threat: pretrain`` (the paper's), the Table 5 rows of the fine-tuning victims,
    kept as the ablation they became (issue 23), each attack at its seeds, Algorithm 2's other
    readings at the ablation seeds; empty otherwise."""
    if p.table5_threat != "pretrain" or tables.empty:
        return tables.iloc[:0]
    t = tables[(tables.scale == p.scale) & (tables.table == "Table 5")]
    threat = _table5_threat(t)
    every = pd.Series([s in p.seeds_for(a) for a, s in zip(t.attack, t.seed)], index=t.index, dtype=bool)
    variant = t.model.isin([f"eftclip_{r}" for r in p.other_rules])
    seeds_ok = np.where(variant, t.seed.isin(list(p.ablation_seed_list)), every)
    return t[(threat == "finetune").to_numpy() & seeds_ok]


def save_tables(p: EftCLIPParams, det: pd.DataFrame, tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from paperlib.results import to_markdown, write_csv_atomic
    out_dir = Path(p.results_dir) / PAPER
    made = {"Table 1": table_1(det, p)}
    rows = rows_asked(tables, p)
    for t in ("Table 2", "Table 3", "Table 4", "Table 5", "Table 6"):
        made[t] = beside_paper_table(rows, t, p.scale)
    made["Table 5 finetune"] = beside_paper_table(finetune_table5_rows(tables, p), "Table 5", p.scale)
    for name, df in made.items():
        if len(df):
            stem = name.lower().replace(" ", "")
            write_csv_atomic(df, out_dir / f"{stem}_{p.scale}.csv")
            to_markdown(df, out_dir / f"{stem}_{p.scale}.md")
    return made


def sweep_rows(det: pd.DataFrame, p: EftCLIPParams, seeds) -> pd.DataFrame:
    """The rows of ``results/detection/eftclip.csv`` that these parameters' sweep makes at ``seeds``:
    this scale, the victim asked for, and only the datasets, n, rho, mu, theta, theta scales, tau,
    oracles and Algorithm 1 readings of ``detection`` (the file keeps rows of earlier runs, e.g. of a
    setting since dropped; rows without a theta scale or reading are the paper scale, as printed)."""
    d = p.detection
    det = with_row_defaults(det)
    keep = ((det.scale == p.scale) & det.seed.isin(list(seeds)) & (det.victim == f"badnet_{d.victim}")
            & det.dataset.isin(d.datasets) & det.n_backdoor.isin(d.n_backdoor) & det.rho.isin(d.rho_px)
            & det.mu.isin(d.positions) & det.tau.isin(d.taus) & det.oracle.isin(d.oracles)
            & det.theta_scale.isin(d.theta_scales) & det.alg1_reading.isin(d.alg1_readings)
            & np.isclose(det.theta.to_numpy(float)[:, None], np.asarray(d.thetas, float)[None, :]).any(1))
    return det[keep]


def _full_sweep(det: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """The rows of the whole sweep (Figs. 3-4): the ablation seeds (see ``sweep_at``)."""
    return sweep_rows(det, p, p.ablation_seed_list)


def claims(tables: pd.DataFrame, det: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """EftCLIP's headline claims, checked seed by seed with the two-SEM rule of
    :mod:`paperlib.claims` (``results/eftclip/claims.csv``) on the per-seed rows: ``tables`` (the
    tidy rows of Tables 2-6, ``results/eftclip/tables.csv``, as :func:`defence_tables` returns
    them; each table read at its own seeds by :func:`rows_asked`), ``det`` (the detection sweep,
    ``results/detection/eftclip.csv``) and ``curation.csv`` (Algorithm 2's finds).  Two models are
    paired by seed; a claim "on every ..." holds only if each member holds."""
    from paperlib.claims import (AllOf, Claim, Compare, claims_table, live_attacks, per_seed, show_paper, signed,
                                 within)
    from paperlib.papers import lookup
    from paperlib.results import write_csv_atomic
    if isinstance(tables, dict):
        raise TypeError("eftclip.claims takes the per-seed rows of Tables 2-6 (defence_tables(...)['tables'] or "
                        "results/eftclip/tables.csv), not the seed summaries of save_tables")
    rows = rows_asked(tables, p) if tables is not None and len(tables) else pd.DataFrame(
        columns=["table", "attack", "model", "seed"])
    # Algorithm 2's finds of the victims these tables measured (curation.csv keeps other victims' rows)
    victims = set(rows.victim_model.dropna()) if "victim_model" in rows and rows.victim_model.notna().any() else None

    def v(table, model, col, attack="badnet"):
        return per_seed(rows, col, table=table, model=model, attack=attack)

    d = p.detection
    det_s = main_rows(_full_sweep(det, p), p, reading=False)     # theta on eftclip.theta_scale
    det_s = det_s[(det_s.oracle == "fastsam") & (det_s.tau == p.eftclip.tau)
                  & (det_s.n_backdoor == max(d.n_backdoor))]

    # Table 1's trigger at every BadNet seed (the whole grid runs at the ablation seeds only): the theta trend
    det_t1 = main_rows(sweep_rows(det, p, p.seeds_for("badnet")), p, reading=False)
    det_t1 = det_t1[(det_t1.oracle == "fastsam") & (det_t1.tau == p.eftclip.tau) & (det_t1.n_backdoor == max(d.n_backdoor))
                    & (det_t1.rho == d.default_rho) & (det_t1.mu == d.default_position)]

    def rate(source=None, **kw):
        """Detection rate per seed (mean over the other settings) of the rows of ``source`` (default:
        the whole grid) matching ``kw`` (Algorithm 1 in eftclip.alg1_reading unless given)."""
        s = det_s if source is None else source
        for k, val in {"alg1_reading": p.eftclip.alg1_reading, **kw}.items():
            s = s[np.isclose(s[k], val)] if isinstance(val, float) else s[s[k] == val]
        return per_seed(s, "detection_rate")

    def detects_87():
        t1 = main_rows(sweep_rows(det, p, p.seeds_for("badnet")), p)
        t1 = t1[(t1.rho == d.default_rho) & (t1.mu == d.default_position) & np.isclose(t1.theta, p.eftclip.theta)
                & (t1.tau == p.eftclip.tau) & (t1.oracle == "fastsam")]
        groups = sorted({(a, int(n)) for a, n in zip(t1.dataset, t1.n_backdoor)})
        if not groups:
            raise KeyError("no Table 1 rows")
        return AllOf([Compare(per_seed(t1, "detection_rate", dataset=ds, n_backdoor=n), ">=", threshold=87.0,
                              names=("detection rate",), label=f"{ds} n={n}") for ds, n in groups],
                     form="range", unit="dataset x n cells")

    def from_scratch(col, relation):
        """EftCLIP against RoCLIP in Table 4, when its RoCLIP is trained from scratch as the paper's
        (not the fine-tuning fallback of parameters without a pre-training victim)."""
        t = rows[rows.table == "Table 4"]
        if not len(t) or "threat_model" not in t or set(t.threat_model.dropna()) != {"pretrain"}:
            raise KeyError("Table 4's RoCLIP is not trained from scratch here")
        return Compare(v("Table 4", "eftclip", col), relation, v("Table 4", "roclip", col), names=("EftCLIP", "RoCLIP"))

    def oracle_gap():
        """ASR with FastSAM against the exact oracle in Table 6.  When neither oracle's Algorithm
        2 found an affected label both curated sets are the same random subset (``curate``), so the
        two models are one fine-tuning and a gap of 0 says nothing about the oracles: not measured."""
        seeds = p.ablation_seed_list
        if all(_n_affected(p, "badnet", oracle=o, seeds=seeds, victims=victims) == 0 for o in ("fastsam", "exact")):
            raise ValueError("neither oracle found an affected label: both curated sets are random subsets")
        return within(v("Table 6", "eftclip_fastsam", "asr_top1"), v("Table 6", "eftclip_exact", "asr_top1"), 1.0,
                      names=("FastSAM", "exact"))

    def affected_labels():
        c = _curation_rows(p, "badnet", victims=victims)
        return Compare(per_seed(c, "n_affected"), ">=", threshold=1.0, names=("labels in A",),
                       form="{a} labels (mean over seeds)")

    def target_in_a():
        """Whether A holds the attack's target, seed by seed (100 or 0): Algorithm 2 is to find the
        labels the backdoor makes the CLIP see, the target first of them."""
        c = _curation_rows(p, "badnet", victims=victims)
        return Compare(per_seed(c, "target_in_a"), ">=", threshold=50.0, names=("seeds with the target in A",),
                       form="target in A at {a}% of seeds")

    def paper(table, model, metric, attack="badnet", **kw):
        ref = lookup(PAPER, table, attack=attack, defence=model, metric=metric, dataset="imagenet", **kw)
        return float(ref["value"].iloc[0])

    def versus(table, a, b, metric):
        return show_paper(None, paper(table, a, metric), paper(table, b, metric))

    t5 = list(p.table5_attacks)
    t1ref = lookup(PAPER, "Table 1")
    t5_asr = [paper("Table 5", "eftclip", "asr", a, setting_contains="after") for a in t5]
    # "ASR below 15%" holds trivially where the victim has little backdoor: such attacks are left out
    t5_rows = rows[rows.table == "Table 5"].rename(columns={"model": "defence"}) if "table" in rows.columns else rows
    t5_live, t5_left_out = live_attacks(t5_rows, t5, lambda a: None)
    t5_asr_live = [x for a, x in zip(t5, t5_asr) if a in t5_live]
    t5_cost = [paper("Table 5", "none", "ca", a, setting_contains="before")
               - paper("Table 5", "eftclip", "ca", a, setting_contains="after") for a in t5]
    lo, hi = float(min(d.thetas)), float(max(d.thetas))
    readings = [p.eftclip.alg1_reading, *(x for x in d.alg1_readings if x != p.eftclip.alg1_reading)]
    trend = [Claim(f"Detection falls as theta rises (Fig. 3b: lowest theta {lo:g} -> highest {hi:g}; Algorithm 1 {r}; "
                   f"Table 1's trigger, rho {d.default_rho} px {d.default_position.replace('_', '-')}, every BadNet seed)",
                   "decreasing (Fig. 3b; no number printed)",
                   lambda r=r: Compare(rate(det_t1, theta=lo, alg1_reading=r), ">", rate(det_t1, theta=hi, alg1_reading=r),
                                       names=(f"theta {lo:g}", f"theta {hi:g}"), form="{a} -> {b}"))
             for r in readings]
    cl = [
        Claim("Algorithm 1 detects >= 87% of triggered images (Table 1, every dataset and n)",
              f"{t1ref.value.min():.1f}-{t1ref.value.max():.1f}", detects_87),
        Claim("EftCLIP lowers BadNet top-1 ASR below CleanCLIP's (Table 2, EftCLIP vs CleanCLIP)",
              versus("Table 2", "eftclip", "cleanclip", "asr"),
              lambda: Compare(v("Table 2", "eftclip", "asr_top1"), "<", v("Table 2", "cleanclip", "asr_top1"),
                              names=("EftCLIP", "CleanCLIP"))),
        Claim("EftCLIP keeps top-1 CA at least CleanCLIP's (Table 2, EftCLIP vs CleanCLIP)",
              versus("Table 2", "eftclip", "cleanclip", "ca"),
              lambda: Compare(v("Table 2", "eftclip", "ca_top1"), ">=", v("Table 2", "cleanclip", "ca_top1"),
                              names=("EftCLIP", "CleanCLIP"))),
        Claim("EftCLIP brings top-1 ASR below 15% on every attack of Table 5 (range over attacks: "
              + ", ".join(t5_live) + ")" + t5_left_out,
              f"{min(t5_asr_live):.2f}-{max(t5_asr_live):.2f}" if t5_asr_live else "none printed",
              lambda: AllOf([Compare(v("Table 5", "eftclip", "asr_top1", a), "<", threshold=15.0,
                                     names=("EftCLIP's ASR",), label=a) for a in t5_live], form="range", unit="attacks")),
        Claim("EftCLIP costs at most 1 point of top-1 CA against the victim (Table 5, victim minus EftCLIP, every "
              "attack)", f"{min(t5_cost):+.2f} to {max(t5_cost):+.2f} over {len(t5_cost)} attacks",
              lambda: AllOf([Compare(v("Table 5", "none", "ca_top1", a), "<=", v("Table 5", "eftclip", "ca_top1", a), 1.0,
                                     names=("victim", "EftCLIP"), label=a) for a in t5],
                            form=lambda parts: (f"{signed(min(x.mean for x in parts if x.n_seeds))} to "
                                                f"{signed(max(x.mean for x in parts if x.n_seeds))} over "
                                                f"{sum(1 for x in parts if x.n_seeds)} attacks"), unit="attacks")),
        Claim("Bottom-right triggers are detected more often than random ones (Fig. 3a, bottom-right vs random)",
              "holds for rho 8 and 16 (Fig. 3a; no number printed)",
              lambda: Compare(rate(mu="bottom_right", theta=p.eftclip.theta), ">", rate(mu="random", theta=p.eftclip.theta),
                              names=("bottom-right", "random"))),
        *trend,
        Claim("Algorithm 2 as printed finds affected labels (labels in A, BadNet)", "a frequency list (Sec. 4.4)",
              affected_labels),
        Claim("Algorithm 2 puts the attack's target among the affected labels A at most seeds (BadNet, fine-tuning "
              "victims)", "the target (Algorithm 2's aim, Sec. 3; no rate printed)", target_in_a),
        Claim("On the pre-training victim EftCLIP keeps top-1 CA at least CleanCLIP's (Table 3, EftCLIP vs CleanCLIP)",
              versus("Table 3", "eftclip", "cleanclip", "ca"),
              lambda: Compare(v("Table 3", "eftclip", "ca_top1"), ">=", v("Table 3", "cleanclip", "ca_top1"),
                              names=("EftCLIP", "CleanCLIP"))),
        Claim("On the pre-training victim EftCLIP lowers top-1 ASR below CleanCLIP's (Table 3, EftCLIP vs CleanCLIP)",
              versus("Table 3", "eftclip", "cleanclip", "asr"),
              lambda: Compare(v("Table 3", "eftclip", "asr_top1"), "<", v("Table 3", "cleanclip", "asr_top1"),
                              names=("EftCLIP", "CleanCLIP"))),
        Claim("EftCLIP keeps at least RoCLIP's top-1 CA, RoCLIP trained from scratch (Table 4, EftCLIP vs RoCLIP)",
              versus("Table 4", "eftclip", "roclip", "ca"), lambda: from_scratch("ca_top1", ">=")),
        Claim("EftCLIP's top-1 ASR is at most RoCLIP's trained from scratch (Table 4, EftCLIP vs RoCLIP)",
              versus("Table 4", "eftclip", "roclip", "asr"), lambda: from_scratch("asr_top1", "<=")),
        Claim("The precise oracle changes EftCLIP's ASR by < 1 point (Table 6, FastSAM vs exact; not measured when "
              "neither oracle's Algorithm 2 finds an affected label)",
              show_paper(None, paper("Table 6", "eftclip", "asr", setting_contains="oracle=fastsam"),
                         paper("Table 6", "eftclip", "asr", setting_contains="oracle=sam")), oracle_gap),
    ]
    out = claims_table(cl, p.scale)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / "claims.csv")
    return out


def _curation_rows(p: EftCLIPParams, attack: str, oracle: str = "fastsam", seeds=None, victims=None) -> pd.DataFrame:
    """Rows of ``curation.csv`` for ``attack`` (fine-tuning victims) at ``seeds`` (default: every
    seed) and these parameters' rule, theta scale and Algorithm 1 reading (rows of older code: the
    paper scale, as printed), of the victim models ``victims`` when given (the file keeps rows of
    other victims); KeyError when not run."""
    f = Path(p.results_dir) / PAPER / "curation.csv"
    if not f.is_file():   # no curated run yet: the claim is not measured
        raise KeyError(str(f))
    c = pd.read_csv(f)
    missing = {"attack", "scale", "seed", "oracle", "threat_model", "n_affected"} - set(c.columns)
    if missing:           # a file from older code: the claim is not measured rather than a crash
        raise KeyError(f"{f} lacks columns {sorted(missing)}")
    seeds = list(p.seeds_for(attack)) if seeds is None else list(seeds)
    c = with_row_defaults(c)
    c = c[(c.attack == attack) & (c.scale == p.scale) & c.seed.isin(seeds) & (c.oracle == oracle)
          & (c.threat_model == "finetune")
          & (c.get("rule", pd.Series("paper", index=c.index)).fillna("paper") == p.eftclip.affected_rule)
          & (c.theta_scale == p.eftclip.theta_scale) & (c.alg1_reading == p.eftclip.alg1_reading)]
    if victims is not None:
        c = c[c.victim_model.isin(set(victims))] if "victim_model" in c else c.iloc[0:0]
    if "settings" in c:   # rows of these settings; rows of older code have none
        from paperlib.experiments.eftclip_setup import settings_digest
        c = c[c.settings.isna() | (c.settings == settings_digest(p))]
    if not len(c) or c["n_affected"].isna().all():
        raise KeyError(attack)
    target = victim_config(p, attack, "finetune").poison.target
    return c.assign(target_in_a=[100.0 * (target in affected_labels_of(x)) for x in c.get("affected_top", [""] * len(c))])


def affected_labels_of(affected_top) -> list[str]:
    """The labels of A from a curation row's ``affected_top`` ("running vest:1 window:2": each label
    with its count, up to ten of them; empty or NaN when A is empty)."""
    import re
    if not isinstance(affected_top, str):
        return []
    return [m.group(1).strip() for m in re.finditer(r"(.+?):(\d+)(?:\s+|$)", affected_top)]


def affected_sets(p: EftCLIPParams, victims=None) -> pd.DataFrame:
    """What Algorithm 2 found for every curated set of these settings (this scale, the parameters'
    rule, theta scale and Algorithm 1 reading) at the blocks these parameters read: per threat model,
    attack, seed and oracle, the size of A, its labels, the attack's target and whether A holds it
    (``curation.csv``, which keeps rows of other victims and of blocks made ahead from other files).
    ``victims``: only these victim models' sets."""
    from paperlib.experiments.eftclip_reuse import _block
    from paperlib.experiments.eftclip_setup import settings_digest
    f = Path(p.results_dir) / PAPER / "curation.csv"
    if not f.is_file():
        return pd.DataFrame()
    c = with_row_defaults(pd.read_csv(f, dtype={"settings": str, "block": str, "victim_model": str}))
    if {"settings", "block", "victim_model", "threat_model", "oracle", "n_affected"} - set(c.columns):
        return pd.DataFrame()   # a file of older code: its rows name no block, so none is of these parameters
    c = c[(c.scale == p.scale) & (c.get("rule", pd.Series("paper", index=c.index)).fillna("paper") == p.eftclip.affected_rule)
          & (c.theta_scale == p.eftclip.theta_scale) & (c.alg1_reading == p.eftclip.alg1_reading)
          & (c.settings == settings_digest(p))]
    c = c[[r.block == _block(p, r.threat_model, r.attack, int(r.seed), r.victim_model, r.settings) for r in c.itertuples()]]
    if victims is not None:
        c = c[c.victim_model.isin(set(victims))]
    rows = []
    for r in c.sort_values(["threat_model", "attack", "seed", "oracle"]).itertuples():
        try:
            target = victim_config(p, r.attack, r.threat_model).poison.target
        except KeyError:   # a victim these parameters do not define (rows made ahead from another file)
            continue
        labels = affected_labels_of(getattr(r, "affected_top", None))
        rows.append({"threat_model": r.threat_model, "attack": r.attack, "seed": int(r.seed), "oracle": r.oracle,
                     "n_affected": len(labels) if pd.isna(r.n_affected) else int(r.n_affected),
                     "A": ", ".join(labels) or "(empty)", "target": target,
                     "target_in_A": target in labels})
    return pd.DataFrame(rows)


def _n_affected(p: EftCLIPParams, attack: str, oracle: str = "fastsam", seeds=None, victims=None) -> float:
    """Mean number of affected labels Algorithm 2 found for ``attack`` over ``seeds`` (default:
    every seed), from :func:`_curation_rows`; KeyError when not run."""
    return float(_curation_rows(p, attack, oracle, seeds, victims)["n_affected"].mean())


__all__ = ["beside_paper_table", "table_1", "rows_asked", "save_tables", "sweep_rows", "claims", "affected_sets",
           "affected_labels_of"]
