"""CFBD's decision rules: coarse stage (cross-modality consistency + GMM) and fine stage
(average textual correlation with the poisoned seed set).

Coarse stage (CFBD Sec. 2.2).  For pair i with image embedding I_i, caption embedding T_i and
synthetic text embedding T^_i = F(I_i) from the mapping network (:mod:`paperlib.detect.mapping`):

* Eq. 2: s(I, T) = max(cos(I, T), 0), a rectified cosine;
* Eq. 3: s_o = s(I_i, T_i) (original), s_g = s(I_i, T^_i) (generated);
* Eq. 4: c_i = |s_g - s_o|, the cross-modality consistency (high = suspicious);
* Eq. 5: a K-component GaussianMixture (scikit-learn, EM) on c, then the benign set D_b
  (``benign_rule``, below), the poisoned seed set D_p (the q_eff pairs outside D_b with the
  largest c, ``q_cap``) and the suspicious set D_s (the rest).

**The benign set.**  The paper prints: "we select the Gaussian distribution N(c | mu_k, sigma_k)
with the minimum mu_k.  Pairs that have the probability of being from the N higher than a
probability threshold gamma% are categorized into the benign subset D_b" (Fig. 4: "(c) Selecting
the GM with minimum mu. (d) Selecting pairs with a probability gamma%"), with K = 5 and gamma = 90%.
Read literally (the posterior of the lowest-mean component > gamma) this contradicts the paper's own
statements about gamma and K: "a larger gamma leads to the inclusion of more pairs in D_b" (a higher
posterior threshold admits *fewer* pairs) and, in Fig. 6a, at K = 1 "over 200 poisoned pairs are
erroneously included in D_b when gamma% is higher than 87.5%" (with one component every posterior is
1, so D_b is every pair whatever gamma).  At our scale the literal rule at K = 5 keeps only 8-15% of
the benign pairs (the lowest of five components).  Three rules, ``benign_rule``:

* ``mixture_cdf`` (default, our reconstruction): gamma is the benign share.  Starting from the
  lowest-mean component, D_b takes pairs in increasing c until it holds the share gamma of the fitted
  mixture's probability mass: D_b = {i : F(c_i) <= gamma}, F(c) = sum_k phi_k Phi((c - mu_k) / sigma_k).
  It agrees with every statement above (larger gamma: more pairs; K = 1: the single Gaussian's
  gamma-quantile, which lets poisoned pairs of a heavy tail in; larger K: the tail fitted better,
  fewer poisoned pairs in D_b) except "the coverage of each distribution could also be reduced,
  consequently decreasing the cardinality of D_b" with larger K.
* ``posterior`` (as printed; the code before issue 23): posterior of the lowest-mean component
  >= gamma.
* ``component_cdf`` (a second reading of "probability of being from the N"): the pairs inside the
  lowest-mean component's own gamma-probability region, c_i <= mu_min + Phi^-1(gamma) sigma_min.
  It fits every statement above, the shrinking cardinality with K included, but its D_b is a small
  share of the pairs at K = 5 (the lowest component's).  Note that the paper's Table 1 (zero-shot CA
  after retraining on the coarse stage's D_b: 26.9-33.2% against 58.3-59.7% without defence) also
  suggests a D_b much smaller than 90% of the pairs.

**The seed set** (q, ``q_cap``).  The paper takes the top-q pairs by c with q = 50 ("even a
relatively small value, e.g. q = 50, gives a satisfactory result"); at 0.3% of 10,000 pairs (30
poisoned) or with a small suspicious set, 50 can exceed what the coarse stage flags.  The seed set is
drawn from the pairs outside D_b, q_eff = min(q, what ``q_cap`` allows): ``suspicious`` (default):
the number of pairs outside D_b; ``top_component``: additionally the number of pairs outside D_b that
the GMM assigns to its highest-mean component (the mixture's own estimate of the anomalous group);
``none``: the old rule, the top-q by c over all pairs, removed from D_b (q >= N is refused).  The
effective q is ``CoarseResult.q_eff`` and is written into every result row.

Fine stage (Sec. 2.3), Eq. 6: z_u = mean_j cos(f_T(T_u), f_T(T_j)) over the captions T_j of D_p;
a suspicious pair is poisoned when z_u > gamma_z.  The paper gives no value for gamma_z: "We apply
an empirical threshold gamma_z on z_u" (Sec. 2.3) and "it is feasible to find a gamma_z to filter out
all poisoned pairs" (Sec. 3.3); a fixed cosine level does not carry over between encoders, caption
styles and seed sets (Table 5's benign seeds pull every z down).  ``gamma_z_rule``: ``quantile``
(default) sets gamma_z from the data, the ``gamma_z_quantile`` (0.9) quantile of z over the coarse
stage's benign set D_b (the pairs the coarse stage trusts; over the pairs outside the seed set when
D_b is empty), i.e. a suspicious pair is flagged when its caption correlates with the seed set more
than 90% of the trusted pairs' captions do.  Why 0.9: D_b's z is the benign null, and with D_b about
90% of the pairs (gamma) the suspicious set holds about 10% of the benign ones, so flagging what passes
the null's 90% quantile spends a false-positive budget of about 10% x 10% = 1% of the benign pairs
(issue 23's FPR goal); the 0.99 of before spent a small part of that budget and flagged far fewer
poisoned pairs: it stays an ablation row (``results/cfbd/former_rules.csv``).  ``fixed`` uses the
number ``gamma_z`` (0.8 before issue 23).  The value used is ``Detection.gamma_z``.  The model is then retrained (fine-tuned from the
clean pre-trained model) on D_b plus the suspicious pairs judged benign.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paperlib.config import param

BENIGN_RULES = ("mixture_cdf", "posterior", "component_cdf")
Q_CAPS = ("suspicious", "top_component", "none")
GAMMA_Z_RULES = ("quantile", "fixed")


@dataclass(frozen=True)
class CFBDConfig:
    k: int = param(5, range=(1, 50), doc="GMM components (K)")
    gamma: float = param(0.9, range=(0.0, 1.0),
                         doc="benign set: the share of the mixture's mass (mixture_cdf), the posterior "
                             "threshold (posterior) or the lowest component's mass (component_cdf)")
    benign_rule: str = param("mixture_cdf", choices=BENIGN_RULES,
                             doc="how K components and gamma make D_b (module docstring; posterior: as printed)")
    q: int = param(50, range=(1, None), doc="size of the poisoned seed set (top-q consistency), before the cap")
    q_cap: str = param("suspicious", choices=Q_CAPS,
                       doc="q_eff = min(q, pairs outside D_b | those in the top GMM component | no cap)")
    gamma_z_rule: str = param("quantile", choices=GAMMA_Z_RULES,
                              doc="fine-stage threshold: a quantile of z over D_b (data) or the number gamma_z")
    gamma_z: float = param(0.8, range=(-1.0, 1.0), doc="textual-correlation threshold when gamma_z_rule=fixed")
    gamma_z_quantile: float = param(0.9, range=(0.0, 1.0),
                                    doc="gamma_z_rule=quantile: gamma_z is this quantile of z over D_b")
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


def fit_gmm(c: np.ndarray, k: int, seed: int = 0):
    """Eq. 5: the K-component mixture on the consistency values (EM, scikit-learn)."""
    from sklearn.mixture import GaussianMixture
    c = np.asarray(c, np.float64)
    return GaussianMixture(n_components=max(1, min(k, len(c))), random_state=seed).fit(c[:, None])


def mixture_cdf(c: np.ndarray, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """F(c) = sum_k phi_k Phi((c - mu_k) / sigma_k), the fitted mixture's distribution function."""
    from scipy.stats import norm
    c = np.asarray(c, np.float64)
    return (np.asarray(weights)[None, :] * norm.cdf((c[:, None] - np.asarray(means)[None, :])
                                                    / np.maximum(np.asarray(sigmas)[None, :], 1e-12))).sum(1)


@dataclass
class CoarseResult:
    benign: np.ndarray       # indices of D_b
    seed: np.ndarray         # indices of D_p (top-q_eff by consistency, outside D_b)
    suspicious: np.ndarray   # the rest, D_s
    posterior_low: np.ndarray  # posterior of the lowest-mean component, per pair
    means: np.ndarray        # the fitted component means (sorted)
    weights: np.ndarray | None = None   # their mixture weights (same order)
    sigmas: np.ndarray | None = None    # their standard deviations (same order)
    rule_score: np.ndarray | None = None  # per pair, what the benign rule compares with gamma
    c_cut: float = float("nan")  # the cdf rules: D_b is c <= c_cut (nan for the posterior rule)
    q_eff: int = 0           # the seed set's size after the cap
    q_limit: int = 0         # what q_cap allowed (pairs outside D_b, or in the top component)


def _c_cut(f, gamma: float, lo: float, hi: float) -> float:
    """The c at which the increasing function ``f`` reaches ``gamma`` (bisection)."""
    if f(np.array([hi]))[0] <= gamma:
        return hi
    if f(np.array([lo]))[0] > gamma:
        return lo
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if f(np.array([mid]))[0] <= gamma:
            lo = mid
        else:
            hi = mid
    return lo


def coarse_stage(c: np.ndarray, cfg: CFBDConfig, gmm=None) -> CoarseResult:
    """Split pairs by their consistency values (Eq. 5 and the selection rules of the docstring).
    ``gmm``: a mixture already fitted on ``c`` with ``cfg.k`` components (the ablations fit one per
    K and try every gamma and rule on it)."""
    from scipy.stats import norm
    c = np.asarray(c, np.float64)
    n = len(c)
    if cfg.q_cap == "none" and cfg.q >= n:
        raise ValueError(f"q={cfg.q} must be smaller than the number of pairs ({n})")
    gmm = fit_gmm(c, cfg.k, cfg.gmm_seed) if gmm is None else gmm
    mu = gmm.means_[:, 0]
    sd = np.sqrt(np.asarray(gmm.covariances_).reshape(len(mu), -1)[:, 0])
    order = np.argsort(mu, kind="stable")
    low, top = int(order[0]), int(order[-1])
    proba = gmm.predict_proba(c[:, None])
    post = proba[:, low]
    c_cut = float("nan")
    if cfg.benign_rule == "posterior":
        score = post
        benign_mask = post >= cfg.gamma
    else:
        if cfg.benign_rule == "mixture_cdf":
            def f(x):
                return mixture_cdf(x, gmm.weights_, mu, sd)
        else:   # component_cdf
            def f(x):
                return norm.cdf((np.asarray(x, np.float64) - mu[low]) / max(sd[low], 1e-12))
        score = f(c)
        benign_mask = score <= cfg.gamma
        span = float(np.max(sd)) * 12 + 1.0
        c_cut = _c_cut(f, cfg.gamma, float(min(c.min(), mu.min())) - span, float(max(c.max(), mu.max())) + span)
    if cfg.q_cap == "none":
        q_limit = n - 1
        seed = np.argsort(-c, kind="stable")[:cfg.q]
        benign_mask[seed] = False          # a pair in the seed set is never benign
    else:
        outside = np.flatnonzero(~benign_mask)
        if cfg.q_cap == "top_component":
            outside_top = outside[proba[outside].argmax(1) == top]
            q_limit = int(len(outside_top))
        else:
            q_limit = int(len(outside))
        q_eff = min(cfg.q, q_limit)
        seed = outside[np.argsort(-c[outside], kind="stable")[:q_eff]]
    rest = np.ones(n, bool)
    rest[seed] = False
    rest[benign_mask] = False
    return CoarseResult(benign=np.flatnonzero(benign_mask), seed=np.sort(seed), suspicious=np.flatnonzero(rest),
                        posterior_low=post, means=mu[order], weights=gmm.weights_[order], sigmas=sd[order],
                        rule_score=score, c_cut=c_cut, q_eff=int(len(seed)), q_limit=int(q_limit))


def textual_correlation(caption_emb: np.ndarray, rows: np.ndarray, seed_rows: np.ndarray) -> np.ndarray:
    """Eq. 6: mean cosine of each of ``rows``' captions with the captions of ``seed_rows`` (0 for
    every row when the seed set is empty: nothing to correlate with)."""
    e = np.asarray(caption_emb, np.float64)
    if len(seed_rows) == 0:
        return np.zeros(len(rows))
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return (e[rows] @ e[seed_rows].T).mean(1)


def fine_threshold(z: np.ndarray, co: CoarseResult, cfg: CFBDConfig) -> float:
    """gamma_z: the number ``cfg.gamma_z`` (rule ``fixed``) or the ``gamma_z_quantile`` quantile
    of z over the coarse stage's benign set D_b (rule ``quantile``; over every pair outside the
    seed set when D_b is empty)."""
    if cfg.gamma_z_rule == "fixed":
        return float(cfg.gamma_z)
    ref = co.benign
    if len(ref) == 0:
        ref = np.setdiff1d(np.arange(len(z)), co.seed)
    if len(ref) == 0:
        return float("inf")
    return float(np.quantile(np.asarray(z, np.float64)[ref], cfg.gamma_z_quantile))


@dataclass
class Detection:
    flagged: np.ndarray        # bool per pair: judged poisoned (coarse seed set + fine stage)
    coarse_flagged: np.ndarray  # bool per pair: judged poisoned by the coarse stage alone (not D_b)
    keep: np.ndarray           # indices retraining uses: D_b + suspicious pairs judged benign
    z: np.ndarray              # textual correlation of every pair with the seed set (score)
    coarse: CoarseResult
    gamma_z: float = float("nan")   # the fine stage's threshold as used (fixed or from the data)

    @property
    def score(self) -> np.ndarray:
        """The coarse-to-fine decision as one ranking (for AUROC, AUPRC and Fig. 5): the seed set
        D_p above every other pair, the coarse stage's benign set D_b below, the suspicious pairs
        by their z (Eq. 6) between, each tier ordered by z.  Thresholded at ``self.gamma_z`` it
        gives ``flagged``.  (Not c: the fine stage ranks by textual correlation, Sec. 2.3.)"""
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
                          means=co.means, weights=co.weights, sigmas=co.sigmas, rule_score=co.rule_score,
                          c_cut=co.c_cut, q_eff=int(len(seed_rows)), q_limit=int(len(seed_rows)))
    z = textual_correlation(caption_emb, np.arange(n), co.seed)
    gamma_z = fine_threshold(z, co, cfg)
    flagged = np.zeros(n, bool)
    flagged[co.seed] = True
    flagged[co.suspicious[z[co.suspicious] > gamma_z]] = True
    coarse_flagged = np.ones(n, bool)
    coarse_flagged[co.benign] = False
    keep = np.flatnonzero(~flagged)
    return Detection(flagged=flagged, coarse_flagged=coarse_flagged, keep=keep, z=z, coarse=co, gamma_z=gamma_z)


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
