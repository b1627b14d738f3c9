"""EftCLIP's tables and figures: oracle-guided trigger detection and curated fine-tuning.

Parameters: ``params/eftclip/<scale>.yaml`` (schema :class:`EftCLIPParams`: the defence matrix's
schema, so the base, the victims and CleanCLIP/RoCLIP rows are the matrix's cached models, plus
the oracle, the detection sweep and EftCLIP's settings).  Outputs under ``results/``:

* ``detection/eftclip.csv``: detection rate per dataset x n_backdoor x rho x mu x theta x tau x
  oracle x theta scale x Algorithm 1 reading (Table 1, Figs. 3-4; the whole grid at
  ``ablation_seeds``, Table 1's trigger at the other seeds), with the false-alarm rate on the same
  images without a trigger; ``theta`` is on the paper's scale, ``theta_oracle`` the cut applied
  to our segmenter's confidences (:func:`paperlib.detect.oracle.calibrate_theta`);
* ``detection/oracle.csv``: per oracle, latency (ms per image, one image at a time) and mask mIoU
  against the exact masks per theta and theta scale; ``eftclip/theta_calibration.csv``: theta' and
  what the segmenter returns there; ``eftclip/fig6_latency.csv``: the per-image latencies of Fig. 6;
* ``defences/matrix.csv`` rows with defence ``eftclip`` (curated CleanCLIP fine-tuning);
* ``eftclip/table{2..6}.csv``, ``eftclip/fig{3,4,6,7}_<scale>.png``, ``eftclip/claims.csv``
  (tables and claims: :mod:`paperlib.experiments.eftclip_report`, figures: :mod:`paperlib.experiments.eftclip_figures`, re-exported here).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.eftclip_reuse import _block, _published_block, _published_sweep
from paperlib.experiments.eftclip_setup import (  # noqa: F401 (re-exported)
    CURATION_KEY, DATASETS, DETECTION_COLUMNS, DETECTION_KEY, PAPER, PAPER_DATASET, ROW_DEFAULTS, SWEEP_CODE_VERSION,
    TABLES_KEY, DetectionSweep, EftCLIPParams, Workbench, _table4_pretrain, detection_key, load, settings_digest)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Detection (Table 1, Figs. 3, 4); the oracles (Fig. 6, oracle.csv) are in eftclip_oracle
# ---------------------------------------------------------------------------
def detection_sweep(p: EftCLIPParams, wb: Workbench | None = None, log_fn=print) -> pd.DataFrame:
    """Detection rate of Algorithm 1 over the sweep; rows into ``results/detection/eftclip.csv``.

    The whole sweep runs at ``ablation_seeds`` (Figs. 3-4); the other seeds run Table 1's trigger
    (``default_rho`` at ``default_position``) only.  Each seed's rows are an ``eval`` artifact of the
    cache (``detection_key`` names everything they depend on), so re-executing the notebook reads
    them instead of running the oracle again.
    """
    from paperlib import pipeline as pl
    from paperlib.results import upsert_csv
    wb = wb or Workbench(p)
    frames = []
    for seed in p.seeds_for("badnet"):
        d = sweep_at(p, seed)
        found = _published_sweep(p, d, wb, seed)
        if found is not None:
            old, from_cache = found
            frames.append(old)
            if not from_cache:
                log_fn(f"detection seed {seed}: {len(old)} rows from results/detection/eftclip.csv (its victim is "
                       "not in this cache)")
                from paperlib.results import say_in_terminal
                say_in_terminal(f"detection seed {seed}: {len(old)} rows reused from results/detection/eftclip.csv")
            continue
        victim, atk, v = wb.victim("badnet", seed, p.detection.victim)
        key = detection_key(p, d, wb, victim, seed)
        path = pl.ArtifactCache().get_or_build(
            "eval", key,
            lambda work: _sweep_one_seed(p, d, wb, victim, atk, v.poison.target, seed, log_fn).to_csv(
                work / "detection.csv", index=False))
        # eval_key names everything the rows depend on (a machine without the victim can match them)
        frames.append(pd.read_csv(path / "detection.csv").assign(scale=p.scale, seed=seed, victim_model=victim.path.name,
                                                                 eval_key=path.name))
    every = upsert_csv(Path(p.results_dir) / "detection" / "eftclip.csv", pd.concat(frames).to_dict("records"),
                       DETECTION_KEY, DETECTION_COLUMNS)
    # the file keeps rows of other victims and sweeps (older runs): the tables read this run's only
    return every[every.eval_key.isin({k for f in frames for k in f.eval_key})].reset_index(drop=True)


def sweep_at(p: EftCLIPParams, seed: int) -> DetectionSweep:
    """The sweep a seed runs: all of ``detection`` at the ablation seeds, Table 1's trigger elsewhere."""
    d = p.detection
    if seed in p.ablation_seed_list:
        return d
    return replace(d, rho_px=(d.default_rho,), positions=(d.default_position,))


def _sweep_one_seed(p: EftCLIPParams, d: DetectionSweep, wb: Workbench, victim, atk, target: str, seed: int,
                    log_fn) -> pd.DataFrame:
    """One seed's sweep ``d`` (Table 1, Figs. 3-4): rows without scale and seed.

    Each theta runs at every scale of ``d.theta_scales`` (its cut on our segmenter's confidences,
    ``theta_oracle``) and each cut's lists through every reading of Algorithm 1 in
    ``d.alg1_readings``; the oracle runs once per image set, at the lowest cut."""
    from paperlib import pipeline as pl
    from paperlib.detect.eftclip import identify_affected_labels, triggered
    cfg = p.eftclip
    n_max = max(d.n_backdoor)
    rows = []
    for dataset in d.datasets:
        split = pl.get_split(dataset, p.data)
        ids = wb.held_out_scenes(dataset, n_max, victim, seed)
        clean_imgs = np.asarray(split.images[ids])
        for kind in d.oracles:
            cuts = {(scale, theta): wb.theta_map(kind, scale).to_oracle(theta)
                    for scale in d.theta_scales for theta in d.thetas}
            low = min(cuts.values())
            maker = wb.list_maker(victim, wb.oracle(kind, dataset))

            def detect(obs):
                """(scale, theta, tau, reading, n) -> Algorithm 2's outcome; lists made once per cut."""
                out = {}
                for tau in d.taus:
                    made = {}
                    for (scale, theta), cut in cuts.items():
                        if cut not in made:
                            made[cut] = maker.lists(obs, tau, cut, cfg.min_region_side)
                        lists = made[cut]
                        for reading in d.alg1_readings:
                            for n in d.n_backdoor:
                                out[(scale, theta, tau, reading, n)] = identify_affected_labels(
                                    lists[:n], rule=cfg.affected_rule, reading=reading)
                return out

            # the false-alarm rate depends on (theta, tau, reading, n) only: the same images without a trigger
            false_alarm = {k: 100.0 * o.detected(target).mean()
                           for k, o in detect(maker.observe(clean_imgs, max(d.taus), low, cfg.region_topk, ids)).items()}
            for rho in d.rho_px:
                for mu in d.positions:
                    imgs = triggered(clean_imgs, atk.pattern, rho, mu, seed=seed)
                    found = detect(maker.observe(imgs, max(d.taus), low, cfg.region_topk, ids))
                    for (scale, theta, tau, reading, n), out in found.items():
                        ranked = [k for k, _ in out.trigger_counts.most_common()]
                        rows.append({
                            "dataset": dataset, "n_backdoor": n, "rho": rho, "mu": mu, "theta": theta,
                            "theta_scale": scale, "theta_oracle": cuts[(scale, theta)], "tau": tau, "oracle": kind,
                            "alg1_reading": reading, "detection_rate": 100.0 * out.detected(target).mean(),
                            "false_alarm_rate": false_alarm[(scale, theta, tau, reading, n)],
                            "k_size": len(out.K),
                            "target_rank": ranked.index(target) + 1 if target in ranked else -1,
                            "victim": f"badnet_{d.victim}"})
                    log_fn(f"detection {dataset} {kind} rho={rho} mu={mu}: "
                           f"{rows[-1]['detection_rate']:.1f}% at theta={theta} ({scale}: "
                           f"{rows[-1]['theta_oracle']:.3f}), tau={tau}, {reading}, n={n}")
    # the columns even without rows, so an empty sweep reads back as an empty table
    return pd.DataFrame(rows, columns=[c for c in DETECTION_COLUMNS if c not in ("scale", "seed")])


# ---------------------------------------------------------------------------
# Curated fine-tuning (Tables 2-6) and the matrix rows
# ---------------------------------------------------------------------------
def curated_defence(p: EftCLIPParams, wb: Workbench, attack: str, threat: str, seed: int,
                    oracle_kind: str = "fastsam", rule: str | None = None) -> dict:
    """Algorithm 2 (Algorithm 1 in ``eftclip.alg1_reading``) on the victim's retained triggered
    images, at ``eftclip.theta`` on ``eftclip.theta_scale``, the curated set, CleanCLIP-style
    fine-tuning on it.  Returns the defended model and what was found (``theta_oracle``: the cut
    applied to the oracle's confidences)."""
    import torch

    from paperlib import pipeline as pl
    from paperlib.detect.eftclip import caption_labels, curate, identify_affected_labels
    from paperlib.results import Timer
    timer = Timer()
    victim, atk, v = wb.victim(attack, seed, threat)
    split = pl.get_split("cc3m_analog", p.data)
    ids = wb.held_out_scenes("cc3m_analog", p.retained_images, victim, seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(split.images[ids])).permute(0, 3, 1, 2)
        imgs = atk.apply(x, g).permute(0, 2, 3, 1).numpy()
    with timer("detect"):
        maker = wb.list_maker(victim, wb.oracle(oracle_kind, "cc3m_analog"))
        cut = wb.theta_map(oracle_kind).to_oracle(p.eftclip.theta)
        obs = maker.observe(imgs, p.eftclip.tau, cut, p.eftclip.region_topk, ids)
        lists = maker.lists(obs, p.eftclip.tau, cut, p.eftclip.min_region_side)
        found = identify_affected_labels(lists, rule=rule or p.eftclip.affected_rule, reading=p.eftclip.alg1_reading)
    ctx = pl.defence_context(victim, p.data, p.defence.clean_scenes, p.defence.train.batch_size, seed,
                             device="cpu")
    labels = caption_labels([split.captions[r] for r in ctx.pairs.rows], wb.names)
    n_total = int(round(p.eftclip.curated_fraction * p.defence.clean_scenes))
    rows = curate(labels, found.A, n_total, p.eftclip.other_ratio, np.random.default_rng([seed, 707]))
    with timer("finetune"):
        model = pl.defend(victim, p.data, "cleanclip", p.defence.config("cleanclip", attack), p.defence.clean_scenes,
                          p.defence.train, seed, device=p.device, subset=rows)
    return {"model": model, "victim": victim, "attack": atk, "v": v, "found": found, "curated": len(rows),
            "detected": float(found.detected(v.poison.target).mean() * 100), "seconds": timer.sections,
            "rule": rule or p.eftclip.affected_rule, "n_affected": len(found.A), "theta_oracle": cut,
            "regions_per_image": float(np.mean([x.n_regions for x in lists])) if lists else 0.0,
            "affected": dict(found.A.most_common(10)), "k_top": [k for k, _ in found.trigger_counts.most_common(5)]}


def pretrain_cleanclip(p, victim, attack: str, seed: int):
    """Table 3's CleanCLIP: the pre-training victim fine-tuned on all the defence's clean pairs at
    ``p.defence``'s budget (also the budget study's, :mod:`paperlib.experiments.pretrain_budget`)."""
    from paperlib import pipeline as pl
    return pl.defend(victim, p.data, "cleanclip", p.defence.config("cleanclip", attack), p.defence.clean_scenes,
                     p.defence.train, seed, device=p.device)


def _cifar_top1(p, model) -> float:
    from paperlib import pipeline as pl
    return pl.evaluate(model, p.data, "cifar10_analog", templates=p.eval.templates, device=p.device)["ca_top1"]


def _cleanclip_metrics(p, victim, atk, v, attack: str, seed: int) -> dict:
    """Table 2's CleanCLIP on the fine-tuning victim: the defence matrix's row of that very model
    when the model is absent from this cache (the matrix trained it, here or on a lent GPU), else
    the model trained or loaded here and evaluated."""
    from paperlib import pipeline as pl
    from paperlib.experiments.common import published_row, victim_metrics
    cfg = p.defence.config("cleanclip", attack)
    key = pl.defence_key(victim.key_params, "cleanclip", cfg, p.defence.clean_scenes, p.defence.train, seed, None,
                         pl.resolve_device(p.device).type)
    row = published_row(p, "defences/matrix.csv", key, defence="cleanclip")
    if row is not None and all(f"{k}_top{n}" in row for k in ("ca", "asr") for n in (1, 3, 5, 10)):
        return {f"{k}_top{n}": float(row[f"{k}_top{n}"]) for k in ("ca", "asr") for n in (1, 3, 5, 10)}
    cc = pl.defend(victim, p.data, "cleanclip", cfg, p.defence.clean_scenes, p.defence.train, seed, device=p.device)
    return victim_metrics(p, cc, atk, v)


def defence_tables(p: EftCLIPParams, wb: Workbench | None = None, log_fn=print) -> dict[str, pd.DataFrame]:
    """Tables 2-6 (our rows, tidy) and the matrix rows of defence ``eftclip``."""
    from paperlib import pipeline as pl
    from paperlib.cache import ArtifactCache, artifact_key
    from paperlib.experiments.common import pretrain_victim, victim_metrics
    from paperlib.experiments.defences import MATRIX_COLUMNS, MATRIX_KEY, matrix_row, provenance
    from paperlib.results import upsert_csv
    wb = wb or Workbench(p)
    out_dir = Path(p.results_dir)
    rows, matrix_rows, runs = [], [], []

    settings = settings_digest(p)
    block = None   # the (threat, attack, seed) the loops are in: its rows share it (see _block)

    def add(table, attack, model_label, m, seed, extra=None):
        rows.append({"table": table, "attack": attack, "model": model_label, "scale": p.scale, "seed": seed,
                     **{k: m[k] for k in m if k.startswith(("ca_top", "asr_top"))}, **(extra or {}),
                     "victim_model": victim.path.name,   # the victim of the row being made (the loops' own)
                     "settings": settings, "block": block})

    def published(threat, attack, seed) -> bool:
        """Whether the files' rows of this (threat, attack, seed) stand in (its victim absent from
        this cache, its rows of these settings in the files): they join this run's rows."""
        nonlocal block
        key = wb.victim_key(attack, seed, threat)
        block = _block(p, threat, attack, seed, artifact_key("model", key), settings)
        if not p.reuse_rows or not wb.victim_absent(key):
            return False
        old = _published_block(p, block)
        if old is None:
            return False
        rows.extend(old[0])
        runs.extend(old[1])
        log_fn(f"eftclip {threat} {attack} seed {seed}: {len(old[0])} rows from the results files (the victim "
               f"{artifact_key('model', key)} is not in this cache)")
        from paperlib.results import say_in_terminal
        say_in_terminal(f"eftclip {threat} {attack} seed {seed}: {len(old[0])} rows reused from the results files")
        return True

    t5_finetune = p.table5_threat == "finetune"
    finetune_attacks = () if p.only_threat == "pretrain" else p.table5_attacks
    pretrain_seeds = () if p.only_threat == "finetune" else p.pretrain_seed_list
    for seed in sorted({s for a in finetune_attacks for s in p.seeds_for(a)} | set(p.seeds) | set(pretrain_seeds)):
        base_cache = {}
        for attack in finetune_attacks:
            if seed not in p.seeds_for(attack) or published("finetune", attack, seed):   # seeds_by_attack
                continue
            r = curated_defence(p, wb, attack, "finetune", seed)
            victim, atk, v = r["victim"], r["attack"], r["v"]
            m_base = base_cache.setdefault(attack, victim_metrics(p, wb.base, atk, v))
            m_victim = victim_metrics(p, victim, atk, v)
            m_eft = victim_metrics(p, r["model"], atk, v)
            info = _curated_info(p, r)
            # Table 5's rows of the fine-tuning victims: the table itself, or (table5_threat: pretrain,
            # the paper's) the ablation beside it
            add("Table 5", attack, "none", m_victim, seed, {"threat_model": "finetune"})
            add("Table 5", attack, "eftclip", m_eft, seed, {**info, "threat_model": "finetune"})
            summary = r["model"].summary
            matrix_rows.append({**matrix_row(attack, "eftclip", p.scale, seed, m_eft,
                                             summary.get("seconds", 0.0) + r["seconds"].get("detect", 0.0),
                                             summary.get("samples", r["curated"] * p.defence.train.epochs)),
                                **provenance(victim, r["model"])})
            runs.append(_curation_row(p, attack, "finetune", "fastsam", r["rule"], seed, r, block, **info))
            ablation = seed in p.ablation_seed_list    # Algorithm 2's other readings, the exact oracle
            for rule in [x for x in p.other_rules if x != p.eftclip.affected_rule and ablation]:
                ro_ = curated_defence(p, wb, attack, "finetune", seed, rule=rule)
                m_r = victim_metrics(p, ro_["model"], atk, v)
                extra = {"curated": ro_["curated"], "clean_pool": p.defence.clean_scenes, "detected": ro_["detected"]}
                add("Table 5", attack, f"eftclip_{rule}", m_r, seed, {**extra, "threat_model": "finetune"})
                if attack == "badnet":
                    add("Table 2", attack, f"eftclip_{rule}", m_r, seed, {"finetune_set": ro_["curated"]})
                runs.append(_curation_row(p, attack, "finetune", "fastsam", rule, seed, ro_, block, **extra))
            log_fn(f"eftclip {attack}: ASR {m_victim['asr_top1']:.1f} -> {m_eft['asr_top1']:.1f}, "
                   f"CA {m_victim['ca_top1']:.1f} -> {m_eft['ca_top1']:.1f}, curated {r['curated']} pairs")
            if attack == "badnet":
                m_cc = _cleanclip_metrics(p, victim, atk, v, attack, seed)
                for label, m in (("clean", m_base), ("none", m_victim), ("cleanclip", m_cc), ("eftclip", m_eft)):
                    add("Table 2", attack, label, m, seed, {"finetune_set": _set_size(p, label, r)})
                if not _table4_pretrain(p):   # without a pre-training victim: RoCLIP as fine-tuning
                    ro = pl.defend(victim, p.data, "roclip", p.defence.config("roclip", attack),
                                   p.defence.clean_scenes, p.defence.train, seed, device=p.device)
                    m_ro = victim_metrics(p, ro, atk, v)
                    for label, model, m in (("none", victim, m_victim), ("roclip", ro, m_ro),
                                            ("eftclip", r["model"], m_eft)):
                        add("Table 4", attack, label, m, seed, {"cifar_ca_top1": _cifar_top1(p, model),
                                                                "finetune_set": _set_size(p, label, r),
                                                                "threat_model": "finetune"})
                if ablation:   # Table 6, the oracle comparison, is an ablation: every row at the same seeds
                    add("Table 6", attack, "clean", m_base, seed)
                    add("Table 6", attack, "none", m_victim, seed)
                    add("Table 6", attack, "eftclip_fastsam", m_eft, seed, info)
                    if "exact" in p.detection.oracles:
                        rx = curated_defence(p, wb, attack, "finetune", seed, oracle_kind="exact")
                        add("Table 6", attack, "eftclip_exact", victim_metrics(p, rx["model"], atk, v), seed,
                            {"curated": rx["curated"], "detected": rx["detected"]})
                        runs.append(_curation_row(p, attack, "finetune", "exact", rx["rule"], seed, rx, block,
                                                  curated=rx["curated"], clean_pool=p.defence.clean_scenes,
                                                  detected=rx["detected"]))
        for pv in p.pretrain_victims if seed in pretrain_seeds else ():
            if published("pretrain", pv.attack, seed):
                continue
            r = curated_defence(p, wb, pv.attack, "pretrain", seed)
            victim, atk, v = r["victim"], r["attack"], r["v"]
            table5 = not t5_finetune and pv.attack in p.table5_attacks
            measured = {label: victim_metrics(p, model, atk, v)
                        for label, model in (("clean", wb.base), ("none", victim), ("eftclip", r["model"]))}
            if not table5 or pv.attack == "badnet":   # the paper's Table 3 is BadNet's pre-training victim
                cc = pretrain_cleanclip(p, victim, pv.attack, seed)
                measured["cleanclip"] = victim_metrics(p, cc, atk, v)
                for label in ("clean", "none", "cleanclip", "eftclip"):
                    add("Table 3", pv.attack, label, measured[label], seed, {"finetune_set": _set_size(p, label, r)})
            if table5:   # Table 5 as the paper's: EftCLIP on victims pre-trained on poisoned data (issue 23)
                info = {**_curated_info(p, r), "threat_model": "pretrain"}
                add("Table 5", pv.attack, "none", measured["none"], seed, {"threat_model": "pretrain"})
                add("Table 5", pv.attack, "eftclip", measured["eftclip"], seed, info)
                log_fn(f"eftclip {pv.attack} (pre-training victim) seed {seed}: ASR {measured['none']['asr_top1']:.1f} -> "
                       f"{measured['eftclip']['asr_top1']:.1f}, CA {measured['none']['ca_top1']:.1f} -> "
                       f"{measured['eftclip']['ca_top1']:.1f}, curated {r['curated']} pairs")
            if _table4_pretrain(p) == pv.attack:
                # EftCLIP's Table 4: RoCLIP retrained from scratch on the whole poisoned set (the
                # paper's 1M pairs), against EftCLIP fine-tuning the poisoned model on a curated set
                ro = pretrain_victim(p, wb.base, v, seed, atk, defence_id="roclip",
                                     defence_cfg=p.defence.config("roclip", pv.attack))
                for label, model, m in (("none", victim, measured["none"]),
                                        ("roclip", ro, victim_metrics(p, ro, atk, v)),
                                        ("eftclip", r["model"], measured["eftclip"])):
                    add("Table 4", pv.attack, label, m, seed,
                        {"cifar_ca_top1": _cifar_top1(p, model), "threat_model": "pretrain",
                         "finetune_set": len(pl.get_split("cc3m_analog", p.data)) if label == "roclip"
                         else _set_size(p, label, r)})
            runs.append(_curation_row(p, pv.attack, "pretrain", "fastsam", r["rule"], seed, r, block, curated=r["curated"],
                                      clean_pool=p.defence.clean_scenes, detected=r["detected"]))
    upsert_csv(out_dir / "defences" / "matrix.csv", matrix_rows, MATRIX_KEY, MATRIX_COLUMNS)
    tidy = upsert_csv(out_dir / PAPER / "tables.csv", rows, TABLES_KEY)
    found = upsert_csv(out_dir / PAPER / "curation.csv", runs, CURATION_KEY)
    # the files keep rows of other victims and settings (older runs): the tables and claims read this run's only
    blocks = {r["block"] for r in rows} | {r["block"] for r in runs}
    return {"tables": tidy[tidy.block.astype(str).isin(blocks)].reset_index(drop=True),
            "curation": found[found.block.astype(str).isin(blocks)].reset_index(drop=True)}


def _curated_info(p, r: dict) -> dict:
    """What a curated model's Table 5 row records of its curation (``r``, from :func:`curated_defence`):
    the set's size and pool, the detected share, the oracle's cut, and the model's own training time
    (its summary, also when this run read it from the cache) and Algorithm 1's time in this run."""
    return {"curated": r["curated"], "clean_pool": p.defence.clean_scenes, "detected": r["detected"],
            "theta_oracle": r.get("theta_oracle"), "finetune_s": r["model"].summary.get("seconds", 0.0),
            "detect_s": r["seconds"].get("detect", 0.0)}


def _curation_row(p, attack: str, threat: str, oracle: str, rule: str, seed: int, r: dict, block: str,
                  **extra) -> dict:
    """One row of ``curation.csv``: what Algorithm 2 found for one curated set (``r``, from
    :func:`curated_defence`), what it cost (the curated model's own training time from its summary,
    also when this run read it from the cache; Algorithm 1's time in this run), the theta scale, the
    cut on the oracle's confidences and the regions it kept per image, Algorithm 1's reading, plus
    ``extra`` columns."""
    return {"attack": attack, "threat_model": threat, "oracle": oracle, "rule": rule, "seed": seed, "scale": p.scale,
            "victim_model": r["victim"].path.name, "settings": settings_digest(p), "block": block,
            "theta": p.eftclip.theta, "theta_scale": p.eftclip.theta_scale, "theta_oracle": r.get("theta_oracle"),
            "regions_per_image": r.get("regions_per_image"), "alg1_reading": p.eftclip.alg1_reading,
            "k_top": " ".join(r["k_top"]), "n_affected": r["n_affected"],
            "affected_top": " ".join(f"{k}:{c}" for k, c in r["affected"].items()),
            "finetune_s": r["model"].summary.get("seconds", 0.0), "detect_s": r["seconds"].get("detect", 0.0),
            **extra}


def _set_size(p, label, r) -> int:
    return {"cleanclip": p.defence.clean_scenes, "roclip": p.defence.clean_scenes, "eftclip": r["curated"]}.get(label, 0)


def run(p: EftCLIPParams, log=print) -> dict:
    """Everything: detection sweep, oracle benchmark, curated defences, tables, figures, claims."""
    from paperlib.experiments.eftclip_figures import plot_fig3, plot_fig4, plot_fig5, plot_fig6, plot_fig7
    from paperlib.experiments.eftclip_report import claims, save_tables
    from paperlib.results import Timer, write_manifest
    timer = Timer()
    with timer("setup"):
        wb = Workbench(p)
        wb.segmenter()
    if p.only_threat:   # a lending's job: its rows, upserted into the results files, and nothing else
        with timer("defences"):
            defence_tables(p, wb, log)
        return {}
    with timer("detection"):
        det = detection_sweep(p, wb, log)
    from paperlib.experiments.eftclip_oracle import oracle_benchmark
    with timer("oracle_benchmark"):
        oracle_rows, lat = oracle_benchmark(p, wb)
    with timer("defences"):
        tables = defence_tables(p, wb, log)["tables"]
    with timer("figures"):
        made = save_tables(p, det, tables)
        figs = [plot_fig3(det, p), plot_fig4(det, p), plot_fig5(p, wb), plot_fig6(lat, p), plot_fig7(p, wb)]
    cl = claims(tables, det, p)
    write_manifest(Path(p.results_dir) / PAPER / f"manifest_{p.scale}.json", asdict(p), timer.sections)
    return {"detection": det, "oracle": oracle_rows, "tables": made, "figures": figs, "claims": cl}


# the tables and claims live in eftclip_report, the figures in eftclip_figures (both import what this
# module's setup holds): their names are read from there on first use, so eftclip.table_1,
# eftclip.claims, eftclip.plot_fig3, ... keep working
_REPORT_NAMES = {"eftclip_report": ("beside_paper_table", "table_1", "rows_asked", "save_tables", "sweep_rows", "claims",
                                    "affected_sets", "affected_labels_of",
                                    "_n_affected", "_curation_rows", "_full_sweep", "_PAPER_ROWS"),
                 "eftclip_figures": ("plot_fig3", "plot_fig4", "plot_fig5", "plot_fig6", "plot_fig7"),
                 "eftclip_oracle": ("oracle_benchmark", "write_oracle_rows")}


def __getattr__(name: str):
    import importlib
    for module, names in _REPORT_NAMES.items():
        if name in names:
            return getattr(importlib.import_module(f"paperlib.experiments.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from paperlib.experiments.common import cli
    raise SystemExit(cli(load, run, description=__doc__))

__all__ = ["EftCLIPParams", "DetectionSweep", "Workbench", "load", "detection_sweep", "sweep_at", "detection_key",
           "curated_defence", "defence_tables", "run"]   # and eftclip_report's / _figures' / _oracle's, through __getattr__
