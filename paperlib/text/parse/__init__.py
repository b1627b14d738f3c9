"""A small rule-based caption parser: subject, relation, object (a one-edge scene graph).

CleanerCLIP parses captions with SceneGraphParser (a spaCy dependency parser); no parser model is
available offline, so this module parses with word lists and WordNet instead.  It is meant for
the short descriptive captions of image-text data (CC3M / Flickr30K alt-text, and the embedded
grammar of :mod:`paperlib.data.captions`), not for arbitrary prose.

Pipeline
--------
1. **Tokens.**  Words (hyphenated words such as "x-ray" and "jack-o'-lantern" stay one token),
   clitics ("'s", "'ll", "n't": "don't" is "do" + "n't") and punctuation, read as words with the
   contractions resolved ("n't" -> "not", "'ll" -> "will", "won't" -> "will not"; see
   :mod:`paperlib.text.tokens`).  Quotation marks are skipped.
2. **Units.**  First the caller's multi-word nouns (``nouns``, e.g. a benchmark's class names
   such as "ball of yarn"), then multi-word spatial relations ("to the left of", "in front of",
   "next to", "on top of", see :data:`~paperlib.text.lexicon.SPATIAL_RELATIONS`) become one
   unit each.  Runs of 2-3 open-class words that form a WordNet noun ("ice cream", "tennis ball",
   "aerial tramway", "living room") become one noun unit, unless the first word is an everyday
   descriptive adjective (:data:`~paperlib.text.lexicon.DESCRIPTIVE_ADJECTIVES`: "old man",
   "red fox", "hot dog" stay adjective + noun) or a determiner/numeral/pronoun follows ("the
   picture shows a dog" is not the noun "picture show").  "close up" before "of" is "close-up".
3. **Tags.**  Closed-class words are looked up in hand-written lists (determiners, numerals,
   pronouns, relative pronouns, prepositions, conjunctions, auxiliaries, adverbs, existential
   "there"); "that/this/her/one" are resolved by what follows, a modal followed by neither a
   verb, an adverb ("not") nor "be"/"have" is an open word ("a trash can", but "will be
   running", "could have eaten"), "have" without a participle (or "been") after it is a verb ("a
   man has a dog"), "like" after an auxiliary other than *be* is a verb ("doesn't like"), "let"
   before "us" is an auxiliary ("let's play").  Every other word gets the parts of speech WordNet
   allows (``morphy``; unknown words count as nouns) and is tagged left to right:

   * *verb* only where a verb can stand: after a subject (noun or pronoun) or a relative pronoun,
     after an auxiliary (after a form of *be*, only an -ing or past participle: "is blue" is an
     adjective, and so is an adjective after a linking verb: "stays open", "looks happy", the
     verb then counting as an auxiliary), or after a conjunction (-ing forms).  After a noun,
     -ing and past forms are verbs ("a woman holding", "a car parked"); a 3rd-person "-s" form
     after a singular noun, or a base form after a plural noun ("two men play"), is a verb when
     it is followed by a determiner, numeral or pronoun, or when WordNet's SemCor counts make
     the verb reading at least as frequent as the noun reading ("shows", "rides" but not
     "trees"); such a word at the end of the caption stays a noun.  Never after a determiner,
     numeral, adjective or preposition ("a sleeping dog", "a striped background"), and never
     for place words ("left", "right", "top").
   * otherwise a word is a *modifier* when the next word continues the noun phrase (adjective if
     WordNet allows an adjective reading or it is a colour/size word, else a noun modifier), and
     the *head* (noun) when it ends the phrase.  A colour or size word before a noun is always an
     adjective ("a red rose", not "a red" + verb "rose"); a participle inside a phrase needs a
     noun after it ("a big shaved ice", "a blue flying disc"); "black and white" is one run of
     adjectives.
4. **Noun phrases.**  ``[determiner/numeral]* [adjective/modifier]* noun+``; consecutive nouns
   at the end are joined into the head ("tennis ball"), earlier noun modifiers count as
   adjectives, adverbs ("very") are dropped; an adjective after the noun starts a phrase of its
   own ("a girl taller than ...").  A pronoun is a phrase of its own.  A collective
   noun with "of" becomes part of the determiner: "a herd of elephants" has head "elephants" and
   determiner "a herd of" (:data:`~paperlib.text.lexicon.COLLECTIVE_NOUNS`).
5. **Frames removed.**  "there is/are", "this is", a leading prepositional phrase about the
   picture ("In this picture,"), a frame noun followed by of/at ("a photo of", "a close look
   at", "an aerial view of"), and a viewer or picture subject with a depiction verb ("we can
   see", "the image shows", "someone drew") are not part of the scene; the content that follows
   is parsed.
6. **Relation.**  The first verb followed by a noun phrase (optionally through a preposition:
   "sits on") whose object is not a *setting* noun (frame nouns and places in the frame:
   "picture", "background", "corner", ...); failing that, the first preposition or spatial
   relation (not "of", "for", "as", "than", "until", ...) followed by a non-setting noun phrase.
   Its subject is the nearest noun phrase before it that is not itself the object of a
   preposition or verb, nor adjectives alone after a verb or noun ("a woman in a blue dress
   holding an umbrella" -> woman; "the sky is blue above the trees" -> sky).  Auxiliaries and
   adverbs are not part of the relation ("are playing" -> "playing", "isn't riding" -> "riding").
7. **Rest.**  Without a relation the subject is the first noun phrase that is not the object of a
   preposition.  Every other phrase goes to ``extra`` with the word(s) that introduced it.

Known failure cases (no statistical model, so these are by design):

* noun/verb ambiguity the rules cannot see: a plural compound followed by a relation can be read
  as a verb ("a theatre masks to the right of a hook" -> subject "theatre", relation "masks to
  the right of"); a finite verb at the very end stays a noun ("while a man watches" -> head "man
  watches"); "left" is always a place word ("a man left the room" -> head "man left");
* predicative and post-nominal adjectives ("the sky is blue", "a girl taller than her brother")
  are not attached to the subject (they become an extra phrase);
* intransitive verbs have no object, so no relation is kept ("a dog sleeping" -> subject only);
* coordination: the relation goes to the nearest conjunct ("a cat and a dog on a sofa" -> dog on
  sofa, cat in ``extra``); coordinated objects keep only the first ("wearing glasses and a red
  shirt" -> object "glasses");
* prepositional attachment is always to the subject, and "of" phrases are never relations
  ("a cup of coffee on a table" -> cup on table, coffee in ``extra``); multi-word names with
  "of"/"and" ("ball of yarn") need the ``nouns`` argument;
* possessives split the phrase: "a man's hat on a table" -> subject "hat", "man" in ``extra``;
* a caption without any noun falls back to its last word as subject ("running").

Modules: :mod:`~paperlib.text.parse.phrases` (the result types), :mod:`~paperlib.text.parse.units`
(steps 1-2), :mod:`~paperlib.text.parse.tagger` (step 3), :mod:`~paperlib.text.parse.items`
(step 4), :mod:`~paperlib.text.parse.frames` (step 5) and :mod:`~paperlib.text.parse.caption`
(steps 6-7, :func:`parse_caption`); the public names are re-exported here.
"""
from __future__ import annotations

from paperlib.text.parse.caption import parse_caption
from paperlib.text.parse.phrases import ParsedCaption, Phrase, split_relation
from paperlib.text.tokens import tokenize

__all__ = ["ParsedCaption", "Phrase", "parse_caption", "split_relation", "tokenize"]
