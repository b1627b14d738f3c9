"""What CleanerCLIP's negatives are, measured on the captions the defence fine-tunes on (issue 23).

CleanerCLIP Sec. 3.2 applies its random replacement to each *sub-caption*: a negative differs
from its positive in one slot (an adjective, the relation or a noun).  The construction before
issue 23 replaced one slot of the full caption with its adjectives, and drew the words from
WordNet, most of which no training caption holds.  This module draws the negatives the defence
would draw (:func:`paperlib.text.subcaptions.subcaption_pair`, the defence's own settings and
vocabularies) for every caption of each seed's ``clean_scenes`` clean pairs, for both
constructions and both vocabularies, and counts:

* ``one_slot_pct``: negatives that are their positive with the replaced slot's words, where they
  stand, replaced and nothing else changed (:func:`differs_in_one_slot`; a re-agreed article
  before the slot is not a second change);
* ``replacement_seen_pct``: negatives each of whose replacement words occurs in the clean
  captions, a plural or inflected form counted by its base form (:func:`seen_in`: the words the
  text tower has seen in training; a multi-word replacement is counted by its words, not as a
  phrase);
* ``skipped_pct``: captions with no replacement in the vocabulary (left out of the loss);
* the share of each replacement type.

The audit describes the pool the defence draws from: the defence itself sub-captions only
``subset_fraction`` of its pairs per epoch.

``python -m paperlib.experiments.cleanerclip_negatives params/cleanerclip/embedded.yaml
[results_dir=results]`` writes ``<results_dir>/cleanerclip/negatives_audit.csv`` (no training;
about two minutes per seed on one core once the split is rendered).
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

PAPER = "cleanerclip"
FILE = "negatives_audit.csv"
ARTICLES = ("a", "an", "the")
CONSTRUCTIONS = (("one_slot", "training_captions"), ("one_slot", "wordnet"),
                 ("full_caption", "training_captions"), ("full_caption", "wordnet"))
KEY = ("scale", "seed", "clean_scenes", "negatives", "replacement_vocab", "vocab_size", "p_keep_adjective",
       "p_opposite")
COLUMNS = (*KEY, "n_captions", "n_negatives", "skipped_pct", "one_slot_pct", "replacement_seen_pct",
           "adjective_pct", "relation_pct", "noun_pct")
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def differs_in_one_slot(positive: str, negative: str, old: str, new: str) -> bool:
    """Whether ``negative`` is ``positive`` with the words of the slot ``old``, where they stand,
    replaced by those of ``new`` and nothing else changed; the article just before the slot may
    be re-agreed, added or dropped ("a apple" -> "an apple", a pronoun replaced by "a dog").
    False when ``old`` is not in the positive (a replaced word the positive had dropped)."""
    a, b, o, n = words(positive), words(negative), words(old), words(new)
    if not o or not n or o == n:
        return False
    for i in range(len(a) - len(o) + 1):
        if a[i:i + len(o)] != o:
            continue
        before, after = a[:i], a[i + len(o):]
        stem = before[:-1] if before and before[-1] in ARTICLES else before
        if any(b == stem + art + n + after for art in ([], *([x] for x in ARTICLES))):
            return True
    return False


def _forms(word: str) -> set[str]:
    """``word`` and the base forms a plural or an inflected verb may come from ("glasses" ->
    "glass", "trumpets" -> "trumpet", "holds" -> "hold"; WordNet's morphy keeps plurals it lists
    as nouns of their own, so the suffixes are stripped by hand too)."""
    from paperlib.text.lexicon import noun_lemma, verb_lemma
    out = {word, noun_lemma(word), verb_lemma(word) or word}
    if word.endswith("ies"):
        out.add(word[:-3] + "y")
    if word.endswith("es"):
        out.add(word[:-2])
    if word.endswith("s"):
        out.add(word[:-1])
    return out


def caption_word_forms(captions: Iterable[str]) -> set[str]:
    """Every word of ``captions`` with its base forms (:func:`_forms`)."""
    return {f for w in {w for c in captions for w in words(c)} for f in _forms(w)}


def seen_in(replacement: str, seen: set[str]) -> bool:
    """Whether every word of ``replacement`` occurs in the captions whose :func:`caption_word_forms`
    are ``seen``, a plural or inflected form counted by its base form."""
    return all(_forms(w) & seen for w in words(replacement))


def audit(captions: Sequence[str], vocab, rng: np.random.Generator, nouns: Iterable[str] = (),
          negatives: str = "one_slot", p_keep_adjective: float = 0.0, p_opposite: float = 0.5,
          seen: set[str] | None = None) -> dict:
    """The counts of the module docstring for one draw of negatives over ``captions``; ``seen``:
    the :func:`caption_word_forms` a replacement's words must be among (default: those of
    ``captions``)."""
    from paperlib.text.subcaptions import KINDS, NoReplacementError, SubcaptionGenerator, subcaption_pair
    gen = SubcaptionGenerator(vocab, nouns=nouns)   # its cached parser
    seen = caption_word_forms(captions) if seen is None else seen
    one_slot = seen_n = skipped = 0
    kinds = dict.fromkeys(KINDS, 0)
    for caption in captions:
        try:
            positive, cf = subcaption_pair(gen.parse(caption), rng, vocab, p_keep_adjective, p_opposite, negatives)
        except NoReplacementError:
            skipped += 1
            continue
        one_slot += differs_in_one_slot(positive.core_text(), cf.text, cf.old, cf.new)
        seen_n += seen_in(cf.new, seen)
        kinds[cf.kind] += 1
    n = len(captions) - skipped
    pct = (lambda k: 100.0 * k / n) if n else (lambda k: float("nan"))
    return {"n_captions": len(captions), "n_negatives": n,
            "skipped_pct": 100.0 * skipped / len(captions) if captions else float("nan"),
            "one_slot_pct": pct(one_slot), "replacement_seen_pct": pct(seen_n),
            **{f"{k}_pct": pct(v) for k, v in kinds.items()}}


def clean_captions(p, seed: int) -> list[str]:
    """Every caption of the clean scenes a defence of the first victim fine-tunes on at ``seed``:
    the rows :func:`paperlib.pipeline.defence_context` gives the defence, read by the defence's
    own :func:`~paperlib.defences.cleanerclip.pair_captions` (no model built; a batch draws one
    caption of each scene, so each is a negative's possible source)."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.defences.cleanerclip import pair_captions
    split = pl.get_split("cc3m_analog", p.data)
    v = p.victims[0]
    exclude = pl.finetune_scene_ids(split, v.finetune_scenes, seed)
    ids = pl.defence_scene_ids(split, p.defence.clean_scenes, exclude, seed)
    return pair_captions(SimpleNamespace(rows=ids, texts=split.captions, extra_texts=None))


def run(p, log=print) -> pd.DataFrame:
    """Every construction of :data:`CONSTRUCTIONS` at each of ``p.seeds`` (the defence's seeds),
    upserted into ``<results_dir>/cleanerclip/negatives_audit.csv`` under every setting that
    shapes the draw."""
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
                         "negatives": negatives, "replacement_vocab": vocab_kind,
                         "vocab_size": cfg.vocab_size if vocab_kind == "wordnet" else 0,
                         "p_keep_adjective": cfg.p_keep_adjective, "p_opposite": cfg.p_opposite, **counts})
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

__all__ = ["CONSTRUCTIONS", "FILE", "audit", "caption_word_forms", "clean_captions", "differs_in_one_slot", "run",
           "seen_in"]
