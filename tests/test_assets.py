"""Asset locations, the WordNet lexnames index, and the offline environment."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from paperlib import assets

LEXNAME_LINE = re.compile(r"^(\d{2})\t([a-z]+\.[A-Za-z]+)\t([1-4])$")
POS_OF_FILE = {"noun": "1", "verb": "2", "adj": "3", "adv": "4"}


@pytest.fixture
def empty_assets(tmp_path, monkeypatch):
    """Point every asset location at an empty directory."""
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path / "assets"))
    for var in ("PAPERLIB_NOTO_FONT", "PAPERLIB_TUXPAINT_STAMPS", "PAPERLIB_FASHION_MNIST",
                "PAPERLIB_WORDNET_SOURCE"):
        monkeypatch.setenv(var, str(tmp_path / "nothing" / var.lower()))
    return tmp_path


def test_lexnames_has_45_well_formed_lines():
    lines = assets.lexnames_text().splitlines()
    assert len(lines) == 45
    for i, line in enumerate(lines):
        match = LEXNAME_LINE.match(line)
        assert match, f"malformed lexnames line {line!r}"
        number, name, pos = match.groups()
        assert int(number) == i
        # The syntactic category must agree with the file's name prefix.
        assert POS_OF_FILE[name.split(".")[0]] == pos, line
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[13] == "13\tnoun.food\t1"
    assert lines[44] == "44\tadj.ppl\t3"
    assert len({line.split("\t")[1] for line in lines}) == 45


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="Debian WordNet not installed")
@pytest.mark.parametrize("pos", ["noun", "verb", "adj", "adv"])
def test_lexnames_agree_with_the_wordnet_database(pos):
    """Every synset's lex_filenum (2nd field) must name a lexicographer file of its own part of speech."""
    names = [name for _, name, _ in assets.LEXNAMES]
    seen = 0
    with open(f"/usr/share/wordnet/data.{pos}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            lexname = names[int(line.split(" ", 2)[1])]
            assert lexname.split(".")[0] == pos, line[:60]
            seen += 1
            if seen >= 3000:
                break
    assert seen > 0


def test_missing_npm_package_error_names_package_and_remedy(empty_assets):
    with pytest.raises(assets.AssetMissingError) as info:
        assets.npm_package_dir("openmoji")
    message = str(info.value)
    assert "openmoji@17.0.0" in message
    assert str(empty_assets / "assets" / "npm" / "node_modules" / "openmoji") in message
    assert "make setup" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_apt_assets_name_their_debian_packages(empty_assets):
    cases = {
        assets.noto_font_path: "fonts-noto-color-emoji",
        assets.tuxpaint_root: "tuxpaint-stamps-default",
        assets.fashion_mnist_dir: "dataset-fashion-mnist",
        assets.wordnet_source_dir: "wordnet-base",
        assets.wordnet_dir: "wordnet-base",
    }
    for locate, package in cases.items():
        with pytest.raises(assets.AssetMissingError) as info:
            locate()
        assert package in str(info.value), locate.__name__
        assert str(info.value.path) in str(info.value)
        # must_exist=False only reports the location.
        assert isinstance(locate(must_exist=False), Path)


def test_unknown_npm_package_lists_valid_names():
    with pytest.raises(KeyError, match="openmoji"):
        assets.npm_package_dir("no-such-package", must_exist=False)


def test_asset_missing_error_survives_pickling():
    err = assets.AssetMissingError("thing", "/x/y", "apt-get install thing")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) and clone.path == Path("/x/y")


def test_roots_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path / "a"))
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "c"))
    assert assets.asset_root() == (tmp_path / "a").resolve()
    assert assets.cache_root() == (tmp_path / "c").resolve()
    assert assets.npm_root(must_exist=False) == (tmp_path / "a" / "npm" / "node_modules").resolve()
    monkeypatch.delenv("PAPERLIB_ASSETS")
    monkeypatch.delenv("PAPERLIB_CACHE")
    assert assets.asset_root() == assets.repo_root() / ".assets"
    assert assets.cache_root() == assets.repo_root() / ".cache" / "paperlib"
    assert (assets.repo_root() / "paperlib" / "assets.py").is_file()


def test_configure_environment_sets_defaults_without_overriding(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path))
    for var in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "NLTK_DATA", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("YOLO_CONFIG_DIR", "/custom/yolo")

    result = assets.configure_environment()

    assert os.environ["YOLO_CONFIG_DIR"] == "/custom/yolo"
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_AUTOINSTALL"] == "0"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["NLTK_DATA"] == str(tmp_path.resolve() / "nltk_data")
    assert result["YOLO_CONFIG_DIR"] == "/custom/yolo"


def test_attribution_records_a_licence_for_every_asset():
    expected = {
        "noto_color_emoji": "OFL-1.1",
        "twemoji": "CC-BY-4.0",
        "openmoji": "CC-BY-SA-4.0",
        "fluent_emoji": "MIT",
        "tuxpaint_stamps": "GPL-2",
        "fashion_mnist": "MIT",
        "wordnet": "Princeton",
    }
    for key, licence in expected.items():
        entry = assets.ATTRIBUTION[key]
        assert licence in entry["licence"], key
        assert entry["author"] and entry["source"], key


def test_npm_pins_are_exact_versions():
    assert set(assets.NPM_PACKAGES) == {"@lobehub/fluent-emoji-3d", "openmoji", "emoji-datasource-twitter"}
    for name, version in assets.NPM_PACKAGES.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)


def test_setup_wordnet_builds_a_corpus_nltk_reads(tmp_path, monkeypatch):
    """Uses a tiny fake database so it runs without the Debian packages, in milliseconds."""
    nltk_data = pytest.importorskip("nltk.data")
    # load_wordnet puts the corpus root first on nltk.data.path; keep that from leaking.
    monkeypatch.setattr(nltk_data, "path", list(nltk_data.path))
    src = tmp_path / "wn-src"
    src.mkdir()
    for name in assets._WORDNET_REQUIRED:
        (src / name).write_text("")
    # One noun synset (offset 0 of data.noun) for the lemma "widget", filed under noun.artifact (06).
    data_line = "00000000 06 n 01 widget 0 000 | a small device  \n"
    (src / "data.noun").write_text(data_line)
    (src / "index.noun").write_text("widget n 1 0 1 0 00000000  \n")
    monkeypatch.setenv("PAPERLIB_WORDNET_SOURCE", str(src))
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path / "assets"))

    out = assets.setup_wordnet(verify=False, quiet=True)

    assert (out / "lexnames").read_text() == assets.lexnames_text()
    assert not (out / "data.noun").is_symlink()
    wn = assets.load_wordnet()
    (synset,) = wn.synsets("widget")
    assert synset.lexname() == "noun.artifact"
    # A second run is a no-op for unchanged files and still leaves a valid corpus.
    assert assets.setup_wordnet(verify=False, quiet=True) == out


def test_setup_wordnet_reports_missing_database(empty_assets):
    with pytest.raises(assets.AssetMissingError, match="wordnet-base"):
        assets.setup_wordnet(verify=False, quiet=True)


@pytest.mark.skipif(
    not (assets.repo_root() / ".assets" / "nltk_data" / "corpora" / "wordnet" / "lexnames").is_file(),
    reason="WordNet corpus not prepared (run `make setup`)",
)
def test_real_wordnet_loads_through_nltk(monkeypatch):
    """The corpus `make setup` built (takes ~5 s: NLTK indexes all of WordNet)."""
    monkeypatch.delenv("PAPERLIB_ASSETS", raising=False)
    wn = assets.load_wordnet()
    banana = wn.synsets("banana", pos="n")
    assert banana and banana[0].lexname() in {"noun.food", "noun.plant"}
    assert wn.synset("dog.n.01").lexname() == "noun.animal"
