"""Poisoned-pair detection: CFBD's coarse-to-fine detector on every victim's poisoned set, and the
model retrained on the pairs it keeps.

Parameters: ``params/detection/<scale>.yaml`` (schema :class:`DetectionParams`).  The clean base
and the victims' poisoned pair sets are the foundation's / attack suite's (same cache keys when
the same settings are given).  CFBD's detector uses the clean pre-trained CLIP's encoders (the
defender's model) and a mapping network trained on the Flickr30K analogue (the paper: COCO),
disjoint from the poisoned set: by default the MLP regressing the caption's text embedding
(``mapping.kind: regression``, :mod:`paperlib.detect.mapping` says why), the LM captioner as the
ablation.  Output: ``results/detection/cfbd.csv`` for the default mapping (attack, poison_count,
stage, tpr, fpr, auroc, auprc, the CA / ASR of the retrained model, and the detector's effective
settings: ``q_eff`` the seed set's size after the cap, ``gamma_z`` the fine-stage threshold used,
``n_benign`` the size of the coarse benign set D_b), ``cfbd_mapping-<kind>.csv`` for another
mapping, and its manifest.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from paperlib import cache as ledger   # the run's ledger of artifacts and work (for the cost estimate)
from paperlib.config import SAFETENSORS, SCALES, ParamError, load_params, param
from paperlib.data.splits import DataConfig
from paperlib.detect.abl import ABLConfig
from paperlib.detect.cfbd import CFBDConfig
from paperlib.detect.mapping import MappingConfig
from paperlib.experiments.abl_isolation import ABL_COLUMNS, ABL_KEY, abl_key, pairs_key, run_abl_on  # noqa: F401 (re-exported)
from paperlib.experiments.common import published_row
from paperlib.experiments.foundation import EvalConfig, VictimConfig
from paperlib.models import model_names
from paperlib.results import results_dir_param
from paperlib.train.loop import TrainConfig
from paperlib.experiments.victims import complete_victims

CFBD_COLUMNS = ("attack", "poison_count", "stage", "scale", "seed", "tpr", "fpr", "auroc", "auprc",
                "ca_top1", "asr_top1", "kept", "n_pairs", "q_eff", "gamma_z", "n_benign", "benign_rule",
                "gamma_z_rule", "gamma_z_quantile", "mapping", "victim_model", "model", "detector",
                # the machine whose screening gave the detection columns (the retraining's, with its
                # ca/asr, is the matrix row of ``model``); rows from before the column: docs/provenance.md
                "screened_on")
# the mapping whose results are CFBD's (cfbd.csv, the defence matrix's cfbd rows); others are ablations
DEFAULT_MAPPING = MappingConfig().kind


@dataclass(frozen=True)
class DetectionParams:
    scale: str = param("embedded", choices=SCALES, doc="which scale these parameters describe")
    model: str = param("tiny-rn64", choices=model_names, doc="open_clip model config")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), doc="where to train")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of the victims")
    seeds_by_attack: dict = param(default_factory=dict, doc="attack -> its seeds where they are not ``seeds`` "
                                  "(issue 24: BadNet's headline rows at 5 seeds, the others at 3)")
    data: DataConfig = param(default_factory=DataConfig)
    pretrain: TrainConfig = param(default_factory=TrainConfig, doc="clean pre-training (shared with foundation)")
    base_checkpoint: str | None = param(None, suffixes=SAFETENSORS,
                                        doc="safetensors of a pre-trained CLIP used as the clean base "
                                            "instead of pre-training one (the paper scale: OpenAI's RN50)")
    victims: tuple[VictimConfig, ...] = param((), doc="victims whose poisoned sets are screened")
    cfbd: CFBDConfig = param(default_factory=CFBDConfig, doc="CFBD's K, gamma and benign rule, q and its cap, "
                                                           "gamma_z and its rule")
    mapping: MappingConfig = param(default_factory=MappingConfig, doc="CFBD's mapping network F")
    retrain: bool = param(True, doc="fine-tune the clean base on the kept pairs (victim's recipe) and evaluate")
    retrain_attacks: tuple[str, ...] = param((), doc="attacks whose kept pairs are retrained on (empty: all)")
    retrain_stages: tuple[str, ...] = param(("fine",), choices=("coarse", "fine"),
                                            doc="which stage's kept pairs to retrain on (coarse: D_b only)")
    abl: ABLConfig = param(default_factory=ABLConfig, doc="ABL, the baseline detector")
    run_abl: bool = param(True, doc="also run ABL on every poisoned set")
    reuse_rows: bool = param(True, doc="a retrained or ABL model absent from this cache: take its row from the "
                                       "results files (defences/matrix.csv, detection/abl.csv) when one names "
                                       "the model (cache key) this run would train, instead of training it")
    eval: EvalConfig = param(default_factory=EvalConfig)
    results_dir: str = results_dir_param()

    def validate(self):
        if not self.victims:
            raise ParamError("victims: give at least one victim whose poisoned set is screened")
        from paperlib.experiments.victims import check_seeds_by_attack
        check_seeds_by_attack(self.seeds_by_attack, {v.attack for v in self.victims})

    def seeds_for(self, attack: str) -> tuple[int, ...]:
        """The seeds of ``attack``'s victim (its poisoned set, screening and retraining)."""
        return tuple(self.seeds_by_attack.get(attack, self.seeds))


# a detection row is keyed by the detector's rules too: a run under other rules adds rows
# and by the victim whose poisoned pairs were screened (its cache key: the trigger recipe, base, count
# and seed), so rows of an older victim recipe never mix with these
CFBD_KEY = ("attack", "poison_count", "stage", "scale", "seed", "mapping", "benign_rule", "gamma_z_rule",
            "gamma_z_quantile", "victim_model")
# what rows written before the rules were recorded were made with (the detector until issue 23)
CFBD_OLD_RULES = {"mapping": "lm", "benign_rule": "posterior", "gamma_z_rule": "fixed"}


def rows_of_these_rules(df, p: DetectionParams):
    """The rows of a CFBD detection file made under ``p``'s mapping and rules (a row without a
    rule column was made under :data:`CFBD_OLD_RULES`); under the quantile rule, at ``p``'s
    quantile too (a quantile-rule row that names none is not taken for any)."""
    import pandas as pd
    want = {"mapping": p.mapping.kind, "benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule}
    keep = pd.Series(True, index=df.index)
    for col, value in want.items():
        have = df[col].fillna(CFBD_OLD_RULES[col]) if col in df.columns else pd.Series(CFBD_OLD_RULES[col], index=df.index)
        keep &= have == value
    if p.cfbd.gamma_z_rule == "quantile":
        q = pd.to_numeric(df["gamma_z_quantile"], errors="coerce") if "gamma_z_quantile" in df.columns \
            else pd.Series(np.nan, index=df.index)
        keep &= np.isclose(q.to_numpy(float), p.cfbd.gamma_z_quantile)
    return df[keep]


def cfbd_file(p: DetectionParams) -> str:
    """``cfbd.csv`` for the default mapping network (the regression MLP since issue 23); the LM
    captioner (the ablation) writes ``cfbd_mapping-lm.csv`` so the two never mix in one table.
    (Before issue 23 the LM captioner was the default and wrote ``cfbd.csv``, the regression MLP
    ``cfbd_mapping-regression.csv``.)"""
    return "cfbd.csv" if p.mapping.kind == DEFAULT_MAPPING else f"cfbd_mapping-{p.mapping.kind}.csv"


def load(path: str | Path | None = None, overrides: dict | None = None) -> DetectionParams:
    return load_params(DetectionParams, path, overrides, complete=complete_victims)


def mapping_key(p: DetectionParams, base) -> dict:
    """The cache key of CFBD's mapping network F (:func:`trained_mapping`), without training it."""
    from paperlib.data.splits import split_params
    return {"role": "cfbd_mapping", "base": base.key_params, "cfg": asdict(p.mapping),
            "split": split_params("flickr_analog", p.data)}


def detector_digest(p: DetectionParams, base) -> str:
    """A digest of everything that makes CFBD's scores and decisions beyond the screened set: the
    mapping network (its cache key: settings, training data, base) and every detector setting
    (K, gamma, the rules, q and its cap, gamma_z, the GMM's seed).  Detection rows record it
    (``detector``), so a row stands in only for a run of the very same detector."""
    from paperlib.cache import artifact_key
    return artifact_key("detector", {"mapping": mapping_key(p, base), "cfbd": asdict(p.cfbd)})


def trained_mapping(p: DetectionParams, base, device):
    """CFBD's F, trained on the Flickr30K analogue's (image embedding, caption) pairs; cached."""
    import json

    from safetensors.torch import save_file

    from paperlib import pipeline as pl
    from paperlib.cache import ArtifactCache, write_json_atomic
    from paperlib.data.splits import split_params
    from paperlib.detect.mapping import MappingNetwork, PrefixCaptioner, RegressionMapping, WordVocab
    from paperlib.eval.zeroshot import encode_images
    from paperlib.models import read_safetensors
    cache = ArtifactCache()
    key = mapping_key(p, base)
    split = pl.get_split("flickr_analog", p.data, cache)

    def build(work: Path):
        model = base.load(device)
        emb = encode_images(model, split.images, 512, device)
        caps = [c[0] for c in split.captions]
        text_emb = None
        if p.mapping.kind == "regression":
            tok = pl.split_tokens(split, split_params("flickr_analog", p.data), base.name, cache)
            text_emb = pl.encode_token_rows(model, tok[:, 0], device)
        m = MappingNetwork(p.mapping).fit(emb, caps, text_emb, device)
        save_file({k: v.contiguous().cpu() for k, v in m.net.state_dict().items()}, str(work / "mapping.safetensors"))
        write_json_atomic(work / "mapping.json", {"vocab": m.vocab.itos if m.vocab else None,
                                                  "embed_dim": int(emb.shape[1]), "history": m.history})

    path = cache.get_or_build("mapping", key, build)
    meta = json.loads((path / "mapping.json").read_text())
    m = MappingNetwork(p.mapping)
    if p.mapping.kind == "lm":
        m.vocab = WordVocab([])
        m.vocab.itos = meta["vocab"]
        m.vocab.stoi = {w: i for i, w in enumerate(m.vocab.itos)}
        m.net = PrefixCaptioner(meta["embed_dim"], len(m.vocab), p.mapping)
    else:
        m.net = RegressionMapping(meta["embed_dim"], 4 * meta["embed_dim"])
    m.net.load_state_dict(read_safetensors(path / "mapping.safetensors"))
    m.net.to(device).eval()
    m.history = meta["history"]
    return m


@dataclass
class Screened:
    """One poisoned pair set seen through the defender's clean CLIP and mapping network."""
    ps: object                 # the PoisonedSet
    truth: np.ndarray          # bool per pair: poisoned
    image_emb: np.ndarray
    caption_emb: np.ndarray
    synthetic_emb: np.ndarray
    c: np.ndarray              # CFBD's consistency per pair (Eq. 4)
    victim_model: str = ""     # the cache key of the victim these pairs train (whether or not it is trained)


def poisoned_pair_set(p: DetectionParams, base, split, tokens, v: VictimConfig, seed: int, count: int, device):
    """The pairs ``v``'s victim trained on at ``seed`` with ``count`` poisoned (its clean scenes of
    ``split``, the trigger fitted on ``base`` where the attack needs it), and which are poisoned."""
    from paperlib import pipeline as pl
    from paperlib.experiments.common import victim_attack
    atk = victim_attack(p, base, v)
    ids = pl.finetune_scene_ids(split, v.finetune_scenes, seed)
    enc = pl.clean_encoder(base, v.poison.target, device) if atk.needs_encoder and count else None
    ps = pl.poisoned_pairs(split, tokens, ids, atk, v.poison.target, count, seed, base.name, encoder=enc,
                           caption=v.poison.caption)
    truth = np.zeros(len(ps.pairs.rows), bool)
    truth[ps.poisoned_rows] = True
    return ps, truth


class Screener:
    """Poisoned pair sets and their CFBD scores; the embeddings of clean scenes are computed once
    and shared by every pair set drawn from the same scenes (e.g. one attack at several rates).

    What screening needs (the mapping network, the rendered scenes, their tokens) is built at the
    first :meth:`screen`, not before: a run whose every screening stands in by its published rows
    (:mod:`paperlib.experiments.cfbd_standin`) builds none of it."""

    def __init__(self, p: DetectionParams, base, device):
        self.p, self.base, self.device = p, base, device
        self.mapping = None        # CFBD's F, once something is screened
        self._scene = {}           # scene id -> (image, caption, synthetic) embeddings

    def ready(self) -> None:
        """Build (or load) what screening needs; nothing when it is built already."""
        from paperlib import pipeline as pl
        from paperlib.data.splits import split_params
        from paperlib.models import get_tokenizer
        if self.mapping is not None:
            return
        p, base = self.p, self.base
        mapping = trained_mapping(p, base, self.device)
        self.clean = base.load(self.device)
        self.tokenizer = get_tokenizer(base.name)
        self.split = pl.get_split("cc3m_analog", p.data)
        self.tokens = pl.split_tokens(self.split, split_params("cc3m_analog", p.data), base.name, pl.ArtifactCache())
        self.mapping = mapping

    def _embed(self, pairs, rows: np.ndarray):
        from paperlib import pipeline as pl
        img, txt, _ = pl.pair_embeddings(self.clean, pairs.subset(rows), self.device)
        synth, _ = self.mapping.synthetic(img, self.clean, self.tokenizer, self.device)
        return img.numpy(), txt.numpy(), synth.numpy()

    def screen(self, v: VictimConfig, seed: int, poison_count: int | None = None) -> Screened:
        from dataclasses import replace

        from paperlib.detect.cfbd import consistency
        from paperlib.experiments.common import victim_model_name
        self.ready()
        count = v.poison.poison_count if poison_count is None else poison_count
        ps, truth = poisoned_pair_set(self.p, self.base, self.split, self.tokens, v, seed, count, self.device)
        rows = ps.pairs.rows
        base_pos = np.flatnonzero(rows >= 0)
        missing = base_pos[[int(rows[k]) not in self._scene for k in base_pos]]
        if len(missing):
            for k, e in zip(missing, zip(*self._embed(ps.pairs, missing))):
                self._scene[int(rows[k])] = e
        n = len(rows)
        img = [None] * n
        txt = [None] * n
        syn = [None] * n
        for k in base_pos:
            img[k], txt[k], syn[k] = self._scene[int(rows[k])]
        extra = np.flatnonzero(rows < 0)
        if len(extra):
            for k, e in zip(extra, zip(*self._embed(ps.pairs, extra))):
                img[k], txt[k], syn[k] = e
        img, txt, syn = np.stack(img), np.stack(txt), np.stack(syn)
        of_count = v if count == v.poison.poison_count else replace(v, poison=replace(v.poison, poison_count=count))
        return Screened(ps=ps, truth=truth, image_emb=img, caption_emb=txt, synthetic_emb=syn,
                        c=consistency(img, txt, syn), victim_model=victim_model_name(self.p, self.base, of_count, seed))


def retrains(p: DetectionParams, attack: str) -> bool:
    """Whether ``p`` retrains on the pairs its detector keeps from ``attack``'s set."""
    return p.retrain and (not p.retrain_attacks or attack in p.retrain_attacks)


def run(p: DetectionParams, log=print, screener: Screener | None = None, also_published=None) -> dict:
    """Screen every victim's poisoned set at its seeds, detect, retrain on the kept pairs.  A
    screening whose rows are published and whose models this cache lacks stands in by its rows
    (:mod:`paperlib.experiments.cfbd_standin`; ``also_published``: what else of it a paper needs
    published, see :func:`~paperlib.experiments.cfbd_standin.published_screening`); its entry in
    ``scores`` is ``{"screened": PublishedScreening}``, and ``stood_in`` lists them."""
    from paperlib import pipeline as pl
    from paperlib.detect.cfbd import detect
    from paperlib.detect.metrics import auroc_auprc, tpr_fpr
    from paperlib.cache import artifact_key, note_model_stood_in
    from paperlib.experiments.cfbd_standin import published_screening, say_stood_in
    from paperlib.experiments.common import clean_base, victim_attack, victim_metrics, victim_model_name
    from paperlib.experiments.defences import matrix_row
    from paperlib.results import Timer, upsert_csv, write_manifest

    timer = Timer()
    device = pl.resolve_device(p.device)
    with timer("pretrain"):
        base = clean_base(p)
    screener = screener or Screener(p, base, device)   # builds what screening needs at its first screen
    detector_id = detector_digest(p, base)
    rows, scores, abl_rows, matrix_rows, stood = [], {}, [], [], []
    for v in p.victims:
        cfg = v.attack_config()
        atk = None   # fitted (SSBA's encoder, BadCLIP's patch) only when a set is screened here
        for seed in p.seeds_for(v.attack):
            abl_model = artifact_key("model", abl_key(p, base, v, seed, device)) if p.run_abl else None
            there = published_screening(p, v, seed, victim_model_name(p, base, v, seed), log, also_published,
                                        abl_model, detector_id, rows_file=cfbd_file(p),
                                        retrain=retrains(p, v.attack))
            if there is not None:
                stood.append(there)
                abl_rows += [there.abl_row] if there.abl_row is not None else []
                # for the estimate of a run without these rows (make reproduce): what the screening built
                ledger.note_stood_in("cfbd_set", ledger.work_key("cfbd_set", there.victim_model, detector_id),
                                     {**{r["model"]: "retrain" for r in there.matrix_rows if r.get("model")},
                                      **({abl_model: "abl_isolation"} if there.abl_row is not None else {})})
                scores[(v.attack, seed)] = {"screened": there}
                continue
            if getattr(screener, "mapping", True) is None:
                with timer("mapping"):
                    screener.ready()
            set_started, built_before = time.perf_counter(), ledger.build_seconds_spent()
            if atk is None:
                atk = victim_attack(p, base, v)
            with timer(f"detect_{v.attack}"):
                sc = screener.screen(v, seed)
                det = detect(sc.c, sc.caption_emb, p.cfbd)
            ps, truth, c = sc.ps, sc.truth, sc.c
            scores[(v.attack, seed)] = {"c": c, "z": det.z, "truth": truth, "screened": sc, "detection": det}
            for stage, flagged, score in (("coarse", det.coarse_flagged, c),
                                          ("fine", det.flagged, det.score)):
                tpr, fpr = tpr_fpr(truth, flagged)
                auroc, auprc = auroc_auprc(truth, score)
                rows.append({"attack": v.attack, "poison_count": v.poison.poison_count, "stage": stage,
                             "scale": p.scale, "seed": seed, "tpr": tpr, "fpr": fpr, "auroc": auroc,
                             "auprc": auprc, "kept": int((~flagged).sum()), "n_pairs": int(len(truth)),
                             **detector_settings(det, p, detector_id), "victim_model": sc.victim_model,
                             "screened_on": pl.device_name(device)})
            stages = {"coarse": det.coarse.benign, "fine": det.keep}
            retrain = retrains(p, v.attack)
            for stage in p.retrain_stages if retrain else ():
                keep = stages[stage]
                row = rows[-2] if stage == "coarse" else rows[-1]
                if len(keep) < v.finetune.batch_size:
                    log(f"{v.attack}: only {len(keep)} pairs kept by the {stage} stage, fewer than one batch; "
                        f"not retrained")
                    continue
                digest = hashlib.sha256(np.sort(keep).tobytes()).hexdigest()[:16]
                kept_key = {"victim_pairs": pairs_key(v, seed), "keep": digest}
                label = "cfbd" if stage == "fine" else "cfbd_coarse"
                retrain_key = pl.retrain_key(base, v.finetune, kept_key, p.device)
                published = published_row(p, "defences/matrix.csv", retrain_key, defence=label)
                if published is not None:   # trained elsewhere on the very same kept pairs
                    log(f"{v.attack} seed {seed}: {stage} retraining's row from the matrix file (trained on "
                        f"{published.get('device', '')} on the pairs kept here; not in this cache)")
                elif p.reuse_rows and not pl.ArtifactCache().exists("model", retrain_key):
                    there = other_screenings_retraining(p, row, artifact_key("model", retrain_key), log)
                    if there is not None:   # that machine's row whole: its detection went with its kept set
                        row.update({k: val for k, val in there[0].items() if k in CFBD_COLUMNS})
                        published = there[1]
                        note_model_stood_in(str(published["model"]), "retrain")
                if published is not None:
                    row.update(ca_top1=published["ca_top1"], asr_top1=published["asr_top1"], model=published["model"])
                    matrix_rows.append(published)
                    continue
                was_cached = pl.ArtifactCache().exists("model", retrain_key)
                with timer(f"retrain_{stage}_{v.attack}"):
                    model = pl.retrain_on(base, ps.pairs, keep, v.finetune, kept_key, p.device,
                                          desc=f"CFBD retrain ({stage}) {v.attack}")
                    m = victim_metrics(p, model, atk, v)
                row.update(ca_top1=m["ca_top1"], asr_top1=m["asr_top1"], model=model.path.name)
                summary = model.summary
                wall = summary.get("seconds", 0.0) + timer.sections.get(f"detect_{v.attack}", 0.0)
                if was_cached:   # its wall time is the run that trained it, not this screening's again
                    from paperlib.results import row_naming_model
                    before = row_naming_model(Path(p.results_dir) / "defences" / "matrix.csv", model.path.name,
                                              defence=label)
                    wall = float(before["wall_s"]) if before is not None and "wall_s" in before else wall
                matrix_rows.append({**matrix_row(v.attack, label, p.scale, seed, m, wall, summary.get("samples", 0)),
                                    # the victim the same poisoned pairs make (not trained here)
                                    "victim_model": victim_model_name(p, base, v, seed),
                                    "model": model.path.name, "device": summary.get("device", "")})
            if p.run_abl:
                with timer(f"abl_{v.attack}"):
                    abl_rows.append(run_abl_on(p, base, ps, v, cfg, seed, truth, device))
            log(f"{v.attack:10s} seed {seed}: coarse TPR {rows[-2]['tpr']:.1f} FPR {rows[-2]['fpr']:.1f} | "
                f"fine TPR {rows[-1]['tpr']:.1f} FPR {rows[-1]['fpr']:.1f}")
            # after every seed: a run stopped later keeps each finished seed's rows, the retrainings'
            # matrix rows among them (which another machine's run takes, other_screenings_retraining)
            upsert_csv(Path(p.results_dir) / "detection" / cfbd_file(p), rows, CFBD_KEY, CFBD_COLUMNS)
            _upsert_matrix(p, matrix_rows)
            # for the cost estimate of a later run: this set's time beyond its builds, skipped where
            # its rows stand in (its models: the retrainings' and ABL's, absent there)
            models = [r["model"] for r in rows[-2:] if isinstance(r.get("model"), str)]
            ledger.note_work("cfbd_set", ledger.work_key("cfbd_set", sc.victim_model, detector_id),
                             time.perf_counter() - set_started - (ledger.build_seconds_spent() - built_before),
                             models + ([abl_model] if abl_model else []))
    say_stood_in(stood, sum(len(p.seeds_for(v.attack)) for v in p.victims), log)
    results = Path(p.results_dir)
    table = upsert_csv(results / "detection" / cfbd_file(p), rows, CFBD_KEY, CFBD_COLUMNS)
    ours = {r["victim_model"] for r in rows} | {s.victim_model for s in stood}
    table = table[table.victim_model.astype(str).isin(ours)].reset_index(drop=True)   # this run's
    abl = upsert_csv(results / "detection" / "abl.csv", abl_rows, ABL_KEY,
                     ABL_COLUMNS) if abl_rows else None
    _upsert_matrix(p, matrix_rows)
    m = getattr(screener, "mapping", None)
    if getattr(p, "rows_only", False):   # a parallel job: the shared folder's manifest is the full run's
        return {"cfbd": table, "abl": abl, "scores": scores, "wall_seconds": timer.sections, "screener": screener,
                "stood_in": stood}
    write_manifest(results / "detection" / f"manifest_{Path(cfbd_file(p)).stem}_{p.scale}.json", asdict(p), timer.sections,
                   extra={"base_model": base.path.name,
                          "mapping_final_loss": m.history[-1] if m is not None and m.history else None,
                          "screenings_stood_in": [f"{s.attack} seed {s.seed}" for s in stood]})
    return {"cfbd": table, "abl": abl, "scores": scores, "wall_seconds": timer.sections, "screener": screener,
            "stood_in": stood}


def _upsert_matrix(p: DetectionParams, matrix_rows: list[dict]) -> None:
    """CFBD's retrainings join the defence matrix as defences cfbd and cfbd_coarse (the default
    mapping's only: another mapping's rows are an ablation)."""
    if matrix_rows and p.mapping.kind == DEFAULT_MAPPING:
        from paperlib.experiments.defences import MATRIX_COLUMNS, MATRIX_KEY
        from paperlib.results import upsert_csv
        upsert_csv(Path(p.results_dir) / "defences" / "matrix.csv", matrix_rows, MATRIX_KEY, MATRIX_COLUMNS)


def detector_settings(det, p: DetectionParams, digest: str | None = None) -> dict:
    """What the detector actually used on one pair set, for its result rows: the seed set's size
    after the cap (``q_eff``), the fine stage's threshold (``gamma_z``, from the data under the
    quantile rule), the size of the coarse benign set (``n_benign``), and the rules (with the
    quantile, recorded under either gamma_z rule) and mapping, and the ``digest`` of all of them
    (:func:`detector_digest`)."""
    return {"q_eff": int(det.coarse.q_eff), "gamma_z": float(det.gamma_z), "n_benign": int(len(det.coarse.benign)),
            "benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule,
            "gamma_z_quantile": p.cfbd.gamma_z_quantile, "mapping": p.mapping.kind,
            **({"detector": digest} if digest else {})}


# what must agree between the row made here and a published row for the retraining to stand in
SAME = ("attack", "poison_count", "stage", "scale", "seed", "victim_model")


def other_screenings_retraining(p, row: dict, this_model: str, log=print) -> tuple[dict, dict] | None:
    """A CFBD retraining made from another machine's screening, standing in by its published rows.

    The retrained model's cache key holds a digest of the pairs the screening kept.  Two machines
    screen the same poisoned set with the same networks, but their floating point differs (a GPU and
    a CPU, or two CPU kinds: AVX2 and AVX-512), so a few pairs near a threshold can fall the other
    way, and the exact-key lookup (:func:`~paperlib.experiments.common.published_row`) finds nothing:
    a fresh machine would retrain every attack and seed (hours on 2 cores).  So the results files
    are asked for the retraining of the same victim, stage and seed under the same detector rules
    (the CFBD rows name the model they retrained; the matrix file holds its measurements), and the
    log says whose kept set it was trained on; ``reuse_rows: false`` retrains instead.

    Returns (the published CFBD row, the matrix row of the retraining it names) for ``row``'s victim,
    stage and seed (under ``p``'s mapping and rules, see :func:`rows_of_these_rules`), when that
    retraining is another model than ``this_model`` (the one this screening's kept set would
    train); None when the files hold none.  The caller takes the published row whole (its TPR, FPR
    and kept pairs are those of the screening whose kept set was retrained on), so a row never
    mixes one machine's detection with another's retraining."""
    import pandas as pd

    from paperlib.results import read_results, row_naming_model
    results = Path(p.results_dir)
    df = read_results(results / "detection" / cfbd_file(p))
    if df is None or "model" not in df.columns:
        return None
    df = rows_of_these_rules(df, p)
    for col in SAME:
        df = df[df[col].astype(str) == str(row[col])]
    df = df[df.model.notna() & (df.model != this_model)]
    label = "cfbd" if row["stage"] == "fine" else "cfbd_coarse"
    for there in df.itertuples():
        published = row_naming_model(results / "defences" / "matrix.csv", there.model, defence=label)
        if published is None:
            continue
        log(f"{row['attack']} seed {row['seed']}: {row['stage']} retraining's row from the results files: "
            f"{there.model}, trained on {published.get('device', '?')} on the {int(there.kept)} pairs that "
            f"machine's screening kept (this one keeps {int(row['kept'])}: floating point of another device "
            f"moves pairs near a threshold); that row is taken whole, not retrained here (reuse_rows: false "
            f"retrains)")
        return {k: val for k, val in there._asdict().items() if k != "Index" and not pd.isna(val)}, published
    return None


def main(argv=None) -> int:
    """``python -m paperlib.experiments.detection params/detection/<scale>.yaml [dotted.key=value ...]``"""
    from paperlib.experiments.common import cli
    return cli(load, run, argv, main.__doc__)


__all__ = ["DetectionParams", "CFBD_COLUMNS", "ABL_COLUMNS", "ABL_KEY", "DEFAULT_MAPPING", "detector_settings", "Screened", "Screener", "load", "run", "run_abl_on",
           "trained_mapping"]

if __name__ == "__main__":
    raise SystemExit(main())
