"""What CleanerCLIP's negatives are, measured on the captions the defence fine-tunes on (issue 23).

CleanerCLIP Sec. 3.2 applies its random replacement to each *sub-caption*: a negative differs
from its positive in one slot (an adjective, the relation or a noun).  The construction before
issue 23 replaced one slot of the full caption with its adjectives, and drew the words from
WordNet, most of which no training caption holds.  This module draws the negatives the defence
would draw (:class:`paperlib.text.subcaptions.SubcaptionGenerator`'s pair function, the defence's
own settings) for the ``clean_scenes`` clean pairs of each seed, for both constructions and both
vocabularies, and counts:

* ``one_slot_pct``: negatives that are their positive with the replaced slot's words, and only
  those, changed (:func:`differs_in_one_slot`; a re-agreed article before the slot is not a
  second change);
* ``replacement_seen_pct``: negatives whose replacement words all occur in the clean captions,
  a plural counting as its singular (what the text tower has seen in training);
* ``skipped_pct``: captions with no replacement in the vocabulary (left out of the loss);
* the share of each replacement type.

``python -m paperlib.experiments.cleanerclip_negatives params/cleanerclip/embedded.yaml
[results_dir=results]`` writes ``<results_dir>/cleanerclip/negatives_audit.csv`` (no training;
about a minute per seed on 2 cores once the split is rendered).
"""
from __future__ import annotations

import difflib
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

PAPER = "cleanerclip"
FILE = "negatives_audit.csv"
ARTICLES = frozenset({"a", "an", "the"})
CONSTRUCTIONS = (("one_slot", "training_captions"), ("one_slot", "wordnet"),
                 ("full_caption", "training_captions"), ("full_caption", "wordnet"))
KEY = ("scale", "seed", "clean_scenes", "negatives", "replacement_vocab")
COLUMNS = (*KEY, "n_captions", "n_negatives", "skipped_pct", "one_slot_pct", "replacement_seen_pct",
           "adjective_pct", "relation_pct", "noun_pct")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def differs_in_one_slot(positive: str, negative: str, old: str, new: str) -> bool:
    """Whether ``negative`` is ``positive`` with the one slot ``old`` replaced by ``new``: once
    the words the two share at the start and at the end are set aside, what is left of the
    positive is words of ``old`` and what is left of the negative words of ``new`` (an article
    before the slot, re-agreed "a" -> "an", may be left on either side)."""
    a, b = words(positive), words(negative)
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    left_a, left_b = a[start:len(a) - end], b[start:len(b) - end]
    return bool(left_a or left_b) and set(left_a) <= set(words(old)) | ARTICLES \
        and set(left_b) <= set(words(new)) | ARTICLES


def _base_forms(ws) -> set[str]:
    from paperlib.text.lexicon import noun_lemma
    return {f for w in ws for f in (w, noun_lemma(w))}


def audit(captions: Sequence[str], vocab, rng: np.random.Generator, nouns: Iterable[str] = (),
          negatives: str = "one_slot", p_keep_adjective: float = 0.0, p_opposite: float = 0.5,
          seen: set[str] | None = None) -> dict:
    """The counts of the module docstring for one draw of negatives over ``captions``; ``seen``:
    the words a replacement must be among (default: the words of ``captions``)."""
    from paperlib.text.lexicon import noun_lemma
    from paperlib.text.subcaptions import KINDS, NoReplacementError, SubcaptionGenerator, subcaption_pair
    gen = SubcaptionGenerator(vocab, nouns=nouns)   # its cached parser
    seen = _base_forms({w for c in captions for w in words(c)}) if seen is None else seen
    one_slot = seen_n = skipped = 0
    kinds = dict.fromkeys(KINDS, 0)
    for caption in captions:
        try:
            positive, cf = subcaption_pair(gen.parse(caption), rng, vocab, p_keep_adjective, p_opposite, negatives)
        except NoReplacementError:
            skipped += 1
            continue
        one_slot += differs_in_one_slot(positive.core_text(), cf.text, cf.old, cf.new)
        seen_n += all(w in seen or noun_lemma(w) in seen for w in words(cf.new))
        kinds[cf.kind] += 1
    n = len(captions) - skipped
    pct = (lambda k: 100.0 * k / n) if n else (lambda k: float("nan"))
    return {"n_captions": len(captions), "n_negatives": n,
            "skipped_pct": 100.0 * skipped / len(captions) if captions else float("nan"),
            "one_slot_pct": pct(one_slot), "replacement_seen_pct": pct(seen_n),
            **{f"{k}_pct": pct(v) for k, v in kinds.items()}}


def clean_captions(p, seed: int) -> list[str]:
    """Every caption of the clean scenes a defence of the first victim fine-tunes on at ``seed``
    (:func:`paperlib.pipeline.defence_context`'s pairs, without building a model; a batch draws
    one caption of each scene, so each is a negative's possible source)."""
    from paperlib import pipeline as pl
    split = pl.get_split("cc3m_analog", p.data)
    v = p.victims[0]
    exclude = pl.finetune_scene_ids(split, v.finetune_scenes, seed)
    ids = pl.defence_scene_ids(split, p.defence.clean_scenes, exclude, seed)
    return [c for i in ids for c in split.captions[int(i)]]


def run(p, log=print) -> pd.DataFrame:
    """Every construction of :data:`CONSTRUCTIONS` at each of ``p.seeds``' first three seeds
    (the defence's seeds), upserted into ``<results_dir>/cleanerclip/negatives_audit.csv``."""
    from dataclasses import replace

    from paperlib.data.vocabulary import build_vocabulary
    from paperlib.results import upsert_csv, write_manifest
    from paperlib.text.replacement_vocab import ReplacementVocab
    nouns = tuple(build_vocabulary().names)
    base_cfg = p.defence.config("cleanerclip")
    rows, started = [], time.perf_counter()
    for seed in p.seeds:
        captions = clean_captions(p, seed)
        for negatives, vocab_kind in CONSTRUCTIONS:
            cfg = replace(base_cfg, negatives=negatives, replacement_vocab=vocab_kind)
            vocab = (ReplacementVocab.from_captions(captions, nouns=nouns) if vocab_kind == "training_captions"
                     else ReplacementVocab.from_wordnet(cfg.vocab_size, seed=seed))
            counts = audit(captions, vocab, np.random.default_rng([seed, 404]), nouns, negatives,
                           cfg.p_keep_adjective, cfg.p_opposite)
            rows.append({"scale": p.scale, "seed": seed, "clean_scenes": p.defence.clean_scenes,
                         "negatives": negatives, "replacement_vocab": vocab_kind, **counts})
            log(f"seed {seed} {negatives:12s} {vocab_kind:17s}: one slot {counts['one_slot_pct']:.1f} %, "
                f"replacement seen {counts['replacement_seen_pct']:.1f} %, skipped {counts['skipped_pct']:.1f} % "
                f"({time.perf_counter() - started:.0f} s)")
    out = Path(p.results_dir) / PAPER
    table = upsert_csv(out / FILE, rows, KEY, COLUMNS)
    write_manifest(out / f"manifest_negatives_audit_{p.scale}.json", asdict(p),
                   {"audit": time.perf_counter() - started})
    return table


def load(path=None, overrides=None):
    from paperlib.experiments.cleanerclip import load as load_cleanerclip
    return load_cleanerclip(path, overrides)


if __name__ == "__main__":
    from paperlib.experiments.common import cli
    raise SystemExit(cli(load, run, description=__doc__))

__all__ = ["CONSTRUCTIONS", "FILE", "audit", "clean_captions", "differs_in_one_slot", "run"]
