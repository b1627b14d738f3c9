"""EftCLIP's tables and figures: oracle-guided trigger detection and curated fine-tuning.

Parameters: ``params/eftclip/<scale>.yaml`` (schema :class:`EftCLIPParams`: the defence matrix's
schema, so the base, the victims and CleanCLIP/RoCLIP rows are the matrix's cached models, plus
the oracle, the detection sweep and EftCLIP's settings).  Outputs under ``results/``:

* ``detection/eftclip.csv``: detection rate per dataset x n_backdoor x rho x mu x theta x tau x
  oracle (Table 1, Figs. 3-4; the whole grid at ``ablation_seeds``, Table 1's trigger at the other
  seeds), with the false-alarm rate on the same images without a trigger;
* ``detection/oracle.csv``: per oracle, latency (ms per image, one image at a time) and mask mIoU
  against the exact masks; ``eftclip/fig6_latency.csv``: the per-image latencies of Fig. 6;
* ``defences/matrix.csv`` rows with defence ``eftclip`` (curated CleanCLIP fine-tuning);
* ``eftclip/table{2..6}.csv``, ``eftclip/fig{3,4,6,7}_<scale>.png``, ``eftclip/claims.csv``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.attacks.badnet import POSITIONS
from paperlib.config import ParamError, load_params, param
from paperlib.detect.eftclip import EftCLIPConfig
from paperlib.detect.oracle import ORACLE_KINDS, SegmenterConfig
from paperlib.experiments.attacks import PretrainVictimConfig
from paperlib.experiments.defences import DefenceMatrixParams
from paperlib.experiments.victims import complete_victims

log = logging.getLogger(__name__)
PAPER = "eftclip"
DATASETS = ("cc3m_analog", "flickr_analog")
PAPER_DATASET = {"cc3m_analog": "cc3m", "flickr_analog": "flickr30k"}
DETECTION_COLUMNS = ("dataset", "n_backdoor", "rho", "mu", "theta", "tau", "oracle", "detection_rate",
                     "false_alarm_rate", "k_size", "target_rank", "victim", "scale", "seed")


@dataclass(frozen=True)
class DetectionSweep:
    """Which triggered images Algorithm 1 runs on and which settings it sweeps (Table 1, Figs. 3-4)."""
    datasets: tuple[str, ...] = param(DATASETS, choices=DATASETS, doc="captioned sets (CC3M, Flickr30K analogues)")
    n_backdoor: tuple[int, ...] = param((500, 1000), range=(1, None), doc="triggered images per run (Table 1)")
    rho_px: tuple[int, ...] = param((8, 16), range=(1, None), doc="trigger side in pixels of our images (Fig. 3a)")
    positions: tuple[str, ...] = param(("random", "top_left", "bottom_right"), choices=POSITIONS,
                                       doc="trigger positions mu (Fig. 3a)")
    thetas: tuple[float, ...] = param((0.3, 0.5, 0.66, 0.8, 0.9), range=(0.0, 1.0), doc="oracle confidences (Fig. 3b, 4)")
    taus: tuple[int, ...] = param((5, 7), range=(1, None), doc="object-list lengths (Fig. 4)")
    oracles: tuple[str, ...] = param(ORACLE_KINDS, choices=ORACLE_KINDS, doc="oracles to compare")
    default_rho: int = param(16, range=(1, None), doc="rho of Table 1 (the victim's own trigger size)")
    default_position: str = param("random", choices=POSITIONS, doc="mu of Table 1 (random, as in training)")
    latency_images: int = param(1000, range=(1, None), doc="images timed one by one per oracle (Fig. 6)")
    figure_images: int = param(4, range=(1, 12), doc="images drawn in Fig. 7")
    victim: str = param("finetune", choices=("finetune", "pretrain"),
                        doc="which BadNet victim the detection runs against")

    def validate(self):
        if self.default_rho not in self.rho_px or self.default_position not in self.positions:
            raise ParamError(f"detection: default_rho {self.default_rho} / default_position "
                             f"{self.default_position!r} must be among rho_px {list(self.rho_px)} / positions")


@dataclass(frozen=True)
class EftCLIPParams(DefenceMatrixParams):
    pretrain_victims: tuple[PretrainVictimConfig, ...] = param((), doc="victims poisoned in pre-training (Table 3; BadNet's also Table 4, "
                                                                   "against RoCLIP trained from scratch)")
    eftclip: EftCLIPConfig = param(default_factory=EftCLIPConfig, doc="EftCLIP's detection and curation settings")
    segmenter: SegmenterConfig = param(default_factory=SegmenterConfig, doc="the FastSAM-analogue oracle's training")
    detection: DetectionSweep = param(default_factory=DetectionSweep)
    retained_images: int = param(1000, range=(1, None),
                                 doc="triggered images of the retained set D_e that Algorithm 2 reads per victim")
    table5_attacks: tuple[str, ...] = param(("badnet", "wanet", "trojannn", "trojannet"),
                                            doc="attacks of Table 5 (each needs a victim)")
    other_rules: tuple[str, ...] = param(("detected",), choices=("paper", "detected"),
                                         doc="Algorithm 2 readings run beside eftclip.affected_rule "
                                             "(rows eftclip_<rule> in Tables 2 and 5)")

    def validate(self):
        super().validate()
        attacks = {v.attack for v in self.victims}
        if "badnet" not in attacks:
            raise ParamError("victims: EftCLIP needs a badnet victim (its detection experiments use BadNet)")
        missing = [a for a in self.table5_attacks if a not in attacks]
        if missing:
            raise ParamError(f"table5_attacks: no victim for {missing}; victims: {sorted(attacks)}")
        if self.detection.victim == "pretrain" and not any(v.attack == "badnet" for v in self.pretrain_victims):
            raise ParamError("detection.victim=pretrain needs a badnet entry in pretrain_victims")


def load(path: str | Path | None = None, overrides: dict | None = None) -> EftCLIPParams:
    return load_params(EftCLIPParams, path, overrides, complete=complete_victims)


# ---------------------------------------------------------------------------
# The pieces: base, victims, oracle, list maker
# ---------------------------------------------------------------------------
class Workbench:
    """Everything the EftCLIP sections share, built (or read from the cache) once."""

    def __init__(self, p: EftCLIPParams):
        from paperlib import pipeline as pl
        from paperlib.experiments.common import clean_base
        self.p = p
        self.device = pl.resolve_device(p.device)
        self.base = clean_base(p)
        self.zs = pl.get_split("imagenet_analog", p.data)
        self.names = list(self.zs.classnames)
        self._oracles = {}
        self._clean = None

    def victim(self, attack: str, seed: int, threat: str = "finetune"):
        from paperlib.experiments.common import finetune_victim, pretrain_victim, victim_attack, victim_config
        v = victim_config(self.p, attack, threat)
        if threat == "finetune":
            return finetune_victim(self.p, self.base, v, seed), victim_attack(self.p, self.base, v), v
        atk = victim_attack(self.p, self.base, v)
        return pretrain_victim(self.p, self.base, v, seed, atk), atk, v

    def classifier(self, artifact, model):
        from paperlib import pipeline as pl
        return pl.classifier_for(artifact, model, self.names, pl.templates_for(self.p.eval.templates, self.zs),
                                 self.device, pl.ArtifactCache())

    def clean(self):
        if self._clean is None:
            m = self.base.load(self.device)
            self._clean = (m, self.classifier(self.base, m))
        return self._clean

    def segmenter(self):
        from paperlib import pipeline as pl
        from paperlib.detect.oracle import train_segmenter
        split = pl.get_split("cc3m_analog", self.p.data)
        return train_segmenter(split, self.p.segmenter, pl.ArtifactCache(), pl.split_params("cc3m_analog", self.p.data),
                               device="cuda" if self.device.type == "cuda" else "cpu")

    def oracle(self, kind: str, dataset: str):
        from paperlib import pipeline as pl
        from paperlib.detect.oracle import ExactMaskOracle, FastSAMOracle
        if (kind, dataset) not in self._oracles:
            if kind == "fastsam":
                o = FastSAMOracle(self.segmenter(), self.p.segmenter.imgsz,
                                  device="cuda" if self.device.type == "cuda" else "cpu")
            else:
                o = ExactMaskOracle(pl.get_split(dataset, self.p.data))
            self._oracles[(kind, dataset)] = o
        return self._oracles[(kind, dataset)]

    def list_maker(self, victim_artifact, oracle):
        from paperlib.detect.eftclip import ListMaker
        pm = victim_artifact.load(self.device)
        cm, cclf = self.clean()
        return ListMaker(poisoned=pm, poisoned_classifier=self.classifier(victim_artifact, pm), clean=cm,
                         clean_classifier=cclf, names=self.names, oracle=oracle,
                         image_size=self.p.data.image_size, device=self.device)

    def held_out_scenes(self, dataset: str, n: int, victim_artifact, seed: int) -> np.ndarray:
        """Scenes for detection: outside the victim's poisoned set, the defence's clean set and
        the oracle's training range (CC3M analogue); any scenes of the Flickr analogue."""
        from paperlib import pipeline as pl
        from paperlib.detect.oracle import oracle_scene_ids
        split = pl.get_split(dataset, self.p.data)
        exclude = np.zeros(0, np.int64)
        if dataset == "cc3m_analog":
            vk = victim_artifact.key_params
            if vk.get("role") == "poison_finetune":
                exclude = pl.finetune_scene_ids(split, vk["finetune_scenes"], vk["seed"])
            exclude = np.union1d(exclude, pl.defence_scene_ids(split, self.p.defence.clean_scenes, exclude, seed))
            exclude = np.union1d(exclude, oracle_scene_ids(len(split), self.p.segmenter.train_scenes
                                                           + self.p.segmenter.val_scenes))
        pool = np.setdiff1d(np.arange(len(split)), exclude)
        if n > len(pool):
            raise ValueError(f"{dataset}: {n} detection images asked, {len(pool)} held-out scenes exist")
        return np.sort(np.random.default_rng([seed, 909]).choice(pool, size=n, replace=False))


# ---------------------------------------------------------------------------
# Detection (Table 1, Figs. 3, 4) and the oracles (Fig. 6, oracle.csv)
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
    for seed in p.seeds:
        victim, atk, v = wb.victim("badnet", seed, p.detection.victim)
        d = sweep_at(p, seed)
        path = pl.ArtifactCache().get_or_build(
            "eval", detection_key(p, d, wb, victim, seed),
            lambda work: _sweep_one_seed(p, d, wb, victim, atk, v.poison.target, seed, log_fn).to_csv(
                work / "detection.csv", index=False))
        frames.append(pd.read_csv(path / "detection.csv").assign(scale=p.scale, seed=seed))
    return upsert_csv(Path(p.results_dir) / "detection" / "eftclip.csv", pd.concat(frames).to_dict("records"),
                      ("dataset", "n_backdoor", "rho", "mu", "theta", "tau", "oracle", "victim", "scale", "seed"),
                      DETECTION_COLUMNS)


def sweep_at(p: EftCLIPParams, seed: int) -> DetectionSweep:
    """The sweep a seed runs: all of ``detection`` at the ablation seeds, Table 1's trigger elsewhere."""
    d = p.detection
    if seed in p.ablation_seed_list:
        return d
    return replace(d, rho_px=(d.default_rho,), positions=(d.default_position,))


# Bump when the code behind a seed's detection rows changes what they hold (triggered(), ListMaker,
# the oracles, identify_affected_labels, _sweep_one_seed): cached sweeps of older code are then rebuilt.
SWEEP_CODE_VERSION = 2   # 2: FastSAM regions cropped by their masks


def detection_key(p: EftCLIPParams, d: DetectionSweep, wb: Workbench, victim, seed: int) -> dict:
    """Everything one seed's detection rows depend on: the victim and the clean model (by cache
    key), the oracles (the segmenter's key), the captioned splits, the sweep, Algorithm 1's
    settings, the zero-shot prompts and the held-out scene choice (which excludes the defence's
    clean pool and the segmenter's training scenes)."""
    from paperlib import pipeline as pl
    cfg = p.eftclip
    return {"role": "eftclip_detection", "code": SWEEP_CODE_VERSION, "victim": victim.path.name, "clean": wb.base.path.name,
            "oracles": {k: (wb.segmenter().name if k == "fastsam" else k) for k in d.oracles},
            "splits": {ds: pl.split_params(ds, p.data) for ds in (*d.datasets, "imagenet_analog")},
            "sweep": {k: getattr(d, k) for k in ("datasets", "n_backdoor", "rho_px", "positions", "thetas",
                                                 "taus", "oracles", "victim")},
            "algorithm": {k: getattr(cfg, k) for k in ("region_topk", "min_region_side", "affected_rule")},
            "templates": p.eval.templates, "clean_scenes": p.defence.clean_scenes,
            "segmenter_scenes": p.segmenter.train_scenes + p.segmenter.val_scenes, "seed": seed}


def _sweep_one_seed(p: EftCLIPParams, d: DetectionSweep, wb: Workbench, victim, atk, target: str, seed: int,
                    log_fn) -> pd.DataFrame:
    """One seed's sweep ``d`` (Table 1, Figs. 3-4): rows without scale and seed."""
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
            maker = wb.list_maker(victim, wb.oracle(kind, dataset))
            clean_obs = maker.observe(clean_imgs, max(d.taus), min(d.thetas), cfg.region_topk, ids)
            # the false-alarm rate depends on (theta, tau, n) only: the same images without a trigger
            false_alarm = {}
            for theta in d.thetas:
                for tau in d.taus:
                    clean_lists = maker.lists(clean_obs, tau, theta, cfg.min_region_side)
                    for n in d.n_backdoor:
                        fa = identify_affected_labels(clean_lists[:n], rule=cfg.affected_rule)
                        false_alarm[(theta, tau, n)] = 100.0 * fa.detected(target).mean()
            for rho in d.rho_px:
                for mu in d.positions:
                    imgs = triggered(clean_imgs, atk.pattern, rho, mu, seed=seed)
                    obs = maker.observe(imgs, max(d.taus), min(d.thetas), cfg.region_topk, ids)
                    for theta in d.thetas:
                        for tau in d.taus:
                            lists = maker.lists(obs, tau, theta, cfg.min_region_side)
                            for n in d.n_backdoor:
                                out = identify_affected_labels(lists[:n], rule=cfg.affected_rule)
                                ranked = [k for k, _ in out.trigger_counts.most_common()]
                                rows.append({
                                    "dataset": dataset, "n_backdoor": n, "rho": rho, "mu": mu, "theta": theta,
                                    "tau": tau, "oracle": kind,
                                    "detection_rate": 100.0 * out.detected(target).mean(),
                                    "false_alarm_rate": false_alarm[(theta, tau, n)],
                                    "k_size": len(out.K),
                                    "target_rank": ranked.index(target) + 1 if target in ranked else -1,
                                    "victim": f"badnet_{d.victim}"})
                    log_fn(f"detection {dataset} {kind} rho={rho} mu={mu}: "
                           f"{rows[-1]['detection_rate']:.1f}% at theta={theta}, tau={tau}, n={n}")
    # the columns even without rows, so an empty sweep reads back as an empty table
    return pd.DataFrame(rows, columns=[c for c in DETECTION_COLUMNS if c not in ("scale", "seed")])


def oracle_benchmark(p: EftCLIPParams, wb: Workbench | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latency (one image at a time) and mask mIoU of each oracle on clean CC3M-analogue scenes."""
    from paperlib import pipeline as pl
    from paperlib.detect.oracle import matched_miou, timed_segment
    from paperlib.results import environment, upsert_csv
    wb = wb or Workbench(p)
    split = pl.get_split("cc3m_analog", p.data)
    seed = p.seeds[0]
    victim, _, _ = wb.victim("badnet", seed, p.detection.victim)
    ids = wb.held_out_scenes("cc3m_analog", p.detection.latency_images, victim, seed)
    imgs = np.asarray(split.images[ids])
    device = environment().get("device", "cpu")
    rows, lat = [], []
    thetas = sorted(set(p.detection.thetas) | {p.eftclip.theta})
    for kind in p.detection.oracles:
        oracle = wb.oracle(kind, "cc3m_analog")
        oracle.segment(imgs[:2], p.eftclip.theta, ids[:2])          # warm-up (first call loads kernels)
        regions, ms = timed_segment(oracle, imgs, p.eftclip.theta, ids, batch=1)
        lat += [{"oracle": kind, "image": int(j), "ms": float(m), "scale": p.scale} for j, m in enumerate(ms)]
        # mask quality at every confidence cut: segment once at the lowest, keep regions >= theta
        low = oracle.segment(imgs, thetas[0], ids)
        for theta in thetas:
            kept = [[r for r in regs if r.conf >= theta] for regs in low]
            ious = [x for r, i in zip(kept, ids) for x in matched_miou(r, np.asarray(split.instances[i]))]
            rows.append({"oracle": kind, "theta": theta, "ms_per_image": float(ms.mean()), "ms_std": float(ms.std()),
                         "latency_theta": p.eftclip.theta, "miou": 100.0 * float(np.mean(ious)), "objects": len(ious),
                         "regions_per_image": float(np.mean([len(r) for r in kept])), "n_images": len(ids),
                         "device": device, "scale": p.scale})
    out = Path(p.results_dir)
    return (upsert_csv(out / "detection" / "oracle.csv", rows, ("oracle", "theta", "scale")),
            upsert_csv(out / PAPER / "fig6_latency.csv", lat, ("oracle", "image", "scale")))


# ---------------------------------------------------------------------------
# Curated fine-tuning (Tables 2-6) and the matrix rows
# ---------------------------------------------------------------------------
def curated_defence(p: EftCLIPParams, wb: Workbench, attack: str, threat: str, seed: int,
                    oracle_kind: str = "fastsam", rule: str | None = None) -> dict:
    """Algorithm 2 on the victim's retained triggered images, the curated set, CleanCLIP-style
    fine-tuning on it.  Returns the defended model and what was found."""
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
        obs = maker.observe(imgs, p.eftclip.tau, p.eftclip.theta, p.eftclip.region_topk, ids)
        found = identify_affected_labels(maker.lists(obs, p.eftclip.tau, p.eftclip.theta, p.eftclip.min_region_side),
                                         rule=rule or p.eftclip.affected_rule)
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
            "rule": rule or p.eftclip.affected_rule, "n_affected": len(found.A),
            "affected": dict(found.A.most_common(10)), "k_top": [k for k, _ in found.trigger_counts.most_common(5)]}


def _cifar_top1(p, model) -> float:
    from paperlib import pipeline as pl
    return pl.evaluate(model, p.data, "cifar10_analog", templates=p.eval.templates, device=p.device)["ca_top1"]


def defence_tables(p: EftCLIPParams, wb: Workbench | None = None, log_fn=print) -> dict[str, pd.DataFrame]:
    """Tables 2-6 (our rows, tidy) and the matrix rows of defence ``eftclip``."""
    from paperlib import pipeline as pl
    from paperlib.experiments.common import pretrain_victim, victim_metrics
    from paperlib.experiments.defences import MATRIX_COLUMNS, MATRIX_KEY, matrix_row, provenance
    from paperlib.results import upsert_csv
    wb = wb or Workbench(p)
    out_dir = Path(p.results_dir)
    rows, matrix_rows, runs = [], [], []

    def add(table, attack, model_label, m, seed, extra=None):
        rows.append({"table": table, "attack": attack, "model": model_label, "scale": p.scale, "seed": seed,
                     **{k: m[k] for k in m if k.startswith(("ca_top", "asr_top"))}, **(extra or {})})

    for seed in p.seeds:
        base_cache = {}
        for attack in p.table5_attacks:
            r = curated_defence(p, wb, attack, "finetune", seed)
            victim, atk, v = r["victim"], r["attack"], r["v"]
            m_base = base_cache.setdefault(attack, victim_metrics(p, wb.base, atk, v))
            m_victim = victim_metrics(p, victim, atk, v)
            m_eft = victim_metrics(p, r["model"], atk, v)
            info = {"curated": r["curated"], "clean_pool": p.defence.clean_scenes, "detected": r["detected"],
                    # the model's own training time (its summary), also when this run read it from the cache
                    "finetune_s": r["model"].summary.get("seconds", 0.0), "detect_s": r["seconds"].get("detect", 0.0)}
            add("Table 5", attack, "none", m_victim, seed)
            add("Table 5", attack, "eftclip", m_eft, seed, info)
            summary = r["model"].summary
            matrix_rows.append({**matrix_row(attack, "eftclip", p.scale, seed, m_eft,
                                             summary.get("seconds", 0.0) + r["seconds"].get("detect", 0.0),
                                             summary.get("samples", r["curated"] * p.defence.train.epochs)),
                                **provenance(victim, r["model"])})
            runs.append(_curation_row(p, attack, "finetune", "fastsam", r["rule"], seed, r, **info))
            ablation = seed in p.ablation_seed_list    # Algorithm 2's other readings, the exact oracle
            for rule in [x for x in p.other_rules if x != p.eftclip.affected_rule and ablation]:
                ro_ = curated_defence(p, wb, attack, "finetune", seed, rule=rule)
                m_r = victim_metrics(p, ro_["model"], atk, v)
                extra = {"curated": ro_["curated"], "clean_pool": p.defence.clean_scenes, "detected": ro_["detected"]}
                add("Table 5", attack, f"eftclip_{rule}", m_r, seed, extra)
                if attack == "badnet":
                    add("Table 2", attack, f"eftclip_{rule}", m_r, seed, {"finetune_set": ro_["curated"]})
                runs.append(_curation_row(p, attack, "finetune", "fastsam", rule, seed, ro_, **extra))
            log_fn(f"eftclip {attack}: ASR {m_victim['asr_top1']:.1f} -> {m_eft['asr_top1']:.1f}, "
                   f"CA {m_victim['ca_top1']:.1f} -> {m_eft['ca_top1']:.1f}, curated {r['curated']} pairs")
            if attack == "badnet":
                cc = pl.defend(victim, p.data, "cleanclip", p.defence.config("cleanclip", attack),
                               p.defence.clean_scenes, p.defence.train, seed, device=p.device)
                m_cc = victim_metrics(p, cc, atk, v)
                for label, model, m in (("clean", wb.base, m_base), ("none", victim, m_victim),
                                        ("cleanclip", cc, m_cc), ("eftclip", r["model"], m_eft)):
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
                        runs.append(_curation_row(p, attack, "finetune", "exact", rx["rule"], seed, rx,
                                                  curated=rx["curated"], clean_pool=p.defence.clean_scenes,
                                                  detected=rx["detected"]))
        for pv in p.pretrain_victims if seed in p.pretrain_seed_list else ():
            r = curated_defence(p, wb, pv.attack, "pretrain", seed)
            victim, atk, v = r["victim"], r["attack"], r["v"]
            cc = pl.defend(victim, p.data, "cleanclip", p.defence.config("cleanclip", pv.attack),
                           p.defence.clean_scenes, p.defence.train, seed, device=p.device)
            measured = {label: victim_metrics(p, model, atk, v)
                        for label, model in (("clean", wb.base), ("none", victim), ("cleanclip", cc), ("eftclip", r["model"]))}
            for label, m in measured.items():
                add("Table 3", pv.attack, label, m, seed, {"finetune_set": _set_size(p, label, r)})
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
            runs.append(_curation_row(p, pv.attack, "pretrain", "fastsam", r["rule"], seed, r, curated=r["curated"],
                                      clean_pool=p.defence.clean_scenes, detected=r["detected"]))
    upsert_csv(out_dir / "defences" / "matrix.csv", matrix_rows, MATRIX_KEY, MATRIX_COLUMNS)
    tidy = upsert_csv(out_dir / PAPER / "tables.csv", rows, ("table", "attack", "model", "scale", "seed"))
    found = upsert_csv(out_dir / PAPER / "curation.csv", runs, ("attack", "threat_model", "oracle", "rule", "scale", "seed"))
    return {"tables": tidy, "curation": found}


def _curation_row(p, attack: str, threat: str, oracle: str, rule: str, seed: int, r: dict, **extra) -> dict:
    """One row of ``curation.csv``: what Algorithm 2 found for one curated set (``r``, from
    :func:`curated_defence`), what it cost (the curated model's own training time from its summary,
    also when this run read it from the cache; Algorithm 1's time in this run), plus ``extra`` columns."""
    return {"attack": attack, "threat_model": threat, "oracle": oracle, "rule": rule, "seed": seed, "scale": p.scale,
            "k_top": " ".join(r["k_top"]), "n_affected": r["n_affected"],
            "affected_top": " ".join(f"{k}:{c}" for k, c in r["affected"].items()),
            "finetune_s": r["model"].summary.get("seconds", 0.0), "detect_s": r["seconds"].get("detect", 0.0),
            **extra}


def _table4_pretrain(p) -> str | None:
    """The pre-training victim Table 4 compares RoCLIP on (BadNet's, as the paper's), or None:
    then Table 4 is the fine-tuning victim's, with RoCLIP as fine-tuning."""
    return next((pv.attack for pv in p.pretrain_victims if pv.attack == "badnet"), None)


def _set_size(p, label, r) -> int:
    return {"cleanclip": p.defence.clean_scenes, "roclip": p.defence.clean_scenes, "eftclip": r["curated"]}.get(label, 0)


# ---------------------------------------------------------------------------
# Tables beside the paper, figures, claims
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
        out["threat_model"] = g["threat_model"].first().values
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
    """Table 1: detection rate at the default settings for each dataset and n, beside the paper."""
    from paperlib.papers import lookup
    d = p.detection
    det = sweep_rows(det, p, p.seeds)
    sel = det[(det.rho == d.default_rho) & (det.mu == d.default_position)
              & np.isclose(det.theta, p.eftclip.theta) & (det.tau == p.eftclip.tau)]
    g = sel.groupby(["dataset", "n_backdoor", "oracle"])
    out = g[["detection_rate", "false_alarm_rate"]].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["n_seeds"] = g["seed"].nunique()
    out = out.reset_index()
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
    Tables 3-4 at ``pretrain_seeds`` (Table 4 with RoCLIP as fine-tuning, at ``seeds``, when no
    BadNet pre-training victim is given), the rest at ``seeds``; Table 4 only in the threat model
    these parameters compare in."""
    t = tables[tables.scale == p.scale]
    if t.empty:
        return t
    every, abl = t.seed.isin(list(p.seeds)), t.seed.isin(list(p.ablation_seed_list))
    pre = t.seed.isin(list(p.pretrain_seed_list))
    threat = t["threat_model"] if "threat_model" in t else pd.Series(np.nan, index=t.index)
    scratch = _table4_pretrain(p) is not None
    variant = t.model.isin([f"eftclip_{r}" for r in p.other_rules]) & t.table.isin(["Table 2", "Table 5"])
    keep = np.select([t.table == "Table 6", variant, t.table == "Table 3", t.table == "Table 4"],
                     [abl, abl, pre, (pre & (threat == "pretrain")) if scratch else (every & (threat == "finetune"))],
                     default=every)
    return t[keep]


def save_tables(p: EftCLIPParams, det: pd.DataFrame, tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from paperlib.results import to_markdown, write_csv_atomic
    out_dir = Path(p.results_dir) / PAPER
    made = {"Table 1": table_1(det, p)}
    rows = rows_asked(tables, p)
    for t in ("Table 2", "Table 3", "Table 4", "Table 5", "Table 6"):
        made[t] = beside_paper_table(rows, t, p.scale)
    for name, df in made.items():
        if len(df):
            stem = name.lower().replace(" ", "")
            write_csv_atomic(df, out_dir / f"{stem}_{p.scale}.csv")
            to_markdown(df, out_dir / f"{stem}_{p.scale}.md")
    return made


def _save_rate_figure(fig, axes, title: str, path: Path) -> Path:
    """The detection-rate panels' shared axes (0-100%), legends and title; written as PNG."""
    from paperlib.results import save_figure
    for ax in axes:
        ax.set_ylim(0, 100)
        ax.set_ylabel("detection rate (%)")
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def sweep_rows(det: pd.DataFrame, p: EftCLIPParams, seeds) -> pd.DataFrame:
    """The rows of ``results/detection/eftclip.csv`` that these parameters' sweep makes at ``seeds``:
    this scale, the victim asked for, and only the datasets, n, rho, mu, theta, tau and oracles of
    ``detection`` (the file keeps rows of earlier runs, e.g. of a setting since dropped)."""
    d = p.detection
    keep = ((det.scale == p.scale) & det.seed.isin(list(seeds)) & (det.victim == f"badnet_{d.victim}")
            & det.dataset.isin(d.datasets) & det.n_backdoor.isin(d.n_backdoor) & det.rho.isin(d.rho_px)
            & det.mu.isin(d.positions) & det.tau.isin(d.taus) & det.oracle.isin(d.oracles)
            & np.isclose(det.theta.to_numpy()[:, None], np.asarray(d.thetas, float)[None, :]).any(1))
    return det[keep]


def _full_sweep(det: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """The rows of the whole sweep (Figs. 3-4): the ablation seeds (see ``sweep_at``)."""
    return sweep_rows(det, p, p.ablation_seed_list)


def plot_fig3(det: pd.DataFrame, p: EftCLIPParams):
    """Fig. 3: (a) detection rate by rho and mu at theta = default; (b) by theta per mu."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = _full_sweep(det, p)
    d = d[(d.oracle == "fastsam") & (d.tau == p.eftclip.tau)
          & (d.n_backdoor == max(p.detection.n_backdoor))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    a = d[np.isclose(d.theta, p.eftclip.theta)].copy()
    a["setting"] = a["dataset"].str.replace("_analog", "") + " rho=" + a["rho"].astype(str)
    sns.barplot(a, x="mu", y="detection_rate", hue="setting", ax=axes[0], errorbar=None)
    axes[0].set_title(f"(a) rho x mu, theta={p.eftclip.theta}", fontsize=9)
    b = d[d.rho == p.detection.default_rho]
    sns.lineplot(b, x="theta", y="detection_rate", hue="mu", style="dataset", markers=True, ax=axes[1], errorbar=None)
    axes[1].set_title(f"(b) theta, rho={p.detection.default_rho}", fontsize=9)
    return _save_rate_figure(fig, axes, f"EftCLIP Fig. 3 at the {p.scale} scale (FastSAM-analogue oracle)",
                             Path(p.results_dir) / PAPER / f"fig3_{p.scale}.png")


def plot_fig4(det: pd.DataFrame, p: EftCLIPParams):
    """Fig. 4: (a) detection rate by theta for each tau and dataset; (b) mu x tau on the CC3M analogue."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = _full_sweep(det, p)
    d = d[(d.oracle == "fastsam") & (d.rho == p.detection.default_rho)
          & (d.n_backdoor == max(p.detection.n_backdoor))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    a = d[d.mu == p.detection.default_position].copy()
    a["tau"] = "tau=" + a["tau"].astype(str)
    sns.lineplot(a, x="theta", y="detection_rate", hue="tau", style="dataset", markers=True, ax=axes[0], errorbar=None)
    axes[0].set_title("(a) theta x tau", fontsize=9)
    b = d[d.dataset == "cc3m_analog"].copy()
    b["setting"] = b["mu"] + " tau=" + b["tau"].astype(str)
    sns.lineplot(b, x="theta", y="detection_rate", hue="setting", markers=True, ax=axes[1], errorbar=None)
    axes[1].set_title("(b) mu x tau, CC3M analogue", fontsize=9)
    return _save_rate_figure(fig, axes, f"EftCLIP Fig. 4 at the {p.scale} scale",
                             Path(p.results_dir) / PAPER / f"fig4_{p.scale}.png")


def plot_fig6(lat: pd.DataFrame, p: EftCLIPParams):
    """Fig. 6: per-image oracle latency (ms), one dot per image."""
    import matplotlib.pyplot as plt

    from paperlib.results import save_figure

    lat = lat[lat.scale == p.scale]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    for (kind, g), colour in zip(lat.groupby("oracle"), ("tab:blue", "tab:red", "tab:green")):
        ax.scatter(g["image"], g["ms"], s=3, c=colour, label=f"{kind} (mean {g['ms'].mean():.1f} ms)")
        ax.axhline(g["ms"].mean(), color=colour, ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("image")
    ax.set_ylabel("ms per image")
    ax.legend(fontsize=7)
    ax.set_title(f"Oracle latency ({p.scale} scale; EftCLIP Fig. 6)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig6_{p.scale}.png")


def plot_fig7(p: EftCLIPParams, wb: Workbench | None = None):
    """Fig. 7: triggered images with the poisoned CLIP's list L_i and the oracle's S_i and boxes."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    from paperlib import pipeline as pl
    from paperlib.detect.eftclip import triggered
    from paperlib.results import save_figure
    wb = wb or Workbench(p)
    seed = p.seeds[0]
    victim, atk, _ = wb.victim("badnet", seed, p.detection.victim)
    split = pl.get_split("cc3m_analog", p.data)
    ids = wb.held_out_scenes("cc3m_analog", p.detection.figure_images, victim, seed)
    imgs = triggered(np.asarray(split.images[ids]), atk.pattern, p.detection.default_rho,
                     p.detection.default_position, seed=seed)
    oracle = wb.oracle("fastsam", "cc3m_analog")
    maker = wb.list_maker(victim, oracle)
    lists = maker.lists(maker.observe(imgs, p.eftclip.tau, p.eftclip.theta, p.eftclip.region_topk, ids),
                        p.eftclip.tau, p.eftclip.theta, p.eftclip.min_region_side)
    regions = oracle.segment(imgs, p.eftclip.theta, ids)
    n = len(ids)
    fig, axes = plt.subplots(n, 2, figsize=(6, 2.6 * n), squeeze=False)
    for i in range(n):
        for j in range(2):
            axes[i, j].imshow(imgs[i])
            axes[i, j].axis("off")
        axes[i, 0].set_title("C_p: " + ", ".join(lists[i].L), fontsize=6)
        for r in regions[i]:
            x0, y0, x1, y1 = r.box
            axes[i, 1].add_patch(patches.Rectangle((x0 - .5, y0 - .5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1))
        axes[i, 1].set_title("O: " + (", ".join(lists[i].S) or "-"), fontsize=6)
    fig.suptitle(f"EftCLIP Fig. 7 ({p.scale} scale): poisoned CLIP's list vs the oracle's", fontsize=8)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig7_{p.scale}.png")


def claims(made: dict[str, pd.DataFrame], det: pd.DataFrame, p: EftCLIPParams) -> pd.DataFrame:
    """EftCLIP's headline claims on our numbers (``results/eftclip/claims.csv``)."""
    from paperlib.compare import Claim, claims_table
    from paperlib.papers import lookup
    from paperlib.results import write_csv_atomic

    def cell(table, model, col, attack="badnet"):
        t = made.get(table, pd.DataFrame())
        sel = t[(t.attack == attack) & (t.model == model)] if len(t) else t
        if not len(sel):
            raise KeyError((table, model))
        return float(sel[f"{col}_mean"].iloc[0])

    det_s = _full_sweep(det, p)
    det_s = det_s[(det_s.oracle == "fastsam") & (det_s.tau == p.eftclip.tau)
                  & (det_s.n_backdoor == max(p.detection.n_backdoor))]

    def rate(**kw):
        s = det_s
        for k, v in kw.items():
            s = s[np.isclose(s[k], v)] if isinstance(v, float) else s[s[k] == v]
        if not len(s):
            raise KeyError(kw)
        return float(s["detection_rate"].mean())

    def from_scratch_gap(col):
        """EftCLIP minus RoCLIP in Table 4, when its RoCLIP is trained from scratch as the paper's
        (not the fine-tuning fallback of parameters without a pre-training victim)."""
        t = made.get("Table 4", pd.DataFrame())
        if not len(t) or "threat_model" not in t or set(t.threat_model.dropna()) != {"pretrain"}:
            raise KeyError(("Table 4", "threat_model"))
        return cell("Table 4", "eftclip", col) - cell("Table 4", "roclip", col)

    def oracle_gap():
        """|ASR with FastSAM - ASR with the exact oracle| in Table 6.  When neither oracle's
        Algorithm 2 found an affected label both curated sets are the same random subset
        (``curate``), so the two models are one fine-tuning and a gap of 0 says nothing about the
        oracles: not measured (ValueError)."""
        seeds = p.ablation_seed_list
        if all(_n_affected(p, "badnet", oracle=o, seeds=seeds) == 0 for o in ("fastsam", "exact")):
            raise ValueError("neither oracle found an affected label: both curated sets are random subsets")
        return abs(cell("Table 6", "eftclip_fastsam", "asr_top1") - cell("Table 6", "eftclip_exact", "asr_top1"))

    def paper(table, model, metric):
        ref = lookup(PAPER, table)
        sel = ref[(ref.defence == model) & (ref.metric == metric) & (ref.dataset == "imagenet")]
        return float(sel["value"].iloc[0])

    def versus(table, a, b, metric):
        return f"{paper(table, a, metric):.2f} vs {paper(table, b, metric):.2f}"

    t1 = made.get("Table 1", pd.DataFrame())
    cl = [
        Claim("Algorithm 1 detects >= 87% of triggered images (Table 1, worst dataset and n)", "87.4-90.1",
              lambda _: float(t1[t1.oracle == "fastsam"]["detection_rate_mean"].min()), lambda v: v >= 87),
        Claim("EftCLIP lowers BadNet top-1 ASR below CleanCLIP's (Table 2)", "13.87 vs 17.00",
              lambda _: cell("Table 2", "cleanclip", "asr_top1") - cell("Table 2", "eftclip", "asr_top1"),
              lambda v: v > 0),
        Claim("EftCLIP keeps top-1 CA at least CleanCLIP's (Table 2)", "58.20 vs 57.00",
              lambda _: cell("Table 2", "eftclip", "ca_top1") - cell("Table 2", "cleanclip", "ca_top1"),
              lambda v: v >= 0),
        Claim("EftCLIP brings top-1 ASR below 15% on all four attacks (Table 5, worst attack)", "8.43-12.30",
              lambda _: max(cell("Table 5", "eftclip", "asr_top1", a) for a in p.table5_attacks), lambda v: v < 15),
        Claim("EftCLIP costs at most 1 point of top-1 CA against the victim (Table 5, worst attack)", "-0.09 to +0.53",
              lambda _: max(cell("Table 5", "none", "ca_top1", a) - cell("Table 5", "eftclip", "ca_top1", a)
                            for a in p.table5_attacks), lambda v: v <= 1),
        Claim("Bottom-right triggers are detected more often than random ones (Fig. 3a)", "holds for rho 8 and 16",
              lambda _: rate(mu="bottom_right", theta=p.eftclip.theta) - rate(mu="random", theta=p.eftclip.theta),
              lambda v: v > 0),
        Claim("Detection falls as theta rises (Fig. 3b: lowest theta minus highest)", "decreasing",
              lambda _: rate(theta=float(min(p.detection.thetas))) - rate(theta=float(max(p.detection.thetas))),
              lambda v: v > 0),
        Claim("Algorithm 2 as printed finds affected labels (number of labels in A, BadNet)", "a frequency list "
              "(Sec. 4.4)", lambda _: _n_affected(p, "badnet"), lambda v: v > 0),
        Claim("On the pre-training victim EftCLIP keeps top-1 CA at least CleanCLIP's (Table 3)",
              versus("Table 3", "eftclip", "cleanclip", "ca"),
              lambda _: cell("Table 3", "eftclip", "ca_top1") - cell("Table 3", "cleanclip", "ca_top1"),
              lambda v: v >= 0),
        Claim("On the pre-training victim EftCLIP lowers top-1 ASR below CleanCLIP's (Table 3)",
              versus("Table 3", "eftclip", "cleanclip", "asr"),
              lambda _: cell("Table 3", "cleanclip", "asr_top1") - cell("Table 3", "eftclip", "asr_top1"),
              lambda v: v > 0),
        Claim("EftCLIP keeps at least RoCLIP's top-1 CA, RoCLIP trained from scratch (Table 4)",
              versus("Table 4", "eftclip", "roclip", "ca"),
              lambda _: from_scratch_gap("ca_top1"), lambda v: v >= 0),
        Claim("EftCLIP's top-1 ASR is at most RoCLIP's trained from scratch (Table 4)",
              versus("Table 4", "eftclip", "roclip", "asr"),
              lambda _: from_scratch_gap("asr_top1"), lambda v: v <= 0),
        Claim("The precise oracle changes EftCLIP's ASR by < 1 point (Table 6; not measured when neither "
              "oracle's Algorithm 2 finds an affected label)", "9.70 vs 9.67",
              lambda _: oracle_gap(), lambda v: v < 1),
    ]
    out = claims_table(cl, pd.DataFrame())
    out.insert(0, "scale", p.scale)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / "claims.csv")
    return out


def _n_affected(p: EftCLIPParams, attack: str, oracle: str = "fastsam", seeds=None) -> float:
    """Mean number of affected labels Algorithm 2 found for ``attack`` (fine-tuning victims) over
    ``seeds`` (default: every seed), from ``curation.csv``; KeyError when not run."""
    f = Path(p.results_dir) / PAPER / "curation.csv"
    if not f.is_file():   # no curated run yet: the claim is not measured
        raise KeyError(str(f))
    c = pd.read_csv(f)
    missing = {"attack", "scale", "seed", "oracle", "threat_model", "n_affected"} - set(c.columns)
    if missing:           # a file from older code: the claim is not measured rather than a crash
        raise KeyError(f"{f} lacks columns {sorted(missing)}")
    seeds = list(p.seeds) if seeds is None else list(seeds)
    c = c[(c.attack == attack) & (c.scale == p.scale) & c.seed.isin(seeds) & (c.oracle == oracle)
          & (c.threat_model == "finetune")
          & (c.get("rule", pd.Series("paper", index=c.index)).fillna("paper") == p.eftclip.affected_rule)]
    if not len(c) or c["n_affected"].isna().all():
        raise KeyError(attack)
    return float(c["n_affected"].mean())


def run(p: EftCLIPParams, log=print) -> dict:
    """Everything: detection sweep, oracle benchmark, curated defences, tables, figures, claims."""
    from paperlib.results import Timer, write_manifest
    timer = Timer()
    with timer("setup"):
        wb = Workbench(p)
        wb.segmenter()
    with timer("detection"):
        det = detection_sweep(p, wb, log)
    with timer("oracle_benchmark"):
        oracle_rows, lat = oracle_benchmark(p, wb)
    with timer("defences"):
        tables = defence_tables(p, wb, log)["tables"]
    with timer("figures"):
        made = save_tables(p, det, tables)
        figs = [plot_fig3(det, p), plot_fig4(det, p), plot_fig6(lat, p), plot_fig7(p, wb)]
    cl = claims(made, det, p)
    write_manifest(Path(p.results_dir) / PAPER / f"manifest_{p.scale}.json", asdict(p), timer.sections)
    return {"detection": det, "oracle": oracle_rows, "tables": made, "figures": figs, "claims": cl}


if __name__ == "__main__":
    from paperlib.experiments.common import cli
    raise SystemExit(cli(load, run, description=__doc__))

__all__ = ["EftCLIPParams", "DetectionSweep", "Workbench", "load", "detection_sweep", "sweep_at", "detection_key", "rows_asked", "oracle_benchmark",
           "curated_defence", "defence_tables", "beside_paper_table", "table_1", "save_tables", "plot_fig3",
           "plot_fig4", "plot_fig6", "plot_fig7", "claims", "run"]
