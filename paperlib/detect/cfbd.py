"""CFBD's decision rules: coarse stage (cross-modality consistency + GMM) and fine stage
(average textual correlation with the poisoned seed set).

Coarse stage (CFBD Sec. 2.2).  For pair i with image embedding I_i, caption embedding T_i and
synthetic text embedding T^_i = F(I_i) from the mapping network (:mod:`paperlib.detect.mapping`):

* Eq. 2: s(I, T) = max(cos(I, T), 0), a rectified cosine;
* Eq. 3: s_o = s(I_i, T_i) (original), s_g = s(I_i, T^_i) (generated);
* Eq. 4: c_i = |s_g - s_o|, the cross-modality consistency (high = suspicious);
* Eq. 5: a K-component GaussianMixture (scikit-learn, EM) on c; the pairs whose posterior for
  the component with the smallest mean is >= gamma form the benign set D_b; the q pairs with
  the largest c form the poisoned seed set D_p; the rest is the suspicious set D_s.

Fine stage (Sec. 2.3), Eq. 6: z_u = mean_j cos(f_T(T_u), f_T(T_j)) over the captions T_j of D_p;
a suspicious pair is poisoned when z_u > gamma_z.  The model is then retrained (fine-tuned from
the clean pre-trained model) on D_b plus the suspicious pairs judged benign.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paperlib.config import param


@dataclass(frozen=True)
class CFBDConfig:
    k: int = param(5, range=(1, 50), doc="GMM components (K)")
    gamma: float = param(0.9, range=(0.0, 1.0), doc="posterior threshold for the benign component")
    q: int = param(50, range=(1, None), doc="size of the poisoned seed set (top-q consistency)")
    gamma_z: float = param(0.8, range=(-1.0, 1.0), doc="textual-correlation threshold of the fine stage")
    gmm_seed: int = param(0, range=(0, None), doc="seed of the GMM's initialisation")


def rectified_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. 2 row-wise: max(cos(a_i, b_i), 0)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.maximum(cos, 0.0)


def consistency(image_emb, caption_emb, synthetic_emb) -> np.ndarray:
    """Eq. 3-4: c_i = |s_g - s_o|."""
    return np.abs(rectified_cosine(image_emb, synthetic_emb) - rectified_cosine(image_emb, caption_emb))


@dataclass
class CoarseResult:
    benign: np.ndarray       # indices of D_b
    seed: np.ndarray         # indices of D_p (top-q by consistency)
    suspicious: np.ndarray   # the rest, D_s
    posterior_low: np.ndarray  # posterior of the lowest-mean component, per pair
    means: np.ndarray        # the fitted component means (sorted)


def coarse_stage(c: np.ndarray, cfg: CFBDConfig) -> CoarseResult:
    """Split pairs by their consistency values (Eq. 5 and the selection rules)."""
    from sklearn.mixture import GaussianMixture
    c = np.asarray(c, np.float64)
    n = len(c)
    if cfg.q >= n:
        raise ValueError(f"q={cfg.q} must be smaller than the number of pairs ({n})")
    gmm = GaussianMixture(n_components=min(cfg.k, n), random_state=cfg.gmm_seed).fit(c[:, None])
    low = int(np.argmin(gmm.means_[:, 0]))
    post = gmm.predict_proba(c[:, None])[:, low]
    seed = np.argsort(-c, kind="stable")[:cfg.q]
    benign_mask = post >= cfg.gamma
    benign_mask[seed] = False          # a pair in the seed set is never benign
    rest = np.ones(n, bool)
    rest[seed] = False
    rest[benign_mask] = False
    return CoarseResult(benign=np.flatnonzero(benign_mask), seed=np.sort(seed), suspicious=np.flatnonzero(rest),
                        posterior_low=post, means=np.sort(gmm.means_[:, 0]))


def textual_correlation(caption_emb: np.ndarray, rows: np.ndarray, seed_rows: np.ndarray) -> np.ndarray:
    """Eq. 6: mean cosine of each of ``rows``' captions with the captions of ``seed_rows``."""
    e = np.asarray(caption_emb, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return (e[rows] @ e[seed_rows].T).mean(1)


@dataclass
class Detection:
    flagged: np.ndarray        # bool per pair: judged poisoned (coarse seed set + fine stage)
    coarse_flagged: np.ndarray  # bool per pair: judged poisoned by the coarse stage alone (not D_b)
    keep: np.ndarray           # indices retraining uses: D_b + suspicious pairs judged benign
    z: np.ndarray              # textual correlation of every pair with the seed set (score)
    coarse: CoarseResult

    @property
    def score(self) -> np.ndarray:
        """The coarse-to-fine decision as one ranking (for AUROC, AUPRC and Fig. 5): the seed set
        D_p above every other pair, the coarse stage's benign set D_b below, the suspicious pairs
        by their z (Eq. 6) between, each tier ordered by z.  Thresholded at gamma_z it gives
        ``flagged``.  (Not c: the fine stage ranks by textual correlation, Sec. 2.3.)"""
        s = np.asarray(self.z, np.float64).copy()     # z is a mean cosine, in [-1, 1]
        s[self.coarse.seed] += 4.0
        s[self.coarse.benign] -= 4.0
        return s


def detect(c: np.ndarray, caption_emb: np.ndarray, cfg: CFBDConfig, seed_rows: np.ndarray | None = None
           ) -> Detection:
    """Both stages.  The coarse-only decision counts everything outside D_b as poisoned.

    ``seed_rows`` replaces the coarse stage's seed set D_p (CFBD Table 5's fault-tolerance test
    mixes benign pairs into it); D_b is still the GMM's and the rest is suspicious."""
    co = coarse_stage(c, cfg)
    n = len(c)
    if seed_rows is not None:
        seed_rows = np.unique(np.asarray(seed_rows, np.int64))
        benign = np.setdiff1d(co.benign, seed_rows)
        rest = np.setdiff1d(np.arange(n), np.union1d(benign, seed_rows))
        co = CoarseResult(benign=benign, seed=seed_rows, suspicious=rest, posterior_low=co.posterior_low,
                          means=co.means)
    z = textual_correlation(caption_emb, np.arange(n), co.seed)
    flagged = np.zeros(n, bool)
    flagged[co.seed] = True
    flagged[co.suspicious[z[co.suspicious] > cfg.gamma_z]] = True
    coarse_flagged = np.ones(n, bool)
    coarse_flagged[co.benign] = False
    keep = np.flatnonzero(~flagged)
    return Detection(flagged=flagged, coarse_flagged=coarse_flagged, keep=keep, z=z, coarse=co)


def mixed_seed_set(poisoned_rows: np.ndarray, benign_rows: np.ndarray, q: int, fault_ratio: float,
                   rng: np.random.Generator) -> np.ndarray:
    """CFBD Table 5's hand-made seed set D_p (Sec. 3.3, fault tolerance): ``q`` pairs, of which the
    ``fault_ratio`` share is benign and the rest truly poisoned, so that the fine stage is tested
    on a seed set of known quality whatever the coarse stage found."""
    n_benign = int(round(fault_ratio * q))
    n_poisoned = q - n_benign
    if n_poisoned > len(poisoned_rows) or n_benign > len(benign_rows):
        raise ValueError(f"a seed set of q={q} with {100 * fault_ratio:.0f}% benign pairs needs {n_poisoned} "
                         f"poisoned and {n_benign} benign pairs; there are {len(poisoned_rows)} and "
                         f"{len(benign_rows)}")
    return np.sort(np.concatenate([rng.choice(np.asarray(poisoned_rows, np.int64), n_poisoned, replace=False),
                                   rng.choice(np.asarray(benign_rows, np.int64), n_benign, replace=False)]))
