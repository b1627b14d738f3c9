"""EftCLIP's parameters and shared setup: the schema (:class:`EftCLIPParams`), its sweeps, the
result-row columns and the :class:`Workbench` that holds the base, victims and oracles of a run.
:mod:`paperlib.experiments.eftclip` runs the experiment; :mod:`paperlib.experiments.eftclip_report`
makes its tables and claims, :mod:`paperlib.experiments.eftclip_figures` its figures."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperlib.attacks.badnet import POSITIONS
from paperlib.config import ParamError, load_params, param
from paperlib.detect.eftclip import ALG1_READINGS, EftCLIPConfig
from paperlib.detect.oracle import ORACLE_KINDS, THETA_SCALES, SegmenterConfig
from paperlib.experiments.attacks import PretrainVictimConfig
from paperlib.experiments.defences import DefenceMatrixParams
from paperlib.experiments.victims import complete_victims

log = logging.getLogger(__name__)
PAPER = "eftclip"
DATASETS = ("cc3m_analog", "flickr_analog")
PAPER_DATASET = {"cc3m_analog": "cc3m", "flickr_analog": "flickr30k"}
DETECTION_COLUMNS = ("dataset", "n_backdoor", "rho", "mu", "theta", "theta_scale", "theta_oracle", "tau", "oracle",
                     "alg1_reading", "detection_rate", "false_alarm_rate", "k_size", "target_rank", "victim",
                     "scale", "seed", "victim_model", "eval_key")
# rows name their victim model (cache key) and settings (eftclip.settings_digest): a run on other victims
# or at other settings adds rows beside these (issue 25)
DETECTION_KEY = ("dataset", "n_backdoor", "rho", "mu", "theta", "theta_scale", "tau", "oracle", "alg1_reading",
                 "victim", "scale", "seed", "victim_model", "eval_key")   # eval_key: the sweep's settings
# block (eftclip._block): a block's rows are written together and stay together, so one found is whole
TABLES_KEY = ("table", "attack", "model", "scale", "seed", "victim_model", "settings", "block")
CURATION_KEY = ("attack", "threat_model", "oracle", "rule", "theta_scale", "alg1_reading", "scale", "seed",
                "victim_model", "settings", "block")
# what rows written before theta scales and Algorithm 1 readings existed were (paper scale, as printed)
ROW_DEFAULTS = {"theta_scale": "paper", "alg1_reading": "printed"}


@dataclass(frozen=True)
class DetectionSweep:
    """Which triggered images Algorithm 1 runs on and which settings it sweeps (Table 1, Figs. 3-4)."""
    datasets: tuple[str, ...] = param(DATASETS, choices=DATASETS, doc="captioned sets (CC3M, Flickr30K analogues)")
    n_backdoor: tuple[int, ...] = param((500, 1000), range=(1, None), doc="triggered images per run (Table 1)")
    rho_px: tuple[int, ...] = param((8, 16), range=(1, None), doc="trigger side in pixels of our images (Fig. 3a)")
    positions: tuple[str, ...] = param(("random", "top_left", "bottom_right"), choices=POSITIONS,
                                       doc="trigger positions mu (Fig. 3a)")
    thetas: tuple[float, ...] = param((0.3, 0.5, 0.66, 0.8, 0.9), range=(0.0, 1.0),
                                      doc="oracle confidences on the paper's scale (Fig. 3b, 4)")
    theta_scales: tuple[str, ...] = param(THETA_SCALES, choices=THETA_SCALES,
                                          doc="how each theta reaches our segmenter (eftclip.theta_scale): both by default")
    alg1_readings: tuple[str, ...] = param(ALG1_READINGS, choices=ALG1_READINGS,
                                           doc="Algorithm 1 readings run on the same lists (eftclip.alg1_reading): both "
                                               "by default, so the theta trend of each is measured")
    taus: tuple[int, ...] = param((5, 7), range=(1, None), doc="object-list lengths (Fig. 4)")
    oracles: tuple[str, ...] = param(ORACLE_KINDS, choices=ORACLE_KINDS, doc="oracles to compare")
    default_rho: int = param(16, range=(1, None), doc="rho of Table 1 (the victim's own trigger size)")
    default_position: str = param("random", choices=POSITIONS, doc="mu of Table 1: where the victim learned its patch (random for the "
                                  "pre-training victim and the old suite, bottom_right for the new victims)")
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
    table5_threat: str = param("finetune", choices=("finetune", "pretrain"),
                               doc="which victims Table 5 defends: the paper's are pre-trained on poisoned CC3M "
                                   "(pretrain: each Table 5 attack needs a pretrain_victims entry, at pretrain_seeds); "
                                   "with pretrain the fine-tuning victims' rows stay, as an ablation table")
    only_threat: str = param("", choices=("", "finetune", "pretrain"),
                             doc="rows only, of one threat model's victims (a GPU lending's jobs, "
                                 "paperlib.experiments.eftclip_jobs): no detection sweep, figures, tables or claims")
    other_rules: tuple[str, ...] = param(("detected",), choices=("paper", "detected"),
                                         doc="Algorithm 2 readings run beside eftclip.affected_rule "
                                             "(rows eftclip_<rule> in Tables 2 and 5)")

    def validate(self):
        super().validate()
        outside = sorted(set(self.ablation_seed_list) - set(self.seeds_for("badnet")))
        if outside:   # the detection sweep runs at BadNet's seeds; its ablation rows would be missing
            raise ParamError(f"ablation_seeds {outside}: not among BadNet's seeds {list(self.seeds_for('badnet'))} "
                             "(seeds, or seeds_by_attack.badnet)")
        attacks = {v.attack for v in self.victims}
        if "badnet" not in attacks:
            raise ParamError("victims: EftCLIP needs a badnet victim (its detection experiments use BadNet)")
        missing = [a for a in self.table5_attacks if a not in attacks]
        if missing:
            raise ParamError(f"table5_attacks: no victim for {missing}; victims: {sorted(attacks)}")
        if self.table5_threat == "pretrain":
            lacking = sorted(set(self.table5_attacks) - {v.attack for v in self.pretrain_victims})
            if lacking:
                raise ParamError(f"table5_threat: pretrain needs a pretrain_victims entry for {lacking} "
                                 f"(table5_attacks); pretrain_victims: {[v.attack for v in self.pretrain_victims]}")
        if self.detection.victim == "pretrain" and not any(v.attack == "badnet" for v in self.pretrain_victims):
            raise ParamError("detection.victim=pretrain needs a badnet entry in pretrain_victims")
        if self.eftclip.theta_scale not in self.detection.theta_scales:
            raise ParamError(f"detection.theta_scales {list(self.detection.theta_scales)} must hold eftclip.theta_scale "
                             f"{self.eftclip.theta_scale!r} (Table 1 and the claims read its rows)")
        if self.eftclip.alg1_reading not in self.detection.alg1_readings:
            raise ParamError(f"detection.alg1_readings {list(self.detection.alg1_readings)} must hold "
                             f"eftclip.alg1_reading {self.eftclip.alg1_reading!r} (Table 1 and the claims read its rows)")


# Bump when the code behind a seed's detection rows changes what they hold (triggered(), ListMaker,
# the oracles, identify_affected_labels, _sweep_one_seed): cached sweeps of older code are then rebuilt.
SWEEP_CODE_VERSION = 3   # 2: FastSAM regions cropped by their masks; 3: theta scales, Algorithm 1 readings

# Bump when the code behind a curated set or its tables changes what their rows hold
CURATION_CODE_VERSION = 1


def settings_digest(p: EftCLIPParams) -> str:
    """A short digest of every setting a row of tables.csv / curation.csv depends on beyond its
    victim (``victim_model``), seed and labels: EftCLIP's and the segmenter's settings, the defence
    budget (its precision resolved on this device), the retained set, Algorithm 2's other readings,
    the evaluation and data settings, the model, the clean base and its pre-training, the code versions.  With
    ``victim_model`` it lets a machine without the models tell a published row of these very
    settings from one of others (issue 25: rows standing in for absent models)."""
    import hashlib
    import json

    from dataclasses import asdict

    from paperlib.cache import canonical
    import torch
    # the device type without asking for it (a GPU file's digest is computable on a CPU)
    device_type = p.device if p.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    what = {"eftclip": asdict(p.eftclip), "segmenter": asdict(p.segmenter), "defence": asdict(p.defence),
            "defence_train": p.defence.train.key(device_type),   # precision resolved
            "retained_images": p.retained_images, "other_rules": list(p.other_rules), "eval": asdict(p.eval),
            "data": asdict(p.data), "model": p.model, "base": p.base_checkpoint, "pretrain": asdict(p.pretrain),
            "oracles": list(p.detection.oracles), "code": [SWEEP_CODE_VERSION, CURATION_CODE_VERSION]}
    return hashlib.sha256(json.dumps(canonical(what), sort_keys=True).encode()).hexdigest()[:12]


def detection_key(p: "EftCLIPParams", d: DetectionSweep, wb: "Workbench", victim, seed: int) -> dict:
    """Everything one seed's detection rows depend on: the victim and the clean model (by cache
    key), the oracles (the segmenter's key), the captioned splits, the sweep, Algorithm 1's
    settings, the zero-shot prompts and the held-out scene choice (which excludes the defence's
    clean pool and the segmenter's training scenes), and theta's calibration (the segmenter's key and
    validation scenes fix the confidences it reads; its settings are here)."""
    from paperlib import pipeline as pl
    cfg = p.eftclip
    return {"role": "eftclip_detection", "code": SWEEP_CODE_VERSION, "victim": victim.path.name, "clean": wb.base.path.name,
            "oracles": {k: (wb.segmenter().name if k == "fastsam" else k) for k in d.oracles},
            "splits": {ds: pl.split_params(ds, p.data) for ds in (*d.datasets, "imagenet_analog")},
            "sweep": {k: getattr(d, k) for k in ("datasets", "n_backdoor", "rho_px", "positions", "thetas",
                                                 "taus", "oracles", "victim", "theta_scales", "alg1_readings")},
            "algorithm": {k: getattr(cfg, k) for k in ("region_topk", "min_region_side", "affected_rule")},
            "theta_calibration": {k: getattr(cfg, k) for k in ("theta_anchor", "calibration_metric",
                                                               "calibration_target", "calibration_iou")},
            "templates": p.eval.templates, "clean_scenes": p.defence.clean_scenes,
            "segmenter_scenes": p.segmenter.train_scenes + p.segmenter.val_scenes, "seed": seed}


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
        self._theta = {}
        self._absent = {}   # victim key -> absent from the cache when first asked (see victim_absent)
        self.note_absent_victims()

    def victim(self, attack: str, seed: int, threat: str = "finetune"):
        from paperlib.experiments.common import finetune_victim, pretrain_victim, victim_attack, victim_config
        v = victim_config(self.p, attack, threat)
        if threat == "finetune":
            return finetune_victim(self.p, self.base, v, seed), victim_attack(self.p, self.base, v), v
        atk = victim_attack(self.p, self.base, v)
        return pretrain_victim(self.p, self.base, v, seed, atk), atk, v

    def victim_key(self, attack: str, seed: int, threat: str = "finetune") -> dict:
        """The cache key of :meth:`victim`'s model, without training it."""
        from paperlib.experiments.common import pretrain_victim_key, victim_config, victim_key
        v = victim_config(self.p, attack, threat)
        return (victim_key if threat == "finetune" else pretrain_victim_key)(self.p, self.base, v, seed)

    def victim_unbuilt(self, attack: str, seed: int, threat: str = "finetune"):
        """:meth:`victim`'s artifact without training it: its key names the scenes it was poisoned on."""
        from paperlib import pipeline as pl
        from paperlib.cache import ArtifactCache
        key = self.victim_key(attack, seed, threat)
        return pl.ModelArtifact(self.p.model, ArtifactCache().path("model", key), key)

    def victim_absent(self, key: dict) -> bool:
        """Whether the victim of ``key`` was absent from the cache when this workbench first asked:
        the answer stays for the workbench's life, so a victim a figure trains later in the run does
        not turn rows that stood in for it into a recomputation."""
        from paperlib.cache import ArtifactCache, artifact_key
        name = artifact_key("model", key)
        if name not in self._absent:
            self._absent[name] = not ArtifactCache().exists("model", key)
        return self._absent[name]

    def note_absent_victims(self) -> None:
        """Ask once, at the start, for every victim the sections read (see :meth:`victim_absent`)."""
        p = self.p
        for attack in dict.fromkeys(("badnet", *p.table5_attacks)):
            for seed in p.seeds_for(attack):
                self.victim_absent(self.victim_key(attack, seed, "finetune"))
        for seed in p.seeds_for("badnet"):
            self.victim_absent(self.victim_key("badnet", seed, p.detection.victim))
        for pv in p.pretrain_victims:
            for seed in p.pretrain_seed_list:
                self.victim_absent(self.victim_key(pv.attack, seed, "pretrain"))

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

    def theta_map(self, kind: str, scale: str | None = None):
        """How the paper's theta reaches oracle ``kind`` (a :class:`~paperlib.detect.oracle.ThetaCalibration`,
        ``to_oracle(theta)`` gives the cut): at ``scale="calibrated"`` (default ``eftclip.theta_scale``)
        the FastSAM analogue is calibrated once per workbench on the segmenter's validation scenes
        (clean, exact masks, a few seconds); the exact-mask oracle (confidence 1 for every object)
        has no scale of its own and takes theta as it is, as does ``scale="paper"``."""
        from paperlib import pipeline as pl
        from paperlib.detect.oracle import ThetaCalibration, calibrate_oracle, segmenter_val_ids
        cfg = self.p.eftclip
        scale = scale or cfg.theta_scale
        if scale == "paper" or kind != "fastsam":
            return ThetaCalibration.identity(cfg.theta_anchor)
        if kind not in self._theta:
            split = pl.get_split("cc3m_analog", self.p.data)
            self._theta[kind] = calibrate_oracle(
                self.oracle(kind, "cc3m_analog"), split, segmenter_val_ids(len(split), self.p.segmenter),
                cfg.theta_anchor, cfg.calibration_metric, cfg.calibration_target, cfg.calibration_iou)
            log.info("theta calibrated: %s", self._theta[kind])
        return self._theta[kind]

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


def _table4_pretrain(p) -> str | None:
    """The pre-training victim Table 4 compares RoCLIP on (BadNet's, as the paper's), or None:
    then Table 4 is the fine-tuning victim's, with RoCLIP as fine-tuning."""
    return next((pv.attack for pv in p.pretrain_victims if pv.attack == "badnet"), None)
