"""EftCLIP (Hossain et al.): oracle-guided trigger detection, affected labels, curated fine-tuning.

For each image I_i of a retained set (EftCLIP Sec. 4.3):

* L_i = C_p(I_i): the poisoned CLIP's top-tau class names for the image;
* S_i = O(I_i, L_i): the names of L_i that the segmentation oracle finds, with regions r_ij of
  confidence >= theta.  FastSAM matches text prompts to its masks with a clean CLIP; we let the
  oracle's clean CLIP name each region with its best prompt of L_i, so a prompt that no region
  matches (the trigger's target label: the oracle cannot see a backdoor) is not in S_i;
* R_i = C_p({r_ij}): the poisoned CLIP's names of the cropped regions.

Algorithm 1 (:func:`find_adversarial_trigger`) and Algorithm 2 (:func:`identify_affected_labels`)
are the paper's pseudo-code line by line on these sets; Algorithm 1's line 2 has a second reading
(``alg1_reading="paper_trend"``, argued in :func:`find_adversarial_trigger`), the only one of the two
under which detection falls as theta rises, as the paper's Figs. 3b and 4 show.  theta is on the
paper's (FastSAM's) confidence scale; ``theta_scale="calibrated"`` maps it onto our segmenter's
(:mod:`paperlib.detect.oracle`, :func:`~paperlib.detect.oracle.calibrate_theta`).  An image counts as *detected* when its
potential-trigger set P_i (Algorithm 1, lines 1-2) contains the attack's target label: this is
the per-image reading of the paper's "detection rate" (Table 1, Figs. 3-4).  The known-trigger
list K is kept with how often each entry was proposed, because with tau names per image and 1-3
objects the literal K also collects names the oracle merely missed.

The curated fine-tuning set (Sec. 4.4-4.5, :func:`curate`) draws clean pairs per affected label in
proportion to its frequency in A, and pairs without an affected label at a lower ratio; the
defence is then CleanCLIP's loss on that set (``pipeline.defend(..., subset=...)``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from paperlib.config import ParamError, param
from paperlib.detect.oracle import CALIBRATION_METRICS, THETA_SCALES

AFFECTED_RULES = ("paper", "detected")
ALG1_READINGS = ("printed", "paper_trend")


@dataclass(frozen=True)
class EftCLIPConfig:
    tau: int = param(5, range=(1, None), doc="length of the object lists L_i (the paper sweeps 5 and 7)")
    theta: float = param(0.66, range=(0.0, 1.0), doc="oracle confidence cut-off on the paper's (FastSAM's) scale "
                                                     "(the paper's 0.66); theta_scale says how it reaches our segmenter")
    theta_scale: str = param("calibrated", choices=THETA_SCALES,
                             doc="calibrated: theta mapped onto our segmenter's confidences (theta * theta' / "
                                 "theta_anchor, theta' from calibrate_theta); paper: the number used as it is (ablation)")
    theta_anchor: float = param(0.66, range=(0.0, 1.0),
                                doc="the paper's theta at which FastSAM is taken to return the scenes' objects; maps to theta'")
    calibration_metric: str = param("regions", choices=CALIBRATION_METRICS,
                                    doc="what theta' matches on the segmenter's validation scenes: regions (regions per "
                                        "ground-truth object) or recall (share of objects found at mask IoU >= calibration_iou)")
    calibration_target: float = param(1.0, range=(0.0, None),
                                      doc="the value of calibration_metric at theta' (1.0 regions: one region per object, "
                                          "as the exact-mask oracle returns; our assumption, the paper gives no number)")
    calibration_iou: float = param(0.5, range=(0.0, 1.0), doc="mask IoU at which an object counts as found (recall metric)")
    alg1_reading: str = param("printed", choices=ALG1_READINGS,
                              doc="Algorithm 1 line 2: printed P <- P minus R_i; paper_trend P <- P n R_i (the text's "
                                  "'removing elements irrelevant to R_i'), the reading whose detection falls with theta")
    region_topk: int = param(1, range=(1, None), doc="names the poisoned CLIP gives each region (R_i)")
    min_region_side: int = param(3, range=(1, None), doc="regions with a smaller box side are dropped")
    affected_rule: str = param("paper", choices=AFFECTED_RULES,
                               doc="paper: Algorithm 2 as printed; detected: A_i from images whose P_i holds "
                                   "the most frequent trigger (see identify_affected_labels)")
    curated_fraction: float = param(0.3, range=(0.0, 1.0), doc="curated set size / the clean pool (CleanCLIP's set)")
    other_ratio: float = param(0.1, range=(0.0, 1.0), doc="share of the curated set from non-affected labels")

    def validate(self):
        if self.theta_anchor <= 0:
            raise ParamError(f"eftclip.theta_anchor={self.theta_anchor}: must be > 0 (theta is scaled by it)")
        if self.calibration_target <= 0 or (self.calibration_metric == "recall" and self.calibration_target > 1):
            raise ParamError(f"eftclip.calibration_target={self.calibration_target}: must be > 0, and <= 1 for "
                             "calibration_metric=recall (a share of the objects)")


# ---------------------------------------------------------------------------
# Algorithms 1 and 2 (pure functions on name lists)
# ---------------------------------------------------------------------------
def _minus(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """Ordered set difference (keeps a's order, drops repeats)."""
    bs = set(b)
    out = []
    for x in a:
        if x not in bs and x not in out:
            out.append(x)
    return out


def find_adversarial_trigger(L: Sequence[str], S: Sequence[str], R: Sequence[str],
                             K: Sequence[str], reading: str = "printed") -> tuple[list[str], list[str]]:
    """Algorithm 1.  Returns (K', P): the updated trigger list and the image's potential triggers.

    ``reading="printed"``: 1: P <- L \\ S;  2: P <- P \\ R;  3: N <- P \\ K;  4-7: K u N if N else K.

    ``reading="paper_trend"``: line 2 is P <- P n R (a potential trigger is a name the poisoned
    CLIP gives one of the oracle's cropped regions); lines 1, 3-7 as printed.  Why this is a
    reading of the paper and not a change of it:

    * The printed line 2 cannot give the paper's theta trend.  S_i and R_i both come from the
      regions the oracle keeps, and a higher theta keeps fewer of them, so S_i and R_i shrink and
      (L \\ S) \\ R can only grow: detection ("target in P_i") is non-decreasing in theta, and
      with no region at all P_i = L_i, every name a "trigger".  The paper reports the opposite
      three times: "A higher confidence threshold results in a smaller object list, leading to a
      reduced detection rate ... a lower confidence threshold expands the object list, increasing
      the likelihood of detection" (Sec. 5.4), and Figs. 3b and 4 ("as the confidence score
      increases, the detection rate decreases").
    * The text of step 2 says "Refine the list of potential triggers P by removing elements that
      are irrelevant to the O yielded region object list R_i, essentially excluding elements that
      don't correspond to the objects of interest" (the pseudo-code's comment: "removing elements
      irrelevant to objects in R_i").  Removing the elements *irrelevant to* R_i keeps those in
      R_i: P n R_i, where the printed symbol removes the elements that *are* in R_i.
    * The paper's mechanism needs the trigger among the regions: "Smaller patches have a higher
      chance of being cut by the segmentation oracle, leading to higher detection rates"
      (Sec. 5.4); the regions "are cropped according to their bounding boxes and re-fed into the
      poisoned CLIP model", a procedure that "facilitates the detection of any backdoor triggers
      present" (Sec. 4.3), to "isolate the impacted regions of the image" (Sec. 1); the oracle
      "fails to locate the objects given the prompt 'umbrella'" while the poisoned CLIP says
      umbrella (Sec. 5.6, Fig. 7).  So a
      trigger is a name the poisoned CLIP gives a cut region (in R_i) that the oracle's prompt
      matching does not confirm (not in S_i) - which P = (L \\ S) n R says.
    * Under this reading a lower theta keeps more regions: R_i grows (the trigger's region is
      among them, more detection) and S_i grows (less detection only where the oracle's prompt
      matcher names a region the target), so detection falls as theta rises unless the oracle
      itself confirms the target - the paper's trend."""
    if reading not in ALG1_READINGS:
        raise ValueError(f"alg1_reading={reading!r}; valid: {', '.join(ALG1_READINGS)}")
    P = _minus(L, S)            # line 1: named by the poisoned CLIP, not found by the oracle
    if reading == "printed":
        P = _minus(P, R)        # line 2 as printed: not the poisoned CLIP's name of any oracle region
    else:
        rs = set(R)             # line 2 as the text says: the poisoned CLIP's name of an oracle region
        P = [x for x in P if x in rs]
    N = _minus(P, K)            # line 3: new potential triggers
    K_new = list(K) + N if N else list(K)   # lines 4-7
    return K_new, P


@dataclass
class ImageLists:
    """The three name lists of one image (Sec. 4.3) and, when known, its scene id."""
    L: list[str]
    S: list[str]
    R: list[str]
    scene_id: int = -1
    n_regions: int = 0


@dataclass
class DetectionOutcome:
    K: list[str]                                # known triggers, in order of discovery
    trigger_counts: Counter                     # how many images proposed each entry of K
    P: list[list[str]]                          # per-image potential triggers
    A: Counter                                  # affected labels with frequencies (union of A_i)
    A_images: list[list[str]] = field(default_factory=list)

    def detected(self, target: str) -> np.ndarray:
        """Per image: does its potential-trigger set hold ``target``?"""
        return np.array([target in p for p in self.P], bool)


def identify_affected_labels(images: Sequence[ImageLists], K: Sequence[str] = (),
                             rule: str = "paper", reading: str = "printed") -> DetectionOutcome:
    """Algorithm 2 over a set of images, calling Algorithm 1 in its ``reading``
    (:func:`find_adversarial_trigger`).

    ``rule="paper"`` is the pseudo-code as printed: after Algorithm 1 updates K (line 4),
    if (R_i n S_i) n K is not empty (line 5), A_i = (R_i n S_i) \\ K (line 6).
    ``rule="detected"`` reads line 5 as the text does ("labels that coexist with the triggers"):
    an image contributes A_i = (R_i n S_i) \\ K when its own P_i holds the most frequently
    proposed trigger (the first pass finds that trigger).  Both return A as label -> count."""
    if rule not in AFFECTED_RULES:
        raise ValueError(f"affected_rule={rule!r}; valid: {', '.join(AFFECTED_RULES)}")
    K = list(K)
    counts: Counter = Counter()
    P_all, A, A_images = [], Counter(), []
    for im in images:
        K, P = find_adversarial_trigger(im.L, im.S, im.R, K, reading)   # line 4
        counts.update(P)
        P_all.append(P)
        if rule == "paper":
            both = [x for x in im.R if x in set(im.S)]
            A_i = _minus(both, K) if set(both) & set(K) else []     # lines 5-6
            A.update(A_i)
            A_images.append(A_i)
    if rule == "detected":
        top = counts.most_common(1)[0][0] if counts else None
        for im, P in zip(images, P_all):
            both = [x for x in im.R if x in set(im.S)]
            A_i = _minus(both, K) if top is not None and top in P else []
            A.update(A_i)
            A_images.append(A_i)
    return DetectionOutcome(K=K, trigger_counts=counts, P=P_all, A=A, A_images=A_images)


# ---------------------------------------------------------------------------
# The lists from the models and the oracle
# ---------------------------------------------------------------------------
def topk_names(features: torch.Tensor, classifier: torch.Tensor, names: Sequence[str], k: int) -> list[list[str]]:
    """The k best class names of each row of normalised image features (zero-shot)."""
    idx = (features @ classifier).topk(min(k, classifier.shape[1]), dim=1).indices.tolist()
    return [[names[j] for j in row] for row in idx]


def crop_regions(image: np.ndarray, regions, size: int, min_side: int) -> tuple[torch.Tensor, list]:
    """(n, 3, size, size) uint8 crops of the regions' boxes (bilinear resize), and the regions kept."""
    import torch.nn.functional as F
    crops, kept = [], []
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    for r in regions:
        x0, y0, x1, y1 = r.box
        if min(x1 - x0, y1 - y0) < min_side:
            continue
        c = img[:, y0:y1, x0:x1][None]
        crops.append(F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False)[0])
        kept.append(r)
    if not crops:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), []
    return torch.stack(crops).round().clamp(0, 255).to(torch.uint8), kept


@dataclass
class ImageObservation:
    """What the models and the oracle say about one image, before tau and theta are chosen."""
    L: list[str]                    # the poisoned CLIP's names, best first (tau_max of them)
    conf: np.ndarray                # (n,) confidences of the oracle's regions
    side: np.ndarray                # (n,) shorter box side of each region
    clean_feats: torch.Tensor       # (n, D) the oracle's clean CLIP features of the region crops
    R_names: list[list[str]]        # per region: the poisoned CLIP's names (region_topk of them)
    scene_id: int = -1

    def lists(self, tau: int, theta: float, min_side: int, clean_classifier: torch.Tensor,
              index: dict[str, int]) -> ImageLists:
        """L_i, S_i, R_i for one (tau, theta)."""
        L = self.L[:tau]
        keep = (self.conf >= theta) & (self.side >= min_side)
        S, R = [], []
        if keep.any():
            cols = [index[n] for n in L]
            best = (self.clean_feats[torch.from_numpy(keep)] @ clean_classifier[:, cols]).argmax(1).tolist()
            S = _minus([L[b] for b in best], [])
            R = _minus([n for j in np.flatnonzero(keep) for n in self.R_names[j]], [])
        return ImageLists(L=L, S=S, R=R, scene_id=self.scene_id, n_regions=int(keep.sum()))


@dataclass
class ListMaker:
    """Builds L_i, S_i, R_i with a poisoned CLIP, an oracle and the oracle's clean CLIP.

    :meth:`observe` runs the models once per image (oracle at the lowest theta of a sweep, the
    longest tau); :meth:`lists` then makes the lists of any (tau, theta) without running them again."""
    poisoned: torch.nn.Module
    poisoned_classifier: torch.Tensor           # (D, C) over ``names``
    clean: torch.nn.Module
    clean_classifier: torch.Tensor              # (D, C) over ``names`` (the oracle's prompt matcher)
    names: Sequence[str]
    oracle: object
    image_size: int
    device: torch.device = torch.device("cpu")

    @torch.no_grad()
    def observe(self, images: np.ndarray, tau_max: int, theta_min: float, region_topk: int = 1,
                scene_ids=None, batch: int = 256, progress: bool = False) -> list[ImageObservation]:
        from paperlib.progress import bar as progress_bar
        from paperlib.eval.zeroshot import encode_images
        feats = encode_images(self.poisoned, images, batch, self.device)
        L_all = topk_names(feats, self.poisoned_classifier, self.names, tau_max)
        out = []
        for s in progress_bar(range(0, len(images), batch), desc=f"oracle {self.oracle.name}", disable=not progress):
            chunk = np.asarray(images[s:s + batch])
            ids = None if scene_ids is None else scene_ids[s:s + batch]
            regions = self.oracle.segment(chunk, theta_min, ids)
            crops, owner = [], []
            for j, (img, regs) in enumerate(zip(chunk, regions)):
                c, kept = crop_regions(img, regs, self.image_size, 1)
                crops.append(c)
                owner += [j] * len(kept)
            crops = torch.cat(crops) if crops else torch.zeros((0, 3, self.image_size, self.image_size), torch.uint8)
            owner = np.asarray(owner, np.int64)
            if len(crops):
                cf = encode_images(self.clean, crops, batch, self.device)
                pf = encode_images(self.poisoned, crops, batch, self.device)
                rn = topk_names(pf, self.poisoned_classifier, self.names, region_topk)
            for j, regs in enumerate(regions):
                sel = np.flatnonzero(owner == j)
                regs = [r for r in regs if min(r.box[2] - r.box[0], r.box[3] - r.box[1]) >= 1]
                out.append(ImageObservation(
                    L=L_all[s + j], conf=np.array([r.conf for r in regs], np.float64),
                    side=np.array([min(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in regs], np.int64),
                    clean_feats=cf[torch.from_numpy(sel)] if len(sel) else torch.zeros((0, self.clean_classifier.shape[0])),
                    R_names=[rn[k] for k in sel] if len(sel) else [],
                    scene_id=-1 if ids is None else int(ids[j])))
        return out

    def lists(self, observations: Sequence[ImageObservation], tau: int, theta: float,
              min_side: int = 3) -> list[ImageLists]:
        index = {n: j for j, n in enumerate(self.names)}
        return [o.lists(tau, theta, min_side, self.clean_classifier, index) for o in observations]


# ---------------------------------------------------------------------------
# Triggered images and the curated set
# ---------------------------------------------------------------------------
def resized_patch(pattern: torch.Tensor, side: int) -> torch.Tensor:
    """The victim's trigger pattern (3, s, s) at another side (area / bilinear resampling)."""
    import torch.nn.functional as F
    if pattern.shape[-1] == side:
        return pattern.clone()
    mode = "area" if side < pattern.shape[-1] else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(pattern[None].float(), size=(side, side), mode=mode, **kw)[0].round().clamp(0, 255).to(torch.uint8)


def triggered(images: np.ndarray, pattern: torch.Tensor, rho: int, position: str, seed: int) -> np.ndarray:
    """(B, H, W, 3) copies of ``images`` with the trigger pattern, resized to ``rho`` px, pasted at
    ``position`` (EftCLIP Sec. 5.2: the pre-training trigger at random or fixed places)."""
    from paperlib.attacks.badnet import paste_patch
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    g = torch.Generator().manual_seed(seed)
    out = paste_patch(x, resized_patch(pattern, rho), position, 0, g)
    return out.permute(0, 2, 3, 1).numpy()


def caption_labels(captions: Sequence[Sequence[str]], names: Sequence[str]) -> list[set[str]]:
    """The class names each pair's captions mention, by the rule of
    :func:`paperlib.attacks.base.mentions` (whole words, plural "-s"/"-es" on the last word), for
    any captioned data.  Each caption's word n-grams are looked up among the names' accepted forms,
    instead of scanning every caption once per name (5,000 pairs x 300 names took minutes)."""
    from paperlib.data.names import caption_words
    forms: dict[tuple[str, ...], set[str]] = {}
    for n in names:
        words = caption_words(n)
        if words:
            for last in (words[-1], words[-1] + "s", words[-1] + "es"):
                forms.setdefault((*words[:-1], last), set()).add(n)
    lengths = sorted({len(f) for f in forms})
    out = []
    for caps in captions:
        found: set[str] = set()
        for c in caps:
            tokens = caption_words(c)
            for size in lengths:
                for k in range(len(tokens) - size + 1):
                    found |= forms.get(tuple(tokens[k:k + size]), set())
        out.append(found)
    return out


def curate(labels: Sequence[set[str]], affected: Counter, n_total: int, other_ratio: float,
           rng: np.random.Generator) -> np.ndarray:
    """Rows of a clean pool for the curated fine-tuning set (EftCLIP Sec. 4.4-4.5).

    The set has ``n_total`` rows ("a certain number of image-text pairs", Sec. 5): about
    ``(1 - other_ratio) * n_total`` go to the affected labels, each label's share proportional to
    its frequency in A (drawn from the rows that mention it, without replacement); a label with
    fewer rows than its share gives the rest to the other affected labels' remaining rows; the
    remainder (about ``other_ratio * n_total``; per-label rounding can take a few more for the
    labels) comes from rows that mention no affected label, and if those run out, from any row
    left.  Without affected labels all rows are such rows.  Returns sorted unique row indices:
    exactly ``n_total`` unless the whole pool is smaller."""
    n_total = int(n_total)
    freq = {k: v for k, v in affected.items() if v > 0}
    taken: set[int] = set()
    if freq:
        n_aff = int(round((1.0 - other_ratio) * n_total))
        total = sum(freq.values())
        for lab, f in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])):
            want = int(round(n_aff * f / total))
            rows = np.array([i for i, ls in enumerate(labels) if lab in ls and i not in taken], np.int64)
            if want and len(rows):
                taken.update(rng.choice(rows, size=min(want, len(rows)), replace=False).tolist())
        short = n_aff - len(taken)
        spare = np.array([i for i, ls in enumerate(labels) if ls & freq.keys() and i not in taken], np.int64)
        if short > 0 and len(spare):      # labels that ran out: their share to the other affected labels
            taken.update(rng.choice(spare, size=min(short, len(spare)), replace=False).tolist())
    others = np.array([i for i, ls in enumerate(labels) if not (ls & freq.keys()) and i not in taken], np.int64)
    n_other = n_total - len(taken)
    if n_other > 0 and len(others):
        taken.update(rng.choice(others, size=min(n_other, len(others)), replace=False).tolist())
    if len(taken) < n_total:   # the non-affected rows ran out: any row left
        rest = np.setdiff1d(np.arange(len(labels)), np.fromiter(taken, np.int64, len(taken)))
        if len(rest):
            taken.update(rng.choice(rest, size=min(n_total - len(taken), len(rest)), replace=False).tolist())
    return np.array(sorted(taken), np.int64)


__all__ = ["AFFECTED_RULES", "ALG1_READINGS", "EftCLIPConfig", "find_adversarial_trigger", "ImageLists", "DetectionOutcome",
           "identify_affected_labels", "topk_names", "crop_regions", "ImageObservation", "ListMaker", "resized_patch", "triggered",
           "caption_labels", "curate"]
