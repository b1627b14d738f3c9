"""How visible each trigger is to the clean base: the measured reason an attack implants or not.

Issue 22 asks, for the attacks whose victims miss the papers' band (WaNet, SSBA, LC, mmPoison), for
the best setting found *with the reason measured*.  A backdoor is learned by fine-tuning the
image encoder that the clean base already is; one pass over 1 % poisoned pairs can only bind the
target caption to what that encoder already tells apart from clean images.  So for every trigger of
an attack-suite file, on test images of the ImageNet analogue (non-target classes, the ASR images):

* ``pixel_mean_abs``: mean absolute pixel change the trigger makes (0-255 scale), and
  ``pixel_changed``: the share of pixel values it moves by more than 8 levels;
* ``feature_cosine``: mean cosine similarity between each image's clean-base embedding with and
  without the trigger (1: the base does not see it at all);
* ``shift_consistency``: mean cosine between each image's embedding shift (triggered minus clean)
  and the mean shift (1: the trigger moves every image the same way, as a patch does; near 0: each
  image its own way);
* ``probe_auroc``: how well a linear classifier (scikit-learn's logistic regression) on the clean
  base's image embeddings tells triggered from clean images, out of fold (5 folds, an image and its
  triggered copy always in the same fold), as a percentage (50: chance, 100: separable).

Beside them, the victims' top-1 ASR at the same trigger and recipe (mean over the seeds in
``attacks/victims.csv``, else over those in ``attacks/calibration.csv``; an attack without a test-time
trigger, mmPoison, gets no visibility numbers).  Rows:
``results/attacks/trigger_visibility.csv`` (and ``.md``), keyed by attack, trigger and base.

    python -m paperlib.experiments.trigger_visibility params/attacks/embedded-victims.yaml [results_dir=results]
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

VISIBILITY_KEY = ("attack", "attack_params", "scale", "base_model", "target")
CHANGED_LEVELS = 8      # a pixel value moved by more than this (of 255) counts as changed


def pixel_change(clean: np.ndarray, triggered: np.ndarray) -> dict:
    """Mean absolute change (0-255) and the share (%) of values moved by more than CHANGED_LEVELS."""
    d = np.abs(triggered.astype(np.int16) - clean.astype(np.int16))
    return {"pixel_mean_abs": float(d.mean()), "pixel_changed": 100.0 * float((d > CHANGED_LEVELS).mean())}


def separability(clean_feats: np.ndarray, trig_feats: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """Out-of-fold AUROC (%) of a logistic regression telling triggered from clean embeddings, and
    the mean cosine similarity of each pair.  Image i and its triggered copy share a fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    n = len(clean_feats)
    if n != len(trig_feats) or n < 2 * folds:
        raise ValueError(f"need as many triggered as clean embeddings and at least {2 * folds} of each; "
                         f"got {n} and {len(trig_feats)}")
    def unit(a):
        return a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)
    cos = float(np.mean(np.sum(unit(clean_feats) * unit(trig_feats), axis=1)))
    # does the trigger move every image the same way?  cosine of each image's shift with the mean shift
    shift = trig_feats - clean_feats
    consistency = float(np.mean(unit(shift) @ unit(shift.mean(axis=0))))
    x = np.concatenate([clean_feats, trig_feats])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    groups = np.concatenate([np.arange(n), np.arange(n)])
    order = np.random.default_rng(seed).permutation(n)          # GroupKFold is deterministic: shuffle the groups
    groups = order[groups]
    scores = np.zeros(2 * n)
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x[train], y[train])
        scores[test] = clf.decision_function(x[test])
    return {"feature_cosine": cos, "shift_consistency": consistency,
            "probe_auroc": 100.0 * float(roc_auc_score(y, scores))}


def _victim_asr(results: Path, v, base_model: str) -> tuple[float, int, str]:
    """(mean top-1 ASR, number of seeds, file) of the victims of entry ``v``'s trigger and recipe on
    ``base_model``: the attack suite's victims, else its calibration runs."""
    from paperlib.experiments.victims_summary import RECIPE, of_recipe
    for name in ("victims.csv", "calibration.csv"):
        path = results / "attacks" / name
        if not path.is_file():
            continue
        df = pd.read_csv(path)
        if any(c not in df for c in RECIPE if c not in ("threat_model", "scale")):
            continue
        sel = of_recipe(df, v) & (df.base_model.astype(str) == base_model)
        if sel.any():
            return float(df[sel].asr_top1.mean()), int(df[sel].seed.nunique()), name
    return float("nan"), 0, ""


def run(p, log=print, max_images: int = 1000) -> pd.DataFrame:
    """The visibility rows of every trigger of ``p`` (its victims, calibration entries and trigger checks)."""
    from paperlib import pipeline as pl
    from paperlib.data.splits import get_split
    from paperlib.eval.zeroshot import encode_images
    from paperlib.experiments.victim_rows import params_json, recipe
    from paperlib.experiments.common import clean_base, victim_attack
    from paperlib.results import to_markdown, upsert_csv
    import torch

    results = Path(p.results_dir)
    base = clean_base(p)
    device = pl.resolve_device(p.device)
    model = base.load(device)
    split = get_split("imagenet_analog", p.data)
    rows, seen = [], set()
    for v in (*p.victims, *p.calibration, *p.trigger_checks):
        trigger = params_json(v.attack_params)
        if (v.attack, trigger) in seen:
            continue
        seen.add((v.attack, trigger))
        atk = victim_attack(p, base, v)
        t_idx = split.classnames.index(v.poison.target)
        keep = atk.asr_rows(split.labels, split.classnames, t_idx, p.eval.asr_convention)
        keep = keep[np.random.default_rng(0).permutation(len(keep))[:max_images]]
        clean = np.ascontiguousarray(split.images[np.sort(keep)])
        x = torch.as_tensor(clean).permute(0, 3, 1, 2)
        gen = torch.Generator().manual_seed(12345)
        trig = atk.test_transform(x, gen)
        same = bool(torch.equal(trig, x))
        fc = encode_images(model, x, device=device).numpy()
        ft = encode_images(model, trig, device=device).numpy()
        row = {"attack": v.attack, "attack_params": trigger, "scale": p.scale, "base_model": base.path.name,
               "target": v.poison.target, "n_images": int(len(keep)),
               **pixel_change(x.numpy(), trig.numpy()),
               **({"feature_cosine": float("nan"), "shift_consistency": float("nan"), "probe_auroc": float("nan")} if same
                  else separability(fc, ft)),
               "poison_count": v.poison.poison_count, **recipe(v)}
        asr, n_seeds, source = _victim_asr(results, v, base.path.name)
        row.update({"victim_asr_top1": asr, "victim_seeds": n_seeds, "victim_source": source,
                    "test_images_changed": not same})
        rows.append(row)
        log(f"{v.attack:10s} {trigger:45s} pixels {row['pixel_mean_abs']:5.2f}  cos {row['feature_cosine']:.3f}  "
            f"probe AUROC {row['probe_auroc']:5.1f}  victim ASR {asr:5.1f} ({n_seeds} seeds)")
    out = upsert_csv(results / "attacks" / "trigger_visibility.csv", rows, VISIBILITY_KEY)
    cols = ["attack", "attack_params", "pixel_mean_abs", "pixel_changed", "feature_cosine", "shift_consistency",
            "probe_auroc", "victim_asr_top1", "victim_seeds"]
    mine = out[out.base_model.astype(str) == base.path.name].sort_values("probe_auroc")
    to_markdown(mine[cols], results / "attacks" / "trigger_visibility.md", floatfmt=".2f")
    plot(mine, results / "attacks" / f"trigger_visibility_{p.scale}.png", p.scale, p.data.image_size)
    return pd.DataFrame(rows)


def trigger_label(attack: str, attack_params: str, image_side: int) -> str:
    """``badclip 10 px``, ``wanet k=64 s=1.0``, ``sig (defaults)``: the attack and what its settings change."""
    settings = json.loads(attack_params)
    parts = [f"{round(float(v) * image_side)} px" if k == "patch_fraction" else f"{k}={v}"
             for k, v in settings.items() if k != "position"]
    return " ".join([attack, *(parts or ["(defaults)"])])


def plot(rows: pd.DataFrame, path: Path, scale: str, image_side: int) -> Path:
    """Victim top-1 ASR against the clean base's probe AUROC, one numbered point per trigger with
    victims; the numbers are listed beside the axes (the visible triggers crowd one corner)."""
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    rows = rows[rows.victim_seeds > 0].sort_values(["probe_auroc", "victim_asr_top1"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.6, 4.6))
    ax.scatter(rows.probe_auroc, rows.victim_asr_top1, color="tab:blue", s=18)
    legend = []
    for i, r in enumerate(rows.itertuples(), 1):
        ax.annotate(str(i), (r.probe_auroc, r.victim_asr_top1), fontsize=7, xytext=(3, 2 + 5 * (i % 2)),
                    textcoords="offset points")
        legend.append(f"{i:2d} {trigger_label(r.attack, r.attack_params, image_side)} "
                      f"({r.victim_seeds} seed{'s' if r.victim_seeds > 1 else ''})")
    ax.axvline(50, color="grey", lw=0.8, ls=":", label="chance (50)")
    ax.set_xlabel("clean base: triggered vs clean images, linear probe AUROC (%)")
    ax.set_ylabel("victim top-1 ASR (%), mean over seeds")
    ax.set_title(f"What the clean base sees of a trigger, and what the victim learns ({scale} scale; "
                 "victim seeds per trigger in the list)", fontsize=9)
    ax.set_ylim(-3, 103)
    ax.legend(loc="upper left", fontsize=8)
    fig.text(0.70, 0.5, "\n".join(legend), fontsize=7, family="monospace", va="center")
    fig.subplots_adjust(right=0.68)
    return save_figure(fig, path, tight=False)


def main(argv=None) -> int:
    """``python -m paperlib.experiments.trigger_visibility params/attacks/<file>.yaml [key=value ...]``"""
    from paperlib.experiments.attacks import load
    from paperlib.experiments.common import cli
    return cli(load, run, argv, main.__doc__)


__all__ = ["pixel_change", "separability", "run", "VISIBILITY_KEY"]

if __name__ == "__main__":
    raise SystemExit(main())
