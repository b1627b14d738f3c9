"""Object classes shared by five sprite styles (four emoji sets and Tux Paint photos).

Why: the synthetic "composite scenes" need object categories that exist in several
visual styles, so a CLIP trained on some styles can be tested zero-shot on a style it
never saw (``HELD_OUT_STYLE``).  Classes are therefore merged *by meaning*:

* emoji of all styles merge by codepoint (variation selector FE0F ignored); the class
  name is OpenMoji's CLDR short name, lowercased, after the hand-written renames and
  exclusions in ``vocab_aliases.yaml`` (the single place where such judgement lives);
* animal "X face" emoji join class X (cat face -> cat);
* a Tux Paint stamp's English caption ("A banana.") becomes a name that joins an emoji
  class when the name, or its head noun, matches a class or an alias; otherwise it
  founds a Tux Paint-only class.

The result depends only on the pinned asset packages and the YAML, so it is
identical on every machine; building it needs every asset and fails with
:class:`paperlib.assets.AssetMissingError` naming the missing package.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from paperlib import assets

__all__ = [
    "CIFAR10_CLASSES",
    "EMOJI_STYLES",
    "HELD_OUT_STYLE",
    "STYLES",
    "TRAIN_STYLES",
    "VocabClass",
    "Vocabulary",
    "build_vocabulary",
    "codepoint_key",
    "parse_caption",
    "style_index",
    "tuxpaint_root",
]

#: Every sprite style, in a fixed order used for reporting and for ``VocabClass.styles``.
STYLES: tuple[str, ...] = ("noto", "twemoji", "openmoji", "tuxpaint", "fluent3d")
#: The style kept out of all training data: the zero-shot test style.
HELD_OUT_STYLE = "fluent3d"
TRAIN_STYLES: tuple[str, ...] = tuple(s for s in STYLES if s != HELD_OUT_STYLE)
#: Styles whose sprites are looked up by emoji codepoint.
EMOJI_STYLES: tuple[str, ...] = ("noto", "twemoji", "openmoji", "fluent3d")

#: CIFAR-10 class name -> vocabulary class name (used to build the cifar10 analogue).
CIFAR10_CLASSES: dict[str, str] = {
    "airplane": "airplane",
    "automobile": "automobile",
    "bird": "bird",
    "cat": "cat",
    "deer": "deer",
    "dog": "dog",
    "frog": "frog",
    "horse": "horse",
    "ship": "ship",
    "truck": "truck",
}

ALIASES_FILE = Path(__file__).with_name("vocab_aliases.yaml")

# npm packages holding each emoji style, and the folder (inside the package) of its images.
_NPM_IMAGES: dict[str, tuple[str, str]] = {
    "twemoji": ("emoji-datasource-twitter", "img/twitter/64"),
    "openmoji": ("openmoji", "color/svg"),
    "fluent3d": ("@lobehub/fluent-emoji-3d", "assets"),
}


# ---------------------------------------------------------------------------
# Asset locations: the one place that knows where sprite sources live.
# ---------------------------------------------------------------------------
def npm_package(name: str) -> Path:
    """Directory of a pinned npm asset package (delegates to paperlib.assets)."""
    return assets.npm_package_dir(name)


def tuxpaint_root() -> Path:
    """Root of the Tux Paint stamp tree (delegates to paperlib.assets)."""
    return assets.tuxpaint_root()


def noto_font() -> Path:
    """The Noto Color Emoji font file (delegates to paperlib.assets)."""
    return assets.noto_font_path()


# ---------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VocabClass:
    """One object class and where its sprites come from.

    ``codepoint`` is the representative emoji (None for Tux Paint-only classes);
    ``codepoints`` lists every merged emoji, representative first, and ``stamps`` every
    merged Tux Paint stamp (paths relative to the stamp root), so a sprite bank can
    draw several sprites per class.
    """

    name: str
    codepoint: str | None
    group: str
    styles: tuple[str, ...]
    codepoints: tuple[str, ...] = ()
    stamps: tuple[str, ...] = ()
    cldr_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    """An ordered, immutable list of classes (index = class id everywhere in the project)."""

    classes: tuple[VocabClass, ...]
    skipped_stamps: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self):
        names = [c.name for c in self.classes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate class names in vocabulary: {dupes}")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, i: int) -> VocabClass:
        return self.classes[i]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        """Class id of ``name``; a KeyError suggests close names (typos are common)."""
        try:
            return self._index[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._index, n=5, cutoff=0.6)
            hint = f"; close matches: {close}" if close else ""
            raise KeyError(f"{name!r} is not a vocabulary class ({len(self)} classes){hint}") from None

    def styles_of(self, i: int) -> tuple[str, ...]:
        return self.classes[i].styles

    def classes_with_style(self, style: str) -> list[int]:
        """Ids of the classes that have at least one sprite in ``style``."""
        _check_style(style)
        return [i for i, c in enumerate(self.classes) if style in c.styles]

    def fingerprint(self) -> str:
        """Short hash of everything that decides which sprite gets which class id.

        Sprite caches include it, so editing the YAML can never pair old sprites
        with new class ids.
        """
        payload = [(c.name, c.codepoints, c.stamps, c.styles) for c in self.classes]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown sprite style {style!r}; valid styles: {list(STYLES)}")


# ---------------------------------------------------------------------------
# Helpers on names and codepoints
# ---------------------------------------------------------------------------
def normalise_name(text: str) -> str:
    """Lowercase, straight apostrophes, single spaces: the form all names are compared in."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return " ".join(text.split())


def codepoint_key(hexseq: str) -> str:
    """Canonical key of an emoji sequence: uppercase hex joined by '-', FE0F removed.

    Styles disagree on whether the emoji-presentation selector is part of a file name
    (``2708-fe0f.webp`` vs ``2708.svg``); dropping it lets them merge.
    """
    parts = [p for p in re.split(r"[-_ ]", hexseq.strip().upper()) if p and p != "FE0F"]
    return "-".join(parts)


def _variants(name: str) -> list[str]:
    """The name plus simple singular/plural forms, for matching 'two wild boars' etc."""
    out = [name, name + "s"]
    if name.endswith("ies"):
        out.append(name[:-3] + "y")
    if name.endswith("es"):
        out.append(name[:-2])
    if name.endswith("s"):
        out.append(name[:-1])
    return out


# ---------------------------------------------------------------------------
# Style indices: codepoint key -> where that style's image is
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _listing(folder: str) -> dict[str, str]:
    folder_path = Path(folder)
    return {codepoint_key(p.name.split(".")[0]): str(p) for p in sorted(folder_path.iterdir()) if p.is_file()}


@functools.lru_cache(maxsize=None)
def _noto_glyphs(font_path: str) -> dict[str, str]:
    """Codepoint key -> glyph name, for single codepoints that have a colour bitmap."""
    from fontTools.ttLib import TTFont

    font = TTFont(font_path, lazy=True)
    with_bitmap = set(font["CBDT"].strikeData[0])
    return {f"{cp:04X}": g for cp, g in font.getBestCmap().items() if g in with_bitmap}


def style_index(style: str) -> dict[str, str]:
    """Codepoint key -> image locator of an emoji style (file path, or Noto glyph name)."""
    _check_style(style)
    if style == "noto":
        return _noto_glyphs(str(noto_font()))
    if style not in _NPM_IMAGES:
        raise ValueError(f"style {style!r} is not an emoji style; emoji styles: {list(EMOJI_STYLES)}")
    package, sub = _NPM_IMAGES[style]
    folder = npm_package(package) / sub
    if not folder.is_dir():
        raise assets.AssetMissingError(f"{style} images of npm package {package}", folder,
                                       "reinstall the pinned npm package (make setup)")
    return _listing(str(folder))


# ---------------------------------------------------------------------------
# The decisions file
# ---------------------------------------------------------------------------
def _normalise_mapping(mapping: dict | None) -> dict[str, str]:
    return {normalise_name(k): normalise_name(v) for k, v in (mapping or {}).items()}


@functools.lru_cache(maxsize=None)
def _load_rules(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    emoji, tux = raw["emoji"], raw["tuxpaint"]
    return {
        "groups": tuple(emoji["groups"]),
        "exclude": {normalise_name(x) for x in emoji.get("exclude") or ()},
        "exclude_patterns": [re.compile(p) for p in emoji.get("exclude_patterns") or ()],
        "rename": _normalise_mapping(emoji.get("rename")),
        "aliases": _normalise_mapping(raw.get("aliases")),
        "head_blocklist": {normalise_name(x) for x in raw.get("head_noun_blocklist") or ()},
        "tux_exclude_prefixes": tuple(tux.get("exclude_prefixes") or ()),
        "tux_exclude_files": set(tux.get("exclude_files") or ()),
        "tux_names": {k: normalise_name(v) for k, v in (tux.get("names") or {}).items()},
        "drop_words": {normalise_name(x) for x in tux.get("drop_words") or ()},
        "tux_groups": dict(tux.get("groups") or {}),
    }


# ---------------------------------------------------------------------------
# Emoji classes
# ---------------------------------------------------------------------------
def _emoji_entries(rules: dict) -> list[dict]:
    """Single-codepoint OpenMoji entries of the object groups, after exclusion and rename."""
    with open(npm_package("openmoji") / "data" / "openmoji.json", encoding="utf-8") as fh:
        table = json.load(fh)
    seen_cldr, entries = set(), []
    for row in table:
        key = codepoint_key(row["hexcode"])
        if row["group"] not in rules["groups"] or "-" in key or row.get("skintone"):
            continue
        cldr = normalise_name(row["annotation"])
        seen_cldr.add(cldr)
        if cldr in rules["exclude"] or any(p.search(cldr) for p in rules["exclude_patterns"]):
            continue
        entries.append({"key": key, "cldr": cldr, "name": rules["rename"].get(cldr, cldr),
                        "group": row["group"]})
    _check_known(rules["rename"], seen_cldr, "emoji.rename")
    _check_known(rules["exclude"], seen_cldr, "emoji.exclude")
    return _merge_faces(entries)


def _check_known(keys, known: set[str], section: str) -> None:
    """Fail on YAML keys that match nothing: a typo would otherwise silently do nothing."""
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ValueError(f"{ALIASES_FILE.name}: {section} names not found in OpenMoji's data: {unknown}")


def _merge_faces(entries: list[dict]) -> list[dict]:
    """Rename animal 'X face' entries to X when X is a class of its own."""
    names = {e["name"] for e in entries}
    for e in entries:
        base = e["name"][: -len(" face")]
        if e["group"] == "animals-nature" and e["name"].endswith(" face") and base in names:
            e["name"] = base
    return entries


def _group_entries(entries: list[dict]) -> dict[str, dict]:
    """Merge entries sharing a name; the representative is the entry whose CLDR name is the class name."""
    classes: dict[str, dict] = {}
    for e in entries:
        c = classes.setdefault(e["name"], {"keys": [], "cldr": [], "group": e["group"], "stamps": []})
        c["keys"].append(e["key"])
        c["cldr"].append(e["cldr"])
    for name, c in classes.items():
        if name in c["cldr"]:
            first = c["cldr"].index(name)
            c["keys"].insert(0, c["keys"].pop(first))
            c["cldr"].insert(0, c["cldr"].pop(first))
    return classes


# ---------------------------------------------------------------------------
# Tux Paint stamps
# ---------------------------------------------------------------------------
_DETERMINERS = {"a", "an", "the", "some", "two", "another", "our"}
_QUANTITY_NOUNS = {"pair", "head", "bunch", "cluster", "string", "quarter", "couple", "plant"}
_CLAUSE_BREAK = re.compile(r"[.!?,:;(\u2014\u2013]| - ")


def parse_caption(caption: str) -> str | None:
    """Turn a Tux Paint caption into an object phrase, or None when it is a sentence.

    'A pair of closed scissors.' -> 'closed scissors'; phrases longer than three words
    are rejected because they describe a scene, not an object.
    """
    text = _CLAUSE_BREAK.split(caption.strip(), maxsplit=1)[0]
    text = re.sub("[\"\u201c\u201d]", "", normalise_name(text))
    words = [w.strip("'") for w in text.split()]
    words = [w for w in words if w]
    while words and words[0] in _DETERMINERS:
        words = words[1:]
    if len(words) > 2 and words[0] in _QUANTITY_NOUNS and words[1] == "of":
        words = words[2:]
    if not words or len(words) > 3:
        return None
    return " ".join(words)


def strip_drop_words(name: str, drop_words) -> str:
    """Remove leading descriptive words ('ripe red tomato' -> 'tomato'), keeping the last word."""
    words = name.split()
    while len(words) > 1 and words[0] in drop_words:
        words = words[1:]
    return " ".join(words)


def _read_caption(png: Path) -> str:
    txt = png.with_suffix(".txt")
    if not txt.is_file():
        return ""
    with open(txt, encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip()


def _tux_stamps(rules: dict) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str]]]:
    """(relative path, name, name_is_override) for usable stamps, and (path, reason) for skipped ones."""
    root = tuxpaint_root()
    known = {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
    for section in ("tux_exclude_files", "tux_names"):
        missing = sorted(set(rules[section]) - known)
        if missing:
            raise ValueError(f"{ALIASES_FILE.name}: tuxpaint {section[4:]} lists stamps that do not exist: {missing}")
    kept, skipped = [], []
    for rel in sorted(known):
        if rel.startswith(rules["tux_exclude_prefixes"]) or rel in rules["tux_exclude_files"]:
            continue
        if rel in rules["tux_names"]:
            kept.append((rel, rules["tux_names"][rel], True))
            continue
        caption = _read_caption(root / rel)
        name = parse_caption(caption)
        if name is None:
            skipped.append((rel, f"caption is not an object name: {caption!r}"))
        else:
            kept.append((rel, name, False))
    return kept, skipped


def _resolve(name: str, classes: set, rules: dict, is_override: bool) -> str | None:
    """Class a Tux Paint name belongs to, trying ever shorter forms of it.

    Order: the phrase itself, the phrase without descriptive words, its head noun
    (last word, unless block-listed).  Each form is tried as a class name or alias,
    singular and plural.  Hand-written override names are matched whole (no shortening).
    """
    aliases = rules["aliases"]
    candidates = [name]
    if not is_override:
        head = name.split()[-1]
        candidates.append(strip_drop_words(name, rules["drop_words"]))
        if head not in rules["head_blocklist"]:
            candidates.append(head)
    for cand in candidates:
        for form in _variants(cand):
            if form in classes:
                return form
            if form in aliases:
                return aliases[form]
    return None


def _add_stamps(classes: dict, rules: dict) -> list[tuple[str, str]]:
    """Attach each stamp to an emoji class or found a Tux Paint-only class; returns skipped stamps."""
    stamps, skipped = _tux_stamps(rules)
    emoji_names = set(classes)
    for rel, name, is_override in stamps:
        target = _resolve(name, emoji_names, rules, is_override)
        if target is None:
            target = name if is_override else strip_drop_words(name, rules["drop_words"])
            group = _tux_group(rel, rules["tux_groups"])
            classes.setdefault(target, {"keys": [], "cldr": [], "group": group, "stamps": []})
        classes[target]["stamps"].append(rel)
    return skipped


def _tux_group(rel: str, groups: dict[str, str]) -> str:
    """Group of a Tux Paint-only class: the longest matching path prefix in the YAML."""
    matches = [p for p in groups if rel.startswith(p)]
    return groups[max(matches, key=len)] if matches else "objects"


# ---------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------
def _styles_for(keys: list[str], stamps: list[str], indices: dict[str, dict]) -> tuple[str, ...]:
    present = {s for s, idx in indices.items() if any(k in idx for k in keys)}
    if stamps:
        present.add("tuxpaint")
    return tuple(s for s in STYLES if s in present)


def save_vocabulary(vocab: Vocabulary, path: str | Path) -> Path:
    """Write ``vocab`` as JSON (atomically): a snapshot that :func:`build_vocabulary` reads
    instead of the asset packages when ``$PAPERLIB_VOCABULARY`` names it.  With the sprite banks
    in the artifact cache, that is all a machine without the emoji packages (a rented GPU) needs
    to render scenes."""
    from dataclasses import asdict

    from paperlib.cache import write_json_atomic
    write_json_atomic(Path(path), {"classes": [asdict(c) for c in vocab.classes],
                                   "skipped_stamps": [list(x) for x in vocab.skipped_stamps]})
    return Path(path)


def load_vocabulary(path: str | Path) -> Vocabulary:
    """The vocabulary in a :func:`save_vocabulary` snapshot."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    tupled = ("styles", "codepoints", "stamps", "cldr_names")
    return Vocabulary(classes=tuple(VocabClass(**{k: tuple(v) if k in tupled else v for k, v in c.items()})
                                    for c in raw["classes"]),
                      skipped_stamps=tuple(tuple(x) for x in raw.get("skipped_stamps", ())))


def build_vocabulary(aliases_file: str | Path = ALIASES_FILE) -> Vocabulary:
    """Build the merged vocabulary (deterministic: sorted by class name).

    Classes without a sprite in any training style are dropped: they could never be
    learned.  Raises AssetMissingError when an asset package is absent and ValueError
    when the YAML refers to names or stamps that do not exist.  ``$PAPERLIB_VOCABULARY``,
    when set, names a :func:`save_vocabulary` snapshot that is read instead.
    """
    snapshot = os.environ.get("PAPERLIB_VOCABULARY")
    if snapshot:
        if not Path(snapshot).is_file():
            raise FileNotFoundError(f"PAPERLIB_VOCABULARY={snapshot}: no such file; "
                                    "write one with paperlib.data.vocabulary.save_vocabulary")
        return load_vocabulary(snapshot)
    rules = _load_rules(str(aliases_file))
    classes = _group_entries(_emoji_entries(rules))
    unknown_targets = sorted(set(rules["aliases"].values()) - set(classes))
    if unknown_targets:
        raise ValueError(f"{Path(aliases_file).name}: aliases point to names that are not emoji classes: {unknown_targets}")
    skipped = _add_stamps(classes, rules)
    indices = {s: style_index(s) for s in EMOJI_STYLES}

    out = []
    for name in sorted(classes):
        c = classes[name]
        styles = _styles_for(c["keys"], c["stamps"], indices)
        if not set(styles) & set(TRAIN_STYLES):
            continue
        out.append(VocabClass(
            name=name,
            codepoint=c["keys"][0] if c["keys"] else None,
            group=c["group"],
            styles=styles,
            codepoints=tuple(c["keys"]),
            stamps=tuple(c["stamps"]),
            cldr_names=tuple(c["cldr"]),
        ))
    vocab = Vocabulary(classes=tuple(out), skipped_stamps=tuple(skipped))
    missing = [c for c in CIFAR10_CLASSES.values() if c not in vocab]
    if missing:
        raise ValueError(f"CIFAR-10 classes missing from the vocabulary: {missing}")
    return vocab
