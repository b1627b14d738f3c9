"""Parameter files fail at load time with messages naming the key and the valid values."""
from pathlib import Path

import pytest

from paperlib.config import ParamError, load_params
from paperlib.experiments import foundation

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("scale", ["smoke", "embedded", "gpu", "paper"])
def test_every_foundation_scale_loads(scale):
    p = foundation.load(ROOT / "params" / "foundation" / f"{scale}.yaml")
    assert p.scale == scale


def _write(tmp_path, text):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return f


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    f = _write(tmp_path, "pretrain:\n  lrr: 0.1\n")
    with pytest.raises(ParamError) as e:
        foundation.load(f)
    assert "pretrain.lrr" in str(e.value) and "'lr'" in str(e.value)


def test_unknown_attack_lists_choices(tmp_path):
    f = _write(tmp_path, "victim:\n  attack: badnett\n")
    with pytest.raises(ParamError) as e:
        foundation.load(f)
    assert "badnett" in str(e.value) and "blended" in str(e.value)


def test_unknown_model_lists_project_configs(tmp_path):
    with pytest.raises(ParamError) as e:
        foundation.load(_write(tmp_path, "model: tiny-rn65\n"))
    assert "tiny-rn65" in str(e.value) and "tiny-rn64" in str(e.value)


@pytest.mark.parametrize("text,needle", [
    ("pretrain:\n  lr: -1\n", "out of range"),
    ("pretrain:\n  batch_size: 1.5\n", "integer"),
    ("pretrain:\n  precision: fp8\n", "bf16"),
    ("data:\n  heldout_style: noto\n", "heldout_style"),
    ("victim:\n  attack_params:\n    position: middle\n", "centre"),
    ("victim:\n  attack_params:\n    patch_size: 3\n", "patch_fraction"),
    ("seeds: []\n", "seed"),
    ("data:\n  image_size: 32\n", "takes 64 px"),
    ("data:\n  source: real\n", "train_csv"),
])
def test_bad_values_fail_clearly(tmp_path, text, needle):
    with pytest.raises(ParamError) as e:
        foundation.load(_write(tmp_path, text))
    assert needle in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamError, match="does not exist"):
        foundation.load(tmp_path / "nope.yaml")
    with pytest.raises(ParamError, match="YAML"):
        foundation.load(_write(tmp_path, "a: [1, 2\n"))


def test_overrides_with_dotted_keys():
    p = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml", {"victim.poison.poison_count": 3})
    assert p.victim.poison.poison_count == 3
    assert p.victim.finetune.batch_size == 64  # the rest of the section is kept


def test_a_number_in_exponent_form_is_a_number_in_files_and_on_the_command_line(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-3 as a string; parameter files and command-line values read it as
    the number it spells (as YAML 1.2 does), and a word is still refused by a number field."""
    from paperlib.config import read_yaml
    assert [read_yaml(t) for t in ("1e-3", "5E+2", "1.0e3", ".5e-3", "-1e-4")] == [1e-3, 500.0, 1000.0, 5e-4, -1e-4]
    assert [read_yaml(t) for t in ("12", "e-4", "1e", "banana")] == [12, "e-4", "1e", "banana"]
    p = foundation.load(_write(tmp_path, "pretrain:\n  lr: 5e-4\n"), {"victim.finetune.lr": read_yaml("1E-5")})
    assert p.pretrain.lr == 5e-4 and p.victim.finetune.lr == 1e-5
    with pytest.raises(ParamError, match="expected a number"):
        foundation.load(_write(tmp_path, "pretrain:\n  lr: e-4\n"))
    import yaml
    assert yaml.safe_load("1e-3") == "1e-3"   # PyYAML's own loader is left as it is


def test_load_params_without_file_gives_defaults():
    p = load_params(foundation.FoundationParams)
    assert p.scale == "embedded" and p.victim.attack == "badnet"


def test_a_model_that_does_not_fit_the_data_size_is_refused_at_load(tmp_path):
    from paperlib.experiments.defences import load
    f = tmp_path / "p.yaml"
    f.write_text("model: tiny-rn64\ndata: {image_size: 224}\nvictims: [{attack: badnet}]\n")
    with pytest.raises(ParamError, match="image_size.*tiny-rn64.*64"):
        load(f)


@pytest.mark.parametrize("experiment", ["attacks", "defences", "detection", "foundation", "abd", "cfbd",
                                        "cleanerclip", "eftclip"])
@pytest.mark.parametrize("value", ["x.pt", "/data/weights/openai-rn50.pth"])
def test_a_pickle_base_checkpoint_is_refused_when_the_parameters_load(experiment, value):
    """Every experiment with a ``base_checkpoint`` takes safetensors only; a pickle extension fails
    when the file loads, before anything is trained, not when the base is built."""
    import importlib
    module = importlib.import_module(f"paperlib.experiments.{experiment}")
    paper = ROOT / "params" / experiment / "paper.yaml"
    assert module.load(paper).base_checkpoint.endswith(".safetensors")
    with pytest.raises(ParamError) as e:
        module.load(paper, {"base_checkpoint": value})
    msg = str(e.value)
    assert "base_checkpoint" in msg and repr(value) in msg and ".safetensors" in msg


def test_every_base_checkpoint_field_shares_the_safetensors_check():
    """One validator (the field's ``suffixes``), not one copy per experiment."""
    import dataclasses
    import importlib
    import pkgutil

    import paperlib.experiments as pkg
    fields = []
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"paperlib.experiments.{info.name}")
        for obj in vars(module).values():
            if dataclasses.is_dataclass(obj) and isinstance(obj, type) and obj.__module__ == module.__name__:
                fields += [(obj.__name__, f) for f in dataclasses.fields(obj) if f.name == "base_checkpoint"]
    assert len(fields) >= 4
    assert {name for name, f in fields if f.metadata.get("suffixes") != (".safetensors",)} == set()


def test_every_parameter_file_loads():
    """Each file under params/<experiment>/ is valid for that experiment's schema (named files such
    as attacks/embedded-regime.yaml included)."""
    import importlib
    files = sorted((ROOT / "params").glob("*/*.yaml"))
    assert len(files) >= 32
    for f in files:
        mod = importlib.import_module(f"paperlib.experiments.{f.parent.name}")
        p = mod.load(f)
        assert p.scale in f.stem, f
