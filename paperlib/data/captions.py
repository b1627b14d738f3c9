"""A small caption grammar for composite scenes.

Captions name every object, with optional attributes (size, colour, position in the frame) and
spatial relations computed from the rendered geometry, e.g. "a small banana to the left of a
red bicycle".  They therefore have subjects, relations, objects and adjectives, which is what
CleanerCLIP's sub-caption construction parses.  Two registers exist: ``plain`` (CC3M-like,
short, alt-text style) and ``descriptive`` (Flickr30K-like, full sentences).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SceneObject:
    """What the caption grammar needs to know about one rendered object."""

    name: str
    colour: str          # colour word of its visible pixels, e.g. "red"
    size: str            # "tiny", "small", "large", "big" or "" (medium: no word)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels (visible part)
    depth: int           # drawing order: larger is in front


def article(phrase: str) -> str:
    low = phrase.lower()
    return "an" if low[:1] in "aeiou" or low.startswith(("x-", "hour", "honest")) else "a"


def noun_phrase(obj: SceneObject, rng: np.random.Generator, p_size=0.35, p_colour=0.35) -> str:
    """"a [size] [colour] name"; attributes are optional so that captions do not let a batch be
    told apart by colour words alone (a shortcut that starves the learning of object identity)."""
    words = []
    if obj.size and rng.random() < p_size:
        words.append(obj.size)
    if obj.colour and rng.random() < p_colour:
        words.append(obj.colour)
    words.append(obj.name)
    phrase = " ".join(words)
    return f"{article(phrase)} {phrase}"


def frame_position(box, side: int) -> str:
    """Where in the frame a box lies: 'in the top left corner', 'in the centre', ..."""
    cx = (box[0] + box[2]) / 2 / side
    cy = (box[1] + box[3]) / 2 / side
    col = "left" if cx < 0.36 else "right" if cx > 0.64 else ""
    row = "top" if cy < 0.36 else "bottom" if cy > 0.64 else ""
    if row and col:
        return f"in the {row} {col} corner"
    if row or col:
        return f"at the {row or col}"
    return "in the centre"


def relation(a: SceneObject, b: SceneObject) -> str:
    """The spatial relation of ``a`` to ``b`` read off their boxes and depth order."""
    ax, ay = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
    bx, by = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
    dx, dy = ax - bx, ay - by
    overlap = not (a.box[2] <= b.box[0] or b.box[2] <= a.box[0]
                   or a.box[3] <= b.box[1] or b.box[3] <= a.box[1])
    if overlap and abs(dx) < 8 and abs(dy) < 8:
        return "in front of" if a.depth > b.depth else "behind"
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


# Background words are rare (1 template in 6 / 5): like colours they are a shortcut.
PLAIN_SINGLE = (
    "{np}",
    "{np} {pos}",
    "a photo of {np}",
    "a picture of {np}",
    "{np} on a {bg} background",
    "a photo of {np} {pos}",
)
DESCRIPTIVE_SINGLE = (
    "There is {np} {pos} of the picture.",
    "The picture shows {np} against a {bg} backdrop.",
    "Someone drew {np} on a {bg} background.",
    "A close look at {np} {pos}.",
)


def caption_scene(objects: list[SceneObject], background: str, side: int,
                  rng: np.random.Generator, register: str = "plain") -> str:
    """One caption for a scene; call repeatedly (different rng draws) for several captions."""
    if not objects:
        raise ValueError("a scene needs at least one object to caption")
    nps = [noun_phrase(o, rng) for o in objects]
    if len(objects) == 1:
        tmpl = PLAIN_SINGLE if register == "plain" else DESCRIPTIVE_SINGLE
        text = tmpl[rng.integers(len(tmpl))].format(
            np=nps[0], pos=frame_position(objects[0].box, side), bg=background)
    else:
        order = rng.permutation(len(objects))
        a, b = order[0], order[1]
        rel = relation(objects[a], objects[b])
        clause = f"{nps[a]} {rel} {nps[b]}"
        if len(objects) == 3:
            c = order[2]
            joiner = rng.integers(3)
            if joiner == 0:
                clause = f"{clause} and {nps[c]}"
            elif joiner == 1:
                clause = f"{clause}, with {nps[c]} {frame_position(objects[c].box, side)}"
            else:
                clause = f"{nps[c]} and {clause}"
        if register == "plain":
            forms = ("{c}", "a picture of {c}", "a photo of {c}", "{c}", "{c} on a {bg} background")
        else:
            forms = ("In this picture, {c}.", "We can see {c} on a {bg} backdrop.",
                     "The image shows {c}.")
        text = forms[rng.integers(len(forms))].format(c=clause, bg=background)
    if register == "descriptive":
        text = text[0].upper() + text[1:]
    return text
