"""Where the offline assets live, and how to tell a user which one is missing.

The experiments never download anything at run time: every image source, font,
dataset and lexicon comes either from a Debian package (installed system-wide by
`make setup`) or from an npm package (installed by `make setup` into
``<repo>/.assets/npm``).  This module is the one place that knows those
locations, so that a missing asset fails early with a message naming the asset,
the path that was looked at and the package that provides it, instead of a bare
``FileNotFoundError`` deep inside a renderer.

It also prepares the NLTK WordNet corpus from Debian's WordNet files (NLTK's
own downloader needs the internet) and sets the environment variables that keep
ultralytics, NLTK and the Hugging Face hub offline.

Command line::

    python -m paperlib.assets setup-wordnet   # copy WordNet for NLTK and verify it loads
    python -m paperlib.assets check           # list which assets are present

Environment variables:

    PAPERLIB_ASSETS   root of project-local assets (default ``<repo>/.assets``)
    PAPERLIB_CACHE    root of the artifact cache (default ``<repo>/.cache/paperlib``)
    PAPERLIB_NOTO_FONT, PAPERLIB_TUXPAINT_STAMPS, PAPERLIB_FASHION_MNIST,
    PAPERLIB_WORDNET_SOURCE
                      override one system asset path each (for machines whose
                      packages put files elsewhere, and for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ATTRIBUTION",
    "AssetMissingError",
    "LEXNAMES",
    "NPM_PACKAGES",
    "asset_root",
    "cache_root",
    "configure_environment",
    "fashion_mnist_dir",
    "lexnames_text",
    "load_wordnet",
    "main",
    "nltk_data_dir",
    "noto_font_path",
    "npm_package_dir",
    "npm_root",
    "repo_root",
    "setup_wordnet",
    "tuxpaint_root",
    "wordnet_dir",
    "wordnet_source_dir",
]

_SETUP_HINT = "run `make setup` from the repository root"

# ---------------------------------------------------------------------------
# Licences.  Kept next to the locations so that adding an asset without its
# licence is visible in review.  Figures and reports built from these assets
# must credit them (see README).
# ---------------------------------------------------------------------------
ATTRIBUTION: dict[str, dict[str, str]] = {
    "noto_color_emoji": {
        "title": "Noto Color Emoji",
        "author": "Google LLC",
        "licence": "OFL-1.1",
        "source": "Debian package fonts-noto-color-emoji",
    },
    "twemoji": {
        "title": "Twemoji graphics (via emoji-datasource-twitter)",
        "author": "Twitter, Inc. and other contributors; maintained by jdecked",
        "licence": "CC-BY-4.0",
        "source": "npm package emoji-datasource-twitter",
    },
    "openmoji": {
        "title": "OpenMoji",
        "author": "OpenMoji contributors (HfG Schwäbisch Gmünd)",
        "licence": "CC-BY-SA-4.0",
        "source": "npm package openmoji",
    },
    "fluent_emoji": {
        "title": "Fluent Emoji (3D renderings)",
        "author": "Microsoft Corporation (packaged by LobeHub)",
        "licence": "MIT",
        "source": "npm package @lobehub/fluent-emoji-3d",
    },
    "tuxpaint_stamps": {
        "title": "Tux Paint stamps",
        "author": "Bill Kendrick, New Breed Software, and Tux Paint contributors",
        "licence": "GPL-2.0-or-later",
        "source": "Debian package tuxpaint-stamps-default",
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "author": "Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf)",
        "licence": "MIT",
        "source": "Debian package dataset-fashion-mnist",
    },
    "wordnet": {
        "title": "WordNet 3.0",
        "author": "Cognitive Science Laboratory, Princeton University",
        "licence": "WordNet-3.0 (Princeton University licence)",
        "source": "Debian packages wordnet-base and wordnet-sense-index",
    },
}

# ---------------------------------------------------------------------------
# The 45 WordNet lexicographer files (see lexnames(5WN)).  Debian ships the
# database but not this index, which NLTK's reader requires; the numbering is
# fixed by the database itself (field ``lex_filenum`` of every synset).
# Each entry: (number, name, syntactic category 1=noun 2=verb 3=adj 4=adv).
# ---------------------------------------------------------------------------
LEXNAMES: tuple[tuple[int, str, int], ...] = (
    (0, "adj.all", 3),
    (1, "adj.pert", 3),
    (2, "adv.all", 4),
    (3, "noun.Tops", 1),
    (4, "noun.act", 1),
    (5, "noun.animal", 1),
    (6, "noun.artifact", 1),
    (7, "noun.attribute", 1),
    (8, "noun.body", 1),
    (9, "noun.cognition", 1),
    (10, "noun.communication", 1),
    (11, "noun.event", 1),
    (12, "noun.feeling", 1),
    (13, "noun.food", 1),
    (14, "noun.group", 1),
    (15, "noun.location", 1),
    (16, "noun.motive", 1),
    (17, "noun.object", 1),
    (18, "noun.person", 1),
    (19, "noun.phenomenon", 1),
    (20, "noun.plant", 1),
    (21, "noun.possession", 1),
    (22, "noun.process", 1),
    (23, "noun.quantity", 1),
    (24, "noun.relation", 1),
    (25, "noun.shape", 1),
    (26, "noun.state", 1),
    (27, "noun.substance", 1),
    (28, "noun.time", 1),
    (29, "verb.body", 2),
    (30, "verb.change", 2),
    (31, "verb.cognition", 2),
    (32, "verb.communication", 2),
    (33, "verb.competition", 2),
    (34, "verb.consumption", 2),
    (35, "verb.contact", 2),
    (36, "verb.creation", 2),
    (37, "verb.emotion", 2),
    (38, "verb.motion", 2),
    (39, "verb.perception", 2),
    (40, "verb.possession", 2),
    (41, "verb.social", 2),
    (42, "verb.stative", 2),
    (43, "verb.weather", 2),
    (44, "adj.ppl", 3),
)

# WordNet database files NLTK's reader opens (besides ``lexnames``, which we write).
_WORDNET_REQUIRED = (
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "index.sense", "cntlist.rev",
)


class AssetMissingError(FileNotFoundError):
    """An offline asset is not where the project expects it.

    Subclasses FileNotFoundError so generic handlers still work, but the message
    always says which asset, where it was looked for, and how to install it.
    """

    def __init__(self, asset: str, path: os.PathLike | str, how: str):
        self.asset = asset
        self.path = Path(path)
        self.how = how
        super().__init__(f"{asset} not found at {self.path}. To obtain it: {how}.")

    def __reduce__(self):
        # Keep the three-argument constructor picklable (pytest-xdist, multiprocessing).
        return (type(self), (self.asset, str(self.path), self.how))


# ---------------------------------------------------------------------------
# Roots
# ---------------------------------------------------------------------------
def repo_root() -> Path:
    """The repository checkout (the package is installed editable, so this is its parent)."""
    return Path(__file__).resolve().parent.parent


def asset_root() -> Path:
    """Project-local asset root: ``$PAPERLIB_ASSETS`` or ``<repo>/.assets``."""
    env = os.environ.get("PAPERLIB_ASSETS")
    return Path(env).expanduser().resolve() if env else repo_root() / ".assets"


def cache_root() -> Path:
    """Artifact cache root: ``$PAPERLIB_CACHE`` or ``<repo>/.cache/paperlib``."""
    env = os.environ.get("PAPERLIB_CACHE")
    return Path(env).expanduser().resolve() if env else repo_root() / ".cache" / "paperlib"


def _system_path(env_var: str, default: str) -> Path:
    env = os.environ.get(env_var)
    return Path(env).expanduser() if env else Path(default)


def _require(path: Path, asset: str, how: str, must_exist: bool) -> Path:
    if must_exist and not path.exists():
        raise AssetMissingError(asset, path, how)
    return path


def _apt_hint(package: str) -> str:
    return f"install the Debian package `{package}` (apt-get install {package}) or {_SETUP_HINT}"


# ---------------------------------------------------------------------------
# npm packages
# ---------------------------------------------------------------------------
def _load_npm_manifest() -> dict[str, str]:
    manifest = Path(__file__).with_name("assets_npm.json")
    with manifest.open(encoding="utf-8") as fh:
        return dict(json.load(fh)["dependencies"])


#: npm package name -> exact version, as pinned in paperlib/assets_npm.json.
NPM_PACKAGES: dict[str, str] = _load_npm_manifest()


def npm_root(must_exist: bool = True) -> Path:
    """``<asset root>/npm/node_modules``, where `make setup` installs the emoji packages."""
    path = asset_root() / "npm" / "node_modules"
    return _require(path, "npm asset packages (node_modules)", f"{_SETUP_HINT} (needs npm)", must_exist)


def npm_package_dir(name: str, must_exist: bool = True) -> Path:
    """Directory of one pinned npm package, e.g. ``npm_package_dir("openmoji")``."""
    if name not in NPM_PACKAGES:
        raise KeyError(f"unknown npm asset package {name!r}; valid: {sorted(NPM_PACKAGES)}")
    spec = f"{name}@{NPM_PACKAGES[name]}"
    path = asset_root() / "npm" / "node_modules" / name
    how = f"install the npm package {spec} into {asset_root() / 'npm'}, i.e. {_SETUP_HINT}"
    return _require(path, f"npm package {spec}", how, must_exist)


# ---------------------------------------------------------------------------
# Debian-packaged assets
# ---------------------------------------------------------------------------
def noto_font_path(must_exist: bool = True) -> Path:
    """Noto Color Emoji (CBDT bitmap font) used to rasterise emoji glyphs."""
    path = _system_path("PAPERLIB_NOTO_FONT", "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    return _require(path, "Noto Color Emoji font", _apt_hint("fonts-noto-color-emoji"), must_exist)


def tuxpaint_root(must_exist: bool = True) -> Path:
    """Tux Paint stamp tree (PNG/SVG cut-outs grouped by category)."""
    path = _system_path("PAPERLIB_TUXPAINT_STAMPS", "/usr/share/tuxpaint/stamps")
    return _require(path, "Tux Paint stamps", _apt_hint("tuxpaint-stamps-default"), must_exist)


def fashion_mnist_dir(must_exist: bool = True) -> Path:
    """Directory with the four Fashion-MNIST ``*-ubyte.gz`` files."""
    path = _system_path("PAPERLIB_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    how = _apt_hint("dataset-fashion-mnist")
    _require(path, "Fashion-MNIST dataset", how, must_exist)
    if must_exist and not any(path.glob("*-ubyte.gz")):
        raise AssetMissingError("Fashion-MNIST dataset files (*-ubyte.gz)", path, how)
    return path


def wordnet_source_dir(must_exist: bool = True) -> Path:
    """Debian's WordNet database (source of the copy made for NLTK)."""
    path = _system_path("PAPERLIB_WORDNET_SOURCE", "/usr/share/wordnet")
    how = _apt_hint("wordnet-base") + " (plus wordnet-sense-index)"
    return _require(path, "WordNet database", how, must_exist)


# ---------------------------------------------------------------------------
# WordNet for NLTK
# ---------------------------------------------------------------------------
def nltk_data_dir(must_exist: bool = True) -> Path:
    """NLTK data root (``<asset root>/nltk_data``); holds ``corpora/wordnet``."""
    path = asset_root() / "nltk_data"
    how = f"{_SETUP_HINT} (or `python -m paperlib.assets setup-wordnet`); needs the Debian packages wordnet-base and wordnet-sense-index"
    return _require(path, "NLTK data directory", how, must_exist)


def wordnet_dir(must_exist: bool = True) -> Path:
    """The NLTK-readable WordNet corpus; complete only once ``lexnames`` is written."""
    path = asset_root() / "nltk_data" / "corpora" / "wordnet"
    how = f"{_SETUP_HINT} (or `python -m paperlib.assets setup-wordnet`); needs the Debian packages wordnet-base and wordnet-sense-index"
    _require(path / "lexnames", "WordNet corpus for NLTK", how, must_exist)
    return path


def lexnames_text() -> str:
    """Contents of the ``lexnames`` file in WordNet's own format (``NN<TAB>name<TAB>pos``)."""
    return "".join(f"{num:02d}\t{name}\t{pos}\n" for num, name, pos in LEXNAMES)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _copy_atomic(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless an identical-looking copy is there; True if copied."""
    if dst.is_file() and not dst.is_symlink():
        s, d = src.stat(), dst.stat()
        if s.st_size == d.st_size and int(s.st_mtime) == int(d.st_mtime):
            return False
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copy2(src, tmp)  # a real copy: the corpus must survive the package being removed/upgraded
    os.replace(tmp, dst)
    return True


def load_wordnet(root: Path | None = None):
    """Open the project's WordNet copy with NLTK, independent of any other ``nltk_data``.

    Reading from our own directory (rather than ``nltk.corpus.wordnet``) means a stray
    WordNet elsewhere on ``NLTK_DATA`` can never be used by accident.
    """
    root = (wordnet_dir() if root is None else Path(root)).resolve()
    if (root.parent.name, root.name) != ("corpora", "wordnet"):
        raise ValueError(f"a WordNet corpus for NLTK must live at <nltk_data>/corpora/wordnet, got {root}")
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # Two NLTK behaviours make the data root matter, not just the corpus folder:
    # its path sandbox refuses to read outside nltk.data.path / NLTK_DATA, and the
    # reader's constructor also opens "corpora/wordnet" by name (to build its
    # 3.0 sense map).  Putting our root first makes both use this same copy.
    data_root = str(root.parent.parent)
    if data_root in nltk.data.path:
        nltk.data.path.remove(data_root)
    nltk.data.path.insert(0, data_root)
    with warnings.catch_warnings():
        # The multilingual (OMW) data is deliberately absent; NLTK warns about it.
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(root), None)


def setup_wordnet(verify: bool = True, quiet: bool = False) -> Path:
    """Build ``<asset root>/nltk_data/corpora/wordnet`` from Debian's WordNet files.

    Copies every regular file of the Debian database (not symlinks: the corpus must
    stay valid if the system package changes), writes ``lexnames``, and optionally
    loads it with NLTK and looks up 'banana' as an end-to-end check.
    """
    src = wordnet_source_dir()
    missing = [name for name in _WORDNET_REQUIRED if not (src / name).is_file()]
    if missing:
        package = "wordnet-sense-index" if set(missing) <= {"index.sense", "cntlist"} else "wordnet-base"
        raise AssetMissingError(f"WordNet database file(s) {', '.join(missing)}", src, _apt_hint(package))

    dst = wordnet_dir(must_exist=False)
    dst.mkdir(parents=True, exist_ok=True)
    copied = 0
    for item in sorted(src.iterdir()):
        if item.is_file():
            copied += _copy_atomic(item, dst / item.name)
    _write_atomic(dst / "lexnames", lexnames_text().encode("ascii"))
    if not quiet:
        print(f"WordNet: {copied} file(s) copied from {src} to {dst}; lexnames written")

    if verify:
        wn = load_wordnet(dst)
        synsets = wn.synsets("banana", pos="n")
        if not synsets or synsets[0].lexname() not in {"noun.food", "noun.plant"}:
            raise RuntimeError(f"WordNet at {dst} loaded but the lookup of 'banana' failed: {synsets!r}")
        if not quiet:
            print(f"WordNet: verified with NLTK ('banana' -> {synsets[0].name()}, {synsets[0].lexname()})")
    return dst


# ---------------------------------------------------------------------------
# Offline environment
# ---------------------------------------------------------------------------
def configure_environment() -> dict[str, str]:
    """Set the variables that keep third-party libraries offline, without overriding the user.

    ultralytics otherwise checks for updates, pip-installs missing extras and writes
    settings to the home directory; NLTK must find our WordNet copy; the Hugging Face
    hub must never be contacted.  Returns the effective values.
    """
    defaults = {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(asset_root() / "ultralytics"),
        "NLTK_DATA": str(nltk_data_dir(must_exist=False)),
        "HF_HUB_OFFLINE": "1",
    }
    return {key: os.environ.setdefault(key, value) for key, value in defaults.items()}


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _status() -> list[tuple[str, bool, str]]:
    """(asset, present, path or reason) for every asset the project uses."""
    probes = [
        ("Noto Color Emoji font", noto_font_path),
        ("Tux Paint stamps", tuxpaint_root),
        ("Fashion-MNIST", fashion_mnist_dir),
        ("WordNet database (Debian)", wordnet_source_dir),
        ("WordNet corpus for NLTK", wordnet_dir),
    ]
    probes += [(f"npm {name}@{ver}", lambda n=name: npm_package_dir(n)) for name, ver in NPM_PACKAGES.items()]
    rows = []
    for label, probe in probes:
        try:
            rows.append((label, True, str(probe())))
        except AssetMissingError as err:
            rows.append((label, False, str(err)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paperlib.assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_wn = sub.add_parser("setup-wordnet", help="copy Debian's WordNet into the NLTK data dir and verify it")
    p_wn.add_argument("--no-verify", action="store_true", help="skip loading the corpus with NLTK")
    sub.add_parser("check", help="print which assets are present; exit 1 if any is missing")
    args = parser.parse_args(argv)

    if args.command == "setup-wordnet":
        try:
            setup_wordnet(verify=not args.no_verify)
        except AssetMissingError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0

    rows = _status()
    for label, ok, detail in rows:
        print(f"[{'ok' if ok else 'MISSING'}] {label}: {detail}")
    missing = sum(not ok for _, ok, _ in rows)
    print(f"{len(rows) - missing} present, {missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
