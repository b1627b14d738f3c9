"""CleanerCLIP (Table 1, Sec. 3.2-3.3): CleanCLIP plus factual / counterfactual sub-caption terms.

Each epoch a random subset of the clean fine-tuning pairs (``subset_fraction`` of them: 1,000 of
500K in the paper, 3,000 against BadCLIP; the proportion is kept at smaller scales) gets, every
time it is drawn, a positive (factual) and a negative (counterfactual) sub-caption
(:mod:`paperlib.text.subcaptions`).  The negative is the positive with one slot (object,
attribute or relation word) replaced (Sec. 3.2; ``negatives``), by a word of the clean
fine-tuning captions the defence receives (``replacement_vocab``; the paper's repositories came
from WordNet and ChatGPT, which is not available offline; the WordNet-only repositories are the
ablation).

Reconstruction of Eq. 1-4 (the extracted text lost the symbols).  For the K sub-captioned pairs
of a batch, with normalised image embeddings v_i, positive sub-caption embeddings p_i and
negative ones n_i, cosine similarity s(.,.):

* Eq. 1, image -> sub-captions: each image must pick its own positive among all positives
  (temperature tau_pos) and all negatives (temperature tau_neg)::

      L_i2t = -1/K sum_i log  exp(s(v_i,p_i)/tau_pos)
                              / [ sum_j exp(s(v_i,p_j)/tau_pos) + sum_j exp(s(v_i,n_j)/tau_neg) ]

  ("similarity of positive image-text, dissimilarity of negative texts and images").
* Eq. 2, sub-captions -> images: each positive must pick its own image among all images
  (tau_pos), against the similarities of its negative to all images (tau_neg)::

      L_t2i = -1/K sum_i log  exp(s(p_i,v_i)/tau_pos)
                              / [ sum_j exp(s(p_i,v_j)/tau_pos) + sum_j exp(s(n_i,v_j)/tau_neg) ]

* Eq. 3: L_cf = (L_i2t + L_t2i) / 2, the same symmetric averaging as the CLIP loss.
* Eq. 4: L = lambda_1 * L_CleanCLIP + lambda_2 * L_cf with lambda_1 = 1 (the paper's Fig. 4a
  varies lambda_2 / lambda_1).

Why this reading: the text describes two parts, one anchored on images and one on texts, each
"measuring the similarity of positives and the dissimilarity of negatives", with one temperature
for positive and one for negative similarities; smaller temperature = more attention (its Fig.
4b).  Its text says tau = 0.3 worked best and that a negative temperature above the positive one
de-emphasises negatives; we take tau_neg = 0.3 and tau_pos = 0.5 (the exact pair was lost) and
lambda_2 = 1.  All four are parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlib.config import param
from paperlib.defences.base import DefenceContext, DefencePlan, step_rng
from paperlib.defences.cleanclip import CleanCLIPConfig, cleanclip_parts
from paperlib.text.subcaptions import NEGATIVES
from paperlib.train.losses import StepContext

#: Where the replacement words come from: the defence's clean fine-tuning captions, or WordNet.
REPLACEMENT_VOCABS = ("training_captions", "wordnet")


@dataclass(frozen=True)
class CleanerCLIPConfig:
    """CleanerCLIP's settings.

    ``subset_fraction``: the paper (Sec. 4.2, end of the first paragraph, on Table 1) sub-captions
    1,000 randomly chosen samples per iteration of the 500K-pair fine-tuning set, 3,000 against
    BadCLIP; its "iteration" is an epoch (Sec. 4.1 "Defense finetuning" runs 10 of them at batch
    size 64, and Sec. 4.3 calls the Fig. 4(c) study one of the number of samples per epoch).  The
    default keeps that share, 1,000 / 500K = 0.2% of the pairs per epoch (about 0.13
    sub-captioned pairs per batch of 64); the paper sets no per-batch share.  ``min_subset`` is
    ours (a floor for tiny pair sets).

    ``negatives`` (Sec. 3.2: the replacement acts on each sub-caption): ``"one_slot"``, the
    positive sub-caption with one slot replaced; ``"full_caption"`` (ablation, the former
    construction): one slot of the core caption with all its adjectives replaced.

    ``replacement_vocab``: ``"training_captions"``, replacement words only from the clean
    fine-tuning captions the defence receives (``ReplacementVocab.from_captions`` in
    :mod:`paperlib.text.replacement_vocab`); ``"wordnet"`` (ablation, the former draw):
    ``vocab_size`` WordNet lemmas per repository, from common to rare as in Sec. 3.2
    (``ReplacementVocab.from_wordnet``).
    """

    tau_pos: float = param(0.5, range=(1e-4, 10.0), doc="temperature of positive similarities (Eq. 1-2)")
    tau_neg: float = param(0.3, range=(1e-4, 10.0), doc="temperature of negative similarities (Eq. 1-2)")
    lambda_1: float = param(1.0, range=(0.0, None), doc="weight of the CleanCLIP loss (Eq. 4)")
    lambda_2: float = param(1.0, range=(0.0, None), doc="weight of the sub-caption loss (Eq. 4)")
    subset_fraction: float = param(1000 / 500_000, range=(0.0, 1.0),
                                   doc="share of fine-tuning pairs sub-captioned per epoch "
                                       "(Sec. 4.2: 1,000 of 500K; 3,000 for BadCLIP)")
    min_subset: int = param(1, range=(0, None), doc="at least this many pairs per epoch")
    negatives: str = param("one_slot", choices=NEGATIVES,
                           doc="negative = positive sub-caption with one slot replaced (Sec. 3.2), "
                               "or the core caption with its adjectives and one slot replaced (ablation)")
    replacement_vocab: str = param("training_captions", choices=REPLACEMENT_VOCABS,
                                   doc="replacement words from the defence's clean fine-tuning captions, "
                                       "or from WordNet (ablation)")
    vocab_size: int = param(3000, range=(1, None),
                            doc="terms per WordNet replacement repository (replacement_vocab='wordnet')")
    p_keep_adjective: float = param(0.0, range=(0.0, 1.0), doc="chance a positive keeps one adjective")
    p_opposite: float = param(0.5, range=(0.0, 1.0), doc="chance a replaced spatial relation is its opposite")
    cleanclip: CleanCLIPConfig = CleanCLIPConfig()


def counterfactual_loss(v: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                        tau_pos: float, tau_neg: float) -> torch.Tensor:
    """L_cf of Eq. 3 from normalised embeddings (K, d) of images, positives and negatives."""
    K = len(v)
    labels = torch.arange(K, device=v.device)
    i2t = torch.cat([v @ p.t() / tau_pos, v @ n.t() / tau_neg], dim=1)          # Eq. 1
    t2i = torch.cat([p @ v.t() / tau_pos, n @ v.t() / tau_neg], dim=1)          # Eq. 2
    return 0.5 * (F.cross_entropy(i2t, labels) + F.cross_entropy(t2i, labels))  # Eq. 3


def distributed_counterfactual_loss(v: torch.Tensor, p: torch.Tensor, n: torch.Tensor, tau_pos: float,
                                    tau_neg: float, rank: int, world_size: int) -> torch.Tensor:
    """L_cf of Eq. 3 over the global batch under DDP: this rank's rows (any number, none included)
    against every rank's images, positives and negatives, as :func:`counterfactual_loss` on the
    concatenated rows.  The other ranks' rows are gathered without their gradient (as the CLIP
    loss's, :func:`paperlib.train.losses.gather_features`), and the rank's summed loss is scaled by
    ``world_size / total rows`` so that DDP's average of the ranks' gradients is the gradient of
    the global mean (the ranks hold unequal numbers of sub-captioned rows).  Every rank must call
    it at every step (it gathers)."""
    all_v, offset, total = gather_rows(v, rank, world_size)
    all_p, _, _ = gather_rows(p, rank, world_size)
    all_n, _, _ = gather_rows(n, rank, world_size)
    if total == 0 or len(v) == 0:
        return (all_v.sum() + all_p.sum() + all_n.sum()) * 0.0
    labels = torch.arange(len(v), device=v.device) + offset
    i2t = torch.cat([v @ all_p.t() / tau_pos, v @ all_n.t() / tau_neg], dim=1)          # Eq. 1
    t2i = torch.cat([p @ all_v.t() / tau_pos, n @ all_v.t() / tau_neg], dim=1)          # Eq. 2
    summed = 0.5 * (F.cross_entropy(i2t, labels, reduction="sum") + F.cross_entropy(t2i, labels, reduction="sum"))
    return summed * world_size / total                                                  # Eq. 3


def gather_rows(x: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, int, int]:
    """Every rank's rows of ``x`` (a different number on each rank), this rank's with their gradient:
    (the rows in rank order, where this rank's begin, how many there are)."""
    import torch.distributed as dist
    count = torch.tensor([len(x)], device=x.device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[:len(x)] = x.detach()
    parts = [torch.zeros_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    parts = [part[:c] for part, c in zip(parts, counts)]
    parts[rank] = x
    return torch.cat(parts), sum(counts[:rank]), sum(counts)


class CounterfactualTerm(nn.Module):
    """L_cf (Eq. 3) on the batch's sub-captioned rows; under DDP over the global batch's rows
    (:func:`distributed_counterfactual_loss`)."""
    name = "counterfactual"

    def __init__(self, tau_pos: float, tau_neg: float):
        super().__init__()
        self.tau_pos, self.tau_neg = tau_pos, tau_neg

    def forward(self, step: StepContext) -> torch.Tensor:
        rows = step.batch.get("subcaption_rows")
        has_rows = rows is not None and len(rows) > 0
        if step.world_size > 1:   # every rank gathers, with or without rows of its own
            images = step.image_features()
            v = images[rows] if has_rows else images[:0]
            p = step.text_features("tokens_pos") if has_rows else images[:0]
            n = step.text_features("tokens_neg") if has_rows else images[:0]
            loss = distributed_counterfactual_loss(v, p, n, self.tau_pos, self.tau_neg, step.rank, step.world_size)
            return loss + images.sum() * 0.0
        if not has_rows:
            return step.image_features().sum() * 0.0
        v = step.image_features()[rows]
        p = step.text_features("tokens_pos")
        n = step.text_features("tokens_neg")
        return counterfactual_loss(v, p, n, self.tau_pos, self.tau_neg)


def epoch_subset(n_pairs: int, fraction: float, minimum: int, seed: int, epoch: int) -> np.ndarray:
    """The pair-set rows sub-captioned in ``epoch`` (sorted; a fresh draw each epoch)."""
    n = min(n_pairs, max(minimum, int(round(fraction * n_pairs))))
    return np.sort(np.random.default_rng([seed, epoch, 31]).choice(n_pairs, size=n, replace=False))


class SubcaptionBatch:
    """Adds ``subcaption_rows``, ``tokens_pos`` and ``tokens_neg`` for the batch rows that are in
    this epoch's subset (sub-captions re-drawn at every step); a row whose caption has no
    replacement in the vocabulary is left out (the generator counts it)."""

    def __init__(self, generator, tokenizer, n_pairs: int, steps_per_epoch: int,
                 fraction: float, minimum: int, seed: int):
        self.gen, self.tokenizer = generator, tokenizer
        self.n_pairs, self.steps_per_epoch = n_pairs, steps_per_epoch
        self.fraction, self.minimum, self.seed = fraction, minimum, seed
        self._subset = (-1, None)

    def subset(self, epoch: int) -> np.ndarray:
        if self._subset[0] != epoch:
            self._subset = (epoch, epoch_subset(self.n_pairs, self.fraction, self.minimum, self.seed, epoch))
        return self._subset[1]

    def __call__(self, batch: dict, step: int, generator: torch.Generator) -> dict:
        epoch = step // max(1, self.steps_per_epoch)
        index = batch["index"].cpu().numpy()
        sel = np.flatnonzero(np.isin(index, self.subset(epoch)))
        dev = batch["tokens"].device
        if len(sel):
            pos, neg = self.gen([batch["texts"][i] for i in sel], step_rng(generator))
            kept = [k for k, n in enumerate(neg) if n is not None]   # None: no replacement exists
            sel = sel[kept]
            pos, neg = [pos[k] for k in kept], [neg[k] for k in kept]
        batch["subcaption_rows"] = torch.from_numpy(sel).to(dev)
        if len(sel):
            batch["tokens_pos"] = self.tokenizer(pos).to(dev)
            batch["tokens_neg"] = self.tokenizer(neg).to(dev)
        return batch


def pair_captions(pairs) -> list[str]:
    """Every caption string of a pair set's rows: all captions of each scene (one is drawn per
    batch), and the captions of its extra pairs."""
    texts = getattr(pairs, "texts", None)
    if texts is None:
        raise ValueError("replacement_vocab='training_captions' needs the caption strings: build "
                         "the pair set with texts= (or set replacement_vocab='wordnet')")
    rows = np.asarray(pairs.rows)
    out = [t for i in np.unique(rows[rows >= 0]) for t in texts[int(i)]]
    extra = np.unique(-rows[rows < 0] - 1)
    if len(extra):
        if pairs.extra_texts is None:
            raise ValueError("a pair set with texts needs extra_texts for its extra rows")
        out += [t for e in extra for t in pairs.extra_texts[int(e)]]
    return out


def replacement_vocab(cfg: CleanerCLIPConfig, ctx: DefenceContext):
    """The replacement vocabulary ``cfg.replacement_vocab`` names, for the pairs of ``ctx``."""
    from paperlib.text.replacement_vocab import ReplacementVocab
    if cfg.replacement_vocab not in REPLACEMENT_VOCABS:
        raise ValueError(f"unknown replacement_vocab {cfg.replacement_vocab!r}; "
                         f"valid: {', '.join(REPLACEMENT_VOCABS)}")
    if cfg.replacement_vocab == "wordnet":
        return ReplacementVocab.from_wordnet(cfg.vocab_size, seed=ctx.seed)
    return ReplacementVocab.from_captions(pair_captions(ctx.pairs), nouns=ctx.classnames)


def plan(cfg: CleanerCLIPConfig, ctx: DefenceContext) -> DefencePlan:
    from paperlib.text.subcaptions import SubcaptionGenerator
    base = cleanclip_parts(cfg.cleanclip, ctx)
    vocab = replacement_vocab(cfg, ctx)
    gen = SubcaptionGenerator(vocab, nouns=ctx.classnames, p_keep_adjective=cfg.p_keep_adjective,
                              p_opposite=cfg.p_opposite, negatives=cfg.negatives)
    sub = SubcaptionBatch(gen, ctx.tokenizer, len(ctx.pairs), ctx.steps_per_epoch,
                          cfg.subset_fraction, cfg.min_subset, ctx.seed)
    terms = [(t, w * cfg.lambda_1) for t, w in base.terms]
    terms.append((CounterfactualTerm(cfg.tau_pos, cfg.tau_neg), cfg.lambda_2))
    n = len(epoch_subset(len(ctx.pairs), cfg.subset_fraction, cfg.min_subset, ctx.seed, 0))
    return DefencePlan(terms=terms, transforms=base.transforms + [sub],
                       info={"subcaptioned_per_epoch": n, "negatives": cfg.negatives,
                             "replacement_vocab": cfg.replacement_vocab, "vocab_nouns": len(vocab.nouns),
                             "vocab_adjectives": len(vocab.adjectives), "vocab_relations": len(vocab.relations)})
