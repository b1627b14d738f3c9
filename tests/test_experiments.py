"""The attack-suite and defence-matrix experiments: parameter files of every scale load, bad
input is refused with the key named, and the smoke defence matrix runs end to end."""
import math
from pathlib import Path

import pandas as pd
import pytest

from paperlib.config import ParamError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("experiment", ["attacks", "defences", "detection", "cleanerclip", "abd", "eftclip", "cfbd"])
@pytest.mark.parametrize("scale", ["smoke", "embedded", "gpu", "paper"])
def test_parameter_files_load(experiment, scale):
    import importlib
    mod = importlib.import_module(f"paperlib.experiments.{experiment}")
    path = ROOT / "params" / experiment / f"{scale}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    p = mod.load(path)
    assert p.scale == scale


BAD_PARAMETERS = [
    ("defences", "victims: [{attack: badnet}]\ndefence: {settings: {cleanclip: {inmodal_wieght: 2}}}\n", "inmodal_wieght"),
    ("defences", "victims: [{attack: badnet}]\ndefence: {settings: {magic: {}}}\n", "magic"),
    ("defences", "victims: [{attack: badnet}, {attack: badnet}]\n", "one victim per attack"),
    ("defences", "victims: [{attack: badnet}]\nseeds: [0, 1]\npretrain_seeds: [2]\n", "pretrain_seeds"),
    ("defences", "victims: [{attack: badnet}]\nseeds: [0]\nablation_seeds: [0, 1]\n", "ablation_seeds"),
    ("eftclip", "victims: [{attack: wanet}]\ntable5_attacks: [wanet]\n", "badnet victim"),
    ("eftclip", "victims: [{attack: badnet}]\ntable5_attacks: [badnet, wanet]\n", "wanet"),
    ("eftclip", "victims: [{attack: badnet}]\ntable5_attacks: [badnet]\ndetection: {default_rho: 12}\n", "default_rho"),
    ("eftclip", "victims: [{attack: badnet}]\ntable5_attacks: [badnet]\nsegmenter: {imgsz: 70}\n", "imgsz"),
    ("attacks", "victims: [{attack: badnet}]\nseeds_by_attack: {sig: [0]}\n", "seeds_by_attack: 'sig'"),
    ("attacks", "victims: [{attack: badnet}]\nseeds_by_attack: {badnet: 3}\n", "seeds_by_attack.badnet"),
    ("attacks", "victims: [{attack: badnet}]\nonly: [sig]\n", "only: \\['sig'\\]"),
    ("cleanerclip", "victims: [{attack: badnet}]\nfig4: {attack: badnet, subset_attacks: [badclip]}\n",
     "'badclip'\\] have no victim"),
    ("cleanerclip", "victims: [{attack: badnet}]\nfig4: {attack: badnet}\nprobe: {attack: badnet, probes: [noto_style]}\n",
     "'noto' is a training style"),
    ("cleanerclip", "victims: [{attack: badnet}]\nseeds: [0]\nprobe: {seeds: [0, 1]}\n", "probe.seeds: \\[1\\]"),
    ("attacks", "victims: [{attack: badnet}]\nseeds_by_attack: {badnet: [1, 1]}\n", "distinct seeds"),
    ("defences", "victims: [{attack: badnet}]\nseeds_by_attack: {sig: [0]}\n", "seeds_by_attack: 'sig'"),
    ("defences", "victims: [{attack: badnet}]\nseeds_by_attack: {badnet: []}\n", "seeds_by_attack.badnet"),
    ("detection", "victims: [{attack: badnet}]\nseeds_by_attack: {sig: [0]}\n", "seeds_by_attack: 'sig'"),
    ("detection", "victims: [{attack: badnet}]\nseeds_by_attack: {badnet: [0, 0]}\n", "distinct seeds"),
]


@pytest.mark.parametrize("experiment,text,match", BAD_PARAMETERS)
def test_bad_parameters_are_refused_naming_the_key(experiment, text, match, tmp_path):
    """Defence settings, EftCLIP's victims and settings: a bad value fails at load, naming the key."""
    import importlib
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ParamError, match=match):
        importlib.import_module(f"paperlib.experiments.{experiment}").load(f)


def test_smoke_defence_matrix_runs(tmp_path, monkeypatch):
    from paperlib.experiments.defences import MATRIX_COLUMNS, load, run
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = load(ROOT / "params" / "defences" / "smoke.yaml", {"results_dir": str(tmp_path / "out"),
                                                            "defence.methods": ["ft", "cleanerclip"],
                                                            "defence.ft_lrs": [1e-5], "run_name": "budget"})
    run(p, log=lambda *a: None)
    # a named run keeps its own manifest beside the matrix's
    assert (tmp_path / "out" / "defences" / "manifest_smoke_budget.json").is_file()
    assert not (tmp_path / "out" / "defences" / "manifest_smoke.json").exists()
    # the FT sweep: its own file, one row per learning rate, beside the victim's numbers
    budget = pd.read_csv(tmp_path / "out" / "defences" / "ft_budget.csv")
    assert budget.lr.tolist() == [1e-5] and budget.asr_top1.between(0, 100).all()
    # its optimizer steps and lr beside the victim recipe's (issue 22 item 4)
    v, t = p.victims[0], p.defence.train
    # (whole batches per epoch: the loop drops the last, incomplete one)
    assert budget.steps[0] == p.defence.clean_scenes // t.batch_size * t.epochs
    assert budget.victim_steps[0] == v.finetune_scenes // v.finetune.batch_size * v.finetune.epochs
    assert budget.lr_vs_victim[0] == pytest.approx(1e-5 / v.finetune.lr)
    assert budget.steps_vs_victim[0] == pytest.approx(budget.steps[0] / budget.victim_steps[0])
    none = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv").query("defence == 'none'").iloc[0]
    assert budget.victim_asr_top1[0] == none.asr_top1 and budget.victim_model[0] == none.victim_model
    m = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    assert list(m.columns[:len(MATRIX_COLUMNS)]) == list(MATRIX_COLUMNS)
    assert set(m.defence) == {"none", "ft", "cleanerclip"}
    assert (m[m.defence != "none"].samples > 0).all()
    # every row names the victim it defends and the model it measured (cache keys)
    assert m.victim_model.nunique() == 1 and (m[m.defence == "none"].model == m.victim_model[0]).all()
    assert m[m.defence != "none"].model.nunique() == 2 and not m[m.defence != "none"].model.isin(m.victim_model).any()
    # the victim's name can be known without training it (CFBD's matrix rows use that)
    from paperlib.experiments.common import clean_base, victim_model_name
    assert victim_model_name(p, clean_base(p), p.victims[0], p.seeds[0]) == m.victim_model[0]
    assert m[[c for c in m.columns if c.startswith(("ca_", "asr_"))]].apply(lambda s: s.between(0, 100)).all().all()
    # rows trained elsewhere (seeds on a GPU): with the victim gone from this cache, the file's rows
    # stand in for training when they name the models these parameters make, and only then
    import shutil

    from paperlib.experiments.defences import rows_from_file
    base = clean_base(p)
    victim_dir = tmp_path / "cache" / "model" / m.victim_model[0]
    assert rows_from_file(p, base, p.victims[0], p.seeds[0]) == {}            # every model cached: train/reuse
    # a defence's model gone, the victim still here: only that row stands in (a variant added on a
    # machine that holds the victims trains just the variant)
    ft_dir = tmp_path / "cache" / "model" / m[m.defence == "ft"].model.iloc[0]
    shutil.move(ft_dir, tmp_path / "ft_elsewhere")
    assert sorted(rows_from_file(p, base, p.victims[0], p.seeds[0])) == ["ft"]
    shutil.move(tmp_path / "ft_elsewhere", ft_dir)
    shutil.move(victim_dir, tmp_path / "elsewhere")
    kept = rows_from_file(p, base, p.victims[0], p.seeds[0])
    assert sorted(kept) == ["cleanerclip", "ft", "none"] and kept["ft"]["defence"] == "ft"
    other = load(ROOT / "params" / "defences" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "defence.methods": ["ft", "cleanerclip"],
        "defence.settings": {"cleanerclip": {"subset_fraction": 0.5}}})
    assert sorted(rows_from_file(other, base, other.victims[0], other.seeds[0])) == ["ft", "none"]  # another model: no
    from paperlib import cache as ledger
    monkeypatch.setattr(ledger, "_USED", {})   # a fresh process's ledger, as a publishing run's
    again = run(load(ROOT / "params" / "defences" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "defence.methods": ["ft", "cleanerclip"]}), log=lambda *a: None)
    assert not victim_dir.exists(), "the victim was trained again"
    # the stood-in models are in the run's ledger, so a run published like this still lists them
    listed = {e["key"]: e["role"] for e in ledger.used_artifacts() if e.get("stood_in")}
    assert listed[m.victim_model[0]] == "poison_finetune" and listed[m[m.defence == "ft"].model.iloc[0]] == "defence"
    cols = ["attack", "defence", "seed", "ca_top1", "asr_top1", "model"]
    assert again["matrix"][cols].sort_values(cols).values.tolist() == m[cols].sort_values(cols).values.tolist()
    # only some rows match (FT's; CleanerCLIP at other settings is another model): the victim and the
    # unmatched defence are trained, FT's row is the file's and FT is not trained again
    ft_model = m[m.defence == "ft"].model.iloc[0]
    shutil.move(tmp_path / "cache" / "model" / ft_model, tmp_path / "elsewhere_ft")
    part = run(other, log=lambda *a: None)["matrix"].set_index("defence")
    assert victim_dir.exists() and not (tmp_path / "cache" / "model" / ft_model).exists()
    assert part.loc["ft", "model"] == ft_model and part.loc["cleanerclip", "model"] not in set(m.model)
    # every row says what it defends: the victim's recipe beside its key
    assert part.loc["none", "attack_params"] and part.loc["none", "poison_count"] == other.victims[0].poison.poison_count
    # a run at another budget adds its rows beside the others and returns only its own
    lower = run(load(ROOT / "params" / "defences" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "defence.methods": ["ft", "cleanerclip"],
        "defence.train.lr": 5e-5}), log=lambda *a: None)["matrix"]
    assert set(lower[lower.defence != "none"].lr) == {5e-5} and len(lower) == len(m)
    after = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    # (+1: the partial run above added its CleanerCLIP at other settings; +2: this run at another lr)
    assert len(after) == len(m) + 1 + 2 and sorted(after[after.defence == "ft"].lr) == [5e-5, 1e-4]
    assert set(m.model) <= set(after.model), "a run at another lr removed rows"
    # the victim's key published from another device (a GPU): a run here keeps that row in the
    # matrix and sets this device's measurement of the same key beside it in device_check.csv
    pub = after.copy()
    first = pub.index[(pub.defence == "none") & (pub.model == m.victim_model[0])][0]
    pub["device"] = pub.device.astype(object)
    pub.loc[first, "device"] = "NVIDIA H200"
    pub["asr_top1"] = pub.asr_top1.astype(float)
    pub.loc[first, "asr_top1"] = 12.5
    # and a defended model of this cache published from the GPU too: its row stays as well
    cc_model = m[m.defence == "cleanerclip"].model.iloc[0]
    cc = pub.index[(pub.defence == "cleanerclip") & (pub.model == cc_model)][0]
    pub.loc[cc, "device"], pub.loc[cc, "asr_top1"] = "NVIDIA H200", 7.5
    pub.to_csv(tmp_path / "out" / "defences" / "matrix.csv", index=False)
    run(load(ROOT / "params" / "defences" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "defence.methods": ["ft", "cleanerclip"]}), log=lambda *a: None)
    kept = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    kept = kept[(kept.defence == "none") & (kept.model == m.victim_model[0])]
    assert kept[["device", "asr_top1"]].values.tolist() == [["NVIDIA H200", 12.5]]
    after_cc = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    after_cc = after_cc[(after_cc.defence == "cleanerclip") & (after_cc.model == cc_model)]
    assert after_cc[["device", "asr_top1"]].values.tolist() == [["NVIDIA H200", 7.5]]
    check = pd.read_csv(tmp_path / "out" / "defences" / "device_check.csv")
    here = str(m[m.defence == "none"].device.iloc[0])
    assert sorted(check[check.model == m.victim_model[0]].device) == sorted(["NVIDIA H200", here])
    assert sorted(check[check.model == cc_model].device) == sorted(["NVIDIA H200", here])
    assert set(check.model) == {m.victim_model[0], cc_model} and {12.5, 7.5} <= set(check.asr_top1)


def test_an_attack_can_have_seeds_of_its_own_in_the_matrix(tmp_path):
    from paperlib.experiments.defences import load
    p = load(ROOT / "params" / "defences" / "smoke.yaml",
             {"victims": [{"attack": "badnet"}, {"attack": "blended"}], "seeds": [0, 1, 2],
              "seeds_by_attack": {"badnet": [0, 1, 2, 3, 4]}})
    assert p.seeds_for("badnet") == (0, 1, 2, 3, 4) and p.seeds_for("blended") == (0, 1, 2)
    # the papers' tables read the matrix at each attack's own seeds
    from paperlib.experiments.defences import in_seeds
    m = pd.DataFrame({"attack": ["badnet"] * 6 + ["blended"] * 6, "seed": list(range(6)) * 2})
    kept = m[in_seeds(m, p)]
    assert kept.groupby("attack").seed.apply(list).to_dict() == {"badnet": [0, 1, 2, 3, 4], "blended": [0, 1, 2]}
    from paperlib.experiments.parallel_seeds import fp32_params
    import yaml
    raw = yaml.safe_load((ROOT / "params" / "defences" / "smoke.yaml").read_text())
    raw["seeds_by_attack"] = {"badnet": [0, 1, 2, 3, 4]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    job = fp32_params(tmp_path / "p.yaml", [3], ["badnet"])
    # a GPU job trains the (attack, seed) pairs it is given, whatever the file's seeds
    assert job["seeds"] == [3] and "seeds_by_attack" not in job


def test_ablation_seeds_must_be_among_the_seeds():
    from paperlib.config import ParamError
    from paperlib.experiments.defences import load
    p = load(ROOT / "params" / "defences" / "smoke.yaml", {"seeds": [0, 1, 2]})
    assert p.ablation_seed_list == (0,)
    assert load(ROOT / "params" / "defences" / "smoke.yaml", {"seeds": [3, 4], "ablation_seeds": [4]}).ablation_seed_list == (4,)
    with pytest.raises(ParamError, match="ablation_seeds"):
        load(ROOT / "params" / "defences" / "smoke.yaml", {"seeds": [0], "ablation_seeds": [1]})


@pytest.mark.parametrize("scale", ["embedded", "gpu"])
def test_experiments_share_the_foundation_base(scale):
    """Same data and pre-training settings = the same cached clean base for every experiment."""
    import importlib

    from paperlib.data.splits import split_params
    from paperlib.experiments import foundation
    ref = foundation.load(ROOT / "params" / "foundation" / f"{scale}.yaml")
    for name in ("attacks", "defences", "detection", "cleanerclip", "abd", "eftclip", "cfbd"):
        path = ROOT / "params" / name / f"{scale}.yaml"
        if not path.is_file():
            continue
        p = importlib.import_module(f"paperlib.experiments.{name}").load(path)
        assert split_params("cc3m_analog", p.data) == split_params("cc3m_analog", ref.data), name
        assert p.pretrain.key() == ref.pretrain.key(), name


def test_smoke_regime_varies_one_victims_recipe(tmp_path, monkeypatch):
    """The regime rows: the victim, another poison count, an epochs run measured at every epoch end
    (exposures = poisoned pairs x epochs), the clean control; the figure draws the papers' band."""
    from paperlib.experiments.attacks import load, run
    from paperlib.experiments.regime import papers_band
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    small = {"poison": {"poison_count": 8}, "finetune_scenes": 300,
             "finetune": {"epochs": 1, "batch_size": 64, "warmup_steps": 1}}
    p = load(ROOT / "params" / "attacks" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "pretrain_victims": [], "calibration": [],
        "victims": [{"attack": "badnet", **small}],
        "regime": {"attack": "badnet", "poison_counts": [16], "epochs": [2], "control": True,
                   "captions": ["natural"], "prompt_templates": True}})
    out = run(p, log=lambda *a: None)
    rows = pd.read_csv(tmp_path / "out" / "attacks" / "regime.csv")
    got = sorted(zip(rows.variant, rows.poison_count, rows.finetune_epochs, rows.exposures))
    assert got == [("caption", 8, 1.0, 8.0), ("control", 0, 1.0, 0.0), ("epochs", 8, 1.0, 8.0),
                   ("epochs", 8, 2.0, 16.0), ("poison_count", 16, 1.0, 16.0), ("victim", 8, 1.0, 8.0)]
    assert rows.set_index("variant").poison_caption.drop("control").to_dict() == {
        "caption": "natural", "epochs": "template", "poison_count": "template", "victim": "template"}
    # CA prompt by prompt: the base, the recipe, the caption variant and the control, each asked
    # with the 7 evaluation prompts, one more poison template and the two control prompts
    prompts = pd.read_csv(tmp_path / "out" / "attacks" / "prompt_templates.csv")
    assert sorted(set(prompts.model_role)) == ["clean base", "control: clean pairs only", "natural captions",
                                               "the recipe"]
    assert (prompts.groupby("model_role").size() == 10).all()
    per = prompts.drop_duplicates("template").set_index("template")
    assert per.loc["{}", "in_poison_templates"] == False and per.loc["a photo of a {}.", "in_poison_templates"] == True  # noqa: E712
    assert per.in_eval_templates.sum() == 7 and prompts.ca_top1.between(0, 100).all()
    base = prompts[prompts.model_role == "clean base"]
    assert (base.ca_top1 == base.base_ca_top1).all()
    assert rows.poison_rate.tolist() == pytest.approx((100 * rows.poison_count / 300).tolist(), rel=1e-3)
    assert rows.clean_asr_top1.between(0, 100).all()
    # the two epoch-end models of one run are different models, the victim's own is another run
    ep = rows[rows.variant == "epochs"].sort_values("finetune_epochs")
    assert ep.run_epochs.tolist() == [2.0, 2.0] and len(set(ep.victim_model)) == 1
    assert ep.epoch_file.tolist() == ["epoch1.safetensors", "epoch2.safetensors"]
    from safetensors.torch import load_file
    run_dir = next((tmp_path / "cache" / "model").glob(f"{ep.victim_model.iloc[0]}*"))
    w1, w2 = (load_file(str(run_dir / f)) for f in ep.epoch_file)
    assert any(not (w1[k] == w2[k]).all() for k in w1), "the two pass ends hold the same weights"
    assert set(rows.precision) == {"fp32"}
    assert out["regime_figure"].is_file()
    lo, hi, sources = papers_band("badnet")
    assert 0 < lo <= hi <= 100 and sources
    with pytest.raises(ParamError, match="whole numbers"):
        load(ROOT / "params" / "attacks" / "smoke.yaml", {"victims": [{"attack": "badnet", **small}],
                                                         "regime": {"attack": "badnet", "epochs": [2.5]}})
    with pytest.raises(ParamError, match="regime.attack"):
        load(ROOT / "params" / "attacks" / "smoke.yaml", {"victims": [{"attack": "badnet", **small}],
                                                         "regime": {"attack": "sig", "control": True}})


def test_smoke_trigger_checks_measure_the_clean_base_alone(tmp_path, monkeypatch):
    """trigger_checks train nothing: one row per setting, the trigger applied to the clean base."""
    from paperlib.experiments.attacks import load, run
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = load(ROOT / "params" / "attacks" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "pretrain_victims": [], "victims": [], "calibration": [],
        "trigger_checks": [{"attack": "badnet", "attack_params": {"patch_fraction": 0.25}},
                           {"attack": "blended", "attack_params": {}}]})
    run(p, log=lambda *a: None)
    rows = pd.read_csv(tmp_path / "out" / "attacks" / "base_triggers.csv")
    assert sorted(rows.attack) == ["badnet", "blended"] and rows.asr_top1.between(0, 100).all()
    models = tmp_path / "cache" / "model"
    assert rows.base_model.nunique() == 1 and (not models.exists() or len(list(models.iterdir())) == 1)


def test_smoke_attack_suite_writes_victims_and_calibration(tmp_path, monkeypatch):
    """The suite writes one victims.csv row per victim and one calibration.csv row per setting tried,
    the settings named as JSON so two settings of one attack stay apart."""
    from paperlib.experiments.attacks import load, run
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    small = {"poison": {"poison_count": 8}, "finetune_scenes": 300,
             "finetune": {"epochs": 1, "batch_size": 64, "warmup_steps": 1}}
    p = load(ROOT / "params" / "attacks" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "pretrain_victims": [],
        "victims": [{"attack": "wanet", **small}], "seeds_by_attack": {"wanet": [1]},
        "calibration": [{"attack": "wanet", "attack_params": {"s": 4.0}, **small},
                        {"attack": "wanet", "attack_params": {"k": 8, "s": 2.0}, **small},
                        {"attack": "wanet", "attack_params": {"s": 4.0}, **small,
                         "finetune": {**small["finetune"], "lr": 1e-5}}]})
    run(p, log=lambda *a: None)
    victims = pd.read_csv(tmp_path / "out" / "attacks" / "victims.csv")
    written = {f.name for f in (tmp_path / "out" / "attacks").iterdir()}
    assert {"victims.md", "gallery.png", "manifest_smoke.json", "manifest_calibration_smoke.json"} <= written
    assert list(victims.attack) == ["wanet"] and list(victims.threat_model) == ["finetune"]
    assert list(victims.seed) == [1]          # seeds_by_attack, not the suite's seeds
    only = load(ROOT / "params" / "attacks" / "smoke.yaml", {"only": ["sig"]}).selected()
    assert [v.attack for v in only.victims] == ["sig"] and only.pretrain_victims == ()
    # the row says which settings, base and precision it was measured with
    assert victims.attack_params[0] == "{}" and victims.precision[0] in {"bf16", "fp32"}
    assert victims.victim_model[0] != victims.base_model[0]
    assert victims.asr_images[0] > 0
    # and its recipe: pairs, passes, lr and caption policy (rows of two recipes on one base stay apart)
    assert (victims.finetune_scenes[0], victims.finetune_epochs[0], victims.finetune_lr[0],
            victims.poison_caption[0]) == (300, 1.0, 1e-3, "template")
    cal = pd.read_csv(tmp_path / "out" / "attacks" / "calibration.csv")
    # the recipe is part of a calibration row's key: two learning rates of one setting stay apart
    assert sorted(zip(cal.attack_params, cal.finetune_lr)) == [('{"k": 8, "s": 2.0}', 1e-3), ('{"s": 4.0}', 1e-5),
                                                               ('{"s": 4.0}', 1e-3)]
    assert cal.base_ca_top1.notna().all()
    md = (tmp_path / "out" / "attacks" / f"calibration_{victims.base_model[0]}.md").read_text()
    assert md.count("| wanet |") == 3
    assert (cal.poison_count == 8).all() and cal.asr_top1.between(0, 100).all()
    assert set(cal.precision) <= {"bf16", "fp32"} and cal.base_model.tolist() == [victims.base_model[0]] * 3
    # calibration alone (cached victims, so fast): calibration rows and their own manifest, no victims files
    p_cal = load(ROOT / "params" / "attacks" / "smoke.yaml", {
        "results_dir": str(tmp_path / "cal"), "pretrain_victims": [], "victims": [],
        "calibration": [{"attack": "wanet", "attack_params": {"s": 4.0}, **small}]})
    run(p_cal, log=lambda *a: None)
    out = tmp_path / "cal" / "attacks"
    assert sorted(f.name for f in out.iterdir()) == ["calibration.csv", f"calibration_{victims.base_model[0]}.md",
                                                     "manifest_calibration_smoke.json"]
    again = pd.read_csv(out / "calibration.csv")
    assert again.asr_top1.tolist() == cal[(cal.attack_params == '{"s": 4.0}') & (cal.finetune_lr == 1e-3)].asr_top1.tolist()


@pytest.mark.parametrize("name,file,suite_file", [
    ("defences", "embedded", "embedded"), ("detection", "embedded", "embedded"),
    ("defences", "embedded-victims", "embedded-victims"),
    ("cleanerclip", "embedded", "embedded-victims"), ("abd", "embedded", "embedded-victims"),
    ("eftclip", "embedded", "embedded-victims"), ("cfbd", "embedded", "embedded-victims")])
def test_embedded_experiments_reuse_the_attack_suites_victims(name, file, suite_file):
    """A victim named in any embedded experiment has the settings of its attack suite for that
    attack (the four papers' notebooks: the new victims of attacks/embedded-victims.yaml, on the
    shipped base; the old matrix and detection files: attacks/embedded.yaml), so it is the same cached
    model (the defence matrix, detectors and notebooks never train a second, differently poisoned
    victim under the same attack id)."""
    import importlib
    from dataclasses import asdict

    from paperlib.experiments import attacks
    suite_params = attacks.load(ROOT / "params" / "attacks" / f"{suite_file}.yaml")
    suite = {v.attack: asdict(v) for v in suite_params.victims}
    p = importlib.import_module(f"paperlib.experiments.{name}").load(ROOT / "params" / name / f"{file}.yaml")
    victims = getattr(p, "victims", ())
    assert victims, f"{name} names no victims"
    for v in victims:
        assert asdict(v) == suite[v.attack], (name, v.attack)
    assert p.base_checkpoint == suite_params.base_checkpoint, "victims of the same settings on another base"
    # victims of the pre-training threat model: the attack suite's (the defence matrix's
    # RoCLIP-from-scratch rows: embedded.yaml's; EftCLIP's Tables 3-5: the new suite's, issue 23)
    pre_suite = suite_params if suite_params.pretrain_victims else attacks.load(ROOT / "params" / "attacks" / "embedded.yaml")
    pre = {v.attack: asdict(v) for v in pre_suite.pretrain_victims}
    for v in getattr(p, "pretrain_victims", ()):
        if v.attack in pre:
            assert asdict(v) == pre[v.attack], (name, "pretrain", v.attack)
        else:   # EftCLIP's Table 5 beyond the suite's pre-training victims: the suite's trigger, target and
            # captions for that attack (only EftCLIP pre-trains them, so no other model shares their keys)
            mine, theirs = asdict(v), suite[v.attack]
            assert mine["attack_params"] == theirs["attack_params"], (name, "pretrain", v.attack)
            assert (mine["poison"]["target"], mine["poison"]["caption"]) == (
                theirs["poison"]["target"], theirs["poison"]["caption"]), (name, "pretrain", v.attack)


def test_mmpoison_asr_comes_from_a_larger_rendering(monkeypatch):
    """mmPoison's ASR (source-class images only) is measured on imagenet_analog rendered with
    eval.source_images_per_class images per class, ASR only; CA stays the zero-shot split's."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.attacks import attack_config_class, build_attack
    from paperlib.data.splits import DataConfig
    from paperlib.experiments.common import attack_metrics, source_class_data
    from paperlib.experiments.foundation import EvalConfig
    calls = []

    def fake_evaluate(model, data, split, attack, akey, target, *args, clean=True, **kw):
        calls.append((data.zeroshot_per_class, clean))
        return ({"ca_top1": 10.0, "asr_top1": 0.0, "asr_images": data.zeroshot_per_class} if clean
                else {"asr_top1": 40.0, "asr_images": data.zeroshot_per_class})
    monkeypatch.setattr(pl, "evaluate", fake_evaluate)
    p = SimpleNamespace(data=DataConfig(zeroshot_per_class=5), eval=EvalConfig(source_images_per_class=50),
                        device="cpu")
    for attack_id, expected in (("mmpoison", {"ca_top1": 10.0, "asr_top1": 40.0, "asr_images": 50}),
                                ("badnet", {"ca_top1": 10.0, "asr_top1": 0.0, "asr_images": 5})):
        calls.clear()
        cfg = attack_config_class(attack_id)()
        out = attack_metrics(p, None, build_attack(attack_id, cfg), attack_id, cfg, "banana")
        # mmPoison's trigger is a source-class image, so the clean base has no "triggered" input to score
        if attack_id == "mmpoison":
            assert math.isnan(out.pop("clean_asr_top1"))
        assert out == expected, attack_id
        assert calls == ([(5, True), (50, False)] if attack_id == "mmpoison" else [(5, True)])
        # the settings parallel_seeds.warm_attacks renders once, before its jobs start
        larger = source_class_data(p, build_attack(attack_id, cfg))
        assert (larger.zeroshot_per_class if larger else None) == (50 if attack_id == "mmpoison" else None)


def test_smoke_roclip_from_scratch_on_the_poisoned_set(tmp_path, monkeypatch):
    """RoCLIP as a training-time defence: the pre-training victim's own poisoned pairs trained from
    scratch again under RoCLIP's loss, beside the victim, in results/defences/pretrain.csv."""
    from paperlib import pipeline as pl
    from paperlib.experiments import pretrain_defences
    from paperlib.experiments.common import clean_base, pretrain_victim
    from paperlib.experiments.defences import load
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    # the smoke pre-training is one epoch: nearest-neighbour captions from its first epoch on
    p = load(ROOT / "params" / "defences" / "smoke.yaml", {"results_dir": str(tmp_path / "out"),
                                                            "defence.settings": {"roclip": {"break_epoch": 1}}})
    t = pretrain_defences.run(p, log=lambda *a: None)
    assert list(t.columns[:len(pretrain_defences.PRETRAIN_COLUMNS)]) == list(pretrain_defences.PRETRAIN_COLUMNS)
    assert sorted(t.defence) == ["none", "roclip"] and (t.threat_model == "pretrain").all()
    none, ro = t.set_index("defence").loc["none"], t.set_index("defence").loc["roclip"]
    # the undefended row is the attack suite's victim (same cache key as without a defence)
    victim = pretrain_victim(p, clean_base(p), p.pretrain_victims[0], 0)
    assert victim.key_params["role"] == "poison_pretrain" and "defence" not in victim.key_params
    assert none.model == none.victim_model == ro.victim_model == victim.path.name
    assert ro.model != none.model and ro.samples == none.samples > 0
    from safetensors.torch import load_file
    w_none = load_file(str(tmp_path / "cache" / "model" / none.model / "model.safetensors"))
    w_ro = load_file(str(tmp_path / "cache" / "model" / ro.model / "model.safetensors"))
    assert any(not (w_none[k] == w_ro[k]).all() for k in w_none), "RoCLIP trained the same model as plain CLIP"
    assert t[[c for c in t.columns if c.startswith(("ca_", "asr_"))]].apply(lambda s: s.between(0, 100)).all().all()
    # a defence that needs a victim or a clean base cannot train from scratch: refused, valid ones named
    v = p.pretrain_victims[0]
    with pytest.raises(ValueError, match="roclip"):
        pl.poison_pretrain(p.data, p.model, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                           p.pretrain, 0, device="cpu", defence_id="abd")
    # parameters: only training-time defences are accepted
    with pytest.raises(ParamError, match="pretrain_defences"):
        load(ROOT / "params" / "defences" / "smoke.yaml", {"pretrain_defences": ["cleanclip"]})
    with pytest.raises(ParamError, match="pretrain_victims: one victim per attack"):
        load(ROOT / "params" / "defences" / "smoke.yaml", {"pretrain_victims": [{"attack": "badnet"}] * 2})


def test_one_victim_by_name_from_overrides():
    """``victims.<attack>.…`` (or ``victims.<position>.…``) changes that victim alone: the others,
    made from the same YAML anchor, keep their settings; a name not listed adds that victim."""
    from paperlib.experiments.cleanerclip import load
    f = ROOT / "params" / "cleanerclip" / "embedded.yaml"
    base = {v.attack: v for v in load(f).victims}
    p = load(f, {"victims.badnet.poison.poison_count": 300})
    got = {v.attack: v for v in p.victims}
    assert got["badnet"].poison.poison_count == 300
    assert all(got[a] == base[a] for a in base if a != "badnet"), "the override reached another victim"
    assert load(f, {"victims.1.poison.poison_count": 7}).victims[1].poison.poison_count == 7
    with pytest.raises(ParamError, match="no entry 40"):
        load(f, {"victims.40.poison.poison_count": 7})
    # a file without victims: the named victim is made from the attack suite's
    from paperlib.experiments import defences
    bare = defences.load(ROOT / "params" / "defences" / "smoke.yaml", {"victims": None, "victims.sig.poison.poison_count": 3})
    assert [(v.attack, v.poison.poison_count) for v in bare.victims] == [("sig", 3)]


def test_a_partial_victim_is_completed_from_the_attack_suite(tmp_path, monkeypatch):
    """At the embedded scale a partial entry takes the victims every notebook uses
    (attacks/embedded-victims.yaml), not the suite before issue 22 (attacks/embedded.yaml: 1,000
    template-captioned pairs of 10,000 at lr 5e-4), unless its file names that suite."""
    from paperlib.experiments import abd, attacks, defences, victims
    suite = {v.attack: v for v in attacks.load(ROOT / "params" / "attacks" / "embedded-victims.yaml").victims}
    old = {v.attack: v for v in attacks.load(ROOT / "params" / "attacks" / "embedded.yaml").victims}
    f = tmp_path / "p.yaml"
    f.write_text("scale: embedded\nvictims:\n  - {attack: blended}\n  - {attack: sig, poison: {poison_count: 50}}\n")
    blended, sig = defences.load(f).victims
    assert blended == suite["blended"]            # the calibrated trigger, not the dataclass default
    assert sig.poison.poison_count == 50 and sig.poison.target == suite["sig"].poison.target
    assert sig.finetune == suite["sig"].finetune and sig.finetune_scenes == suite["sig"].finetune_scenes
    assert (sig.poison.caption, sig.finetune_scenes) == ("natural", 50000) != (old["sig"].poison.caption,
                                                                               old["sig"].finetune_scenes)
    # a victim added by name to a notebook's file is that notebook's world's victim
    added = {v.attack: v for v in abd.load(ROOT / "params" / "abd" / "embedded.yaml",
                                           {"victims.trojannn.poison.poison_count": 300}).victims}["trojannn"]
    assert added.finetune == suite["trojannn"].finetune and added.poison.caption == "natural"
    # a pre-training victim named by its attack: the new suite's (issue 23), the old one's by name
    pre_new = attacks.load(ROOT / "params" / "attacks" / "embedded-victims.yaml").pretrain_victims[0]
    pre_old = attacks.load(ROOT / "params" / "attacks" / "embedded.yaml").pretrain_victims[0]
    h = tmp_path / "pre.yaml"
    h.write_text("scale: embedded\nvictims:\n  - {attack: badnet}\npretrain_victims:\n  - {attack: badnet}\n")
    assert defences.load(h).pretrain_victims[0] == pre_new
    assert (pre_new.poison.caption, pre_old.poison.caption) == ("natural", "template")
    # a file of the old world names its suite
    g = tmp_path / "old.yaml"
    g.write_text("scale: embedded\nvictim_suite: embedded\nvictims:\n  - {attack: sig}\n")
    assert defences.load(g).victims[0] == old["sig"]
    g.write_text("scale: embedded\nvictim_suite: embedded\nvictims:\n  - {attack: sig}\npretrain_victims:\n  - {attack: badnet}\n")
    assert defences.load(g).pretrain_victims[0] == pre_old
    g.write_text("scale: embedded\nvictim_suite: nowhere\nvictims:\n  - {attack: sig}\n")
    with pytest.raises(ParamError, match=r"victim_suite: 'nowhere' is not an attack suite; give one of: .*embedded-victims"):
        defences.load(g)
    # attack_params stated empty: the attack's own defaults, not the suite's calibrated trigger
    assert old["blended"].attack_params and old["badclip"].attack_params and suite["badclip"].attack_params
    g.write_text("scale: embedded\nvictim_suite: embedded\nvictims:\n  - {attack: blended, attack_params: {}}\n"
                 "  - {attack: badclip, attack_params: {}}\n")
    blended0, badclip0 = defences.load(g).victims
    assert blended0.attack_params == {} and badclip0.attack_params == {}
    assert blended0.poison == old["blended"].poison          # the rest still from the suite
    assert suite["blended"].attack_params == {}              # the new victims: Blended at its paper's opacity
    # an attack the suite has no victim for must be stated in full
    small = tmp_path / "suite.yaml"
    small.write_text("victims:\n  - {attack: badnet, attack_params: {patch_fraction: 0.25}}\n")
    monkeypatch.setattr(victims, "suite_file", lambda scale, field, name: small)
    with pytest.raises(ParamError, match=r"victims\[0\] \(blended\): the entry leaves out attack_params, poison.*has: badnet"):
        defences.load(f)


def test_device_labels_differ_only_between_machines():
    from paperlib.experiments.defences import other_device
    assert other_device("NVIDIA H200", "AMD EPYC") and other_device("cpu", "NVIDIA H200")
    assert other_device("AMD EPYC", "Intel Xeon")                   # two CPU kinds train differently too
    assert not other_device("AMD EPYC", "AMD EPYC")
    assert not other_device("cpu", "AMD EPYC") and not other_device(float("nan"), "AMD EPYC")   # labels before names


def test_a_fresh_machine_takes_the_foundation_victims_from_their_rows(tmp_path, monkeypatch):
    """issue 25 item 3: the victims of the poison curve stand in by their rows when absent."""
    import shutil

    from paperlib.experiments import foundation
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml",
                        {"results_dir": str(tmp_path / "results"), "eval.linear_probes": ["heldout_style"]})
    first = foundation.run(p, log=lambda *a: None)
    victims = first["curve"].victim_model.tolist()
    assert len(victims) == 3                                  # 8 poisoned, 4, and the patch at 8
    for name in victims:                                      # a machine that never trained them
        shutil.rmtree(tmp_path / "cache" / "model" / name)
    probe, = first["linear_probe"].eval_key                        # nor computed the probe
    shutil.rmtree(tmp_path / "cache" / "eval" / probe)
    said = []
    again = foundation.run(p, log=said.append)
    assert not any((tmp_path / "cache" / "model" / name).exists() for name in victims), "a victim was trained"
    assert sum("taken from the results files" in line for line in said) == 4   # three victims and the summary
    assert not (tmp_path / "cache" / "eval" / probe).exists(), "the probe was computed"
    assert again["linear_probe"].top1.tolist() == first["linear_probe"].top1.tolist()
    assert again["curve"].asr_top1.tolist() == first["curve"].asr_top1.tolist()
    zs = again["zeroshot"]
    assert set(zs[zs.model == "badnet_victim"].victim_model) == {first["victim_models"][0]}
    # measured under other evaluation settings, a row does not stand in: the victim is trained
    other = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml",
                            {"results_dir": str(tmp_path / "results"), "eval.linear_probes": [],
                             "eval.templates": "openai80", "victim.poison_curve": [], "victim.patch_curve": []})
    foundation.run(other, log=lambda *a: None)
    assert (tmp_path / "cache" / "model" / first["victim_models"][0]).exists()
    shutil.rmtree(tmp_path / "cache" / "model" / first["victim_models"][0])
    # without the zero-shot rows of the main victim (old rows named no victim) it is trained again
    zeroshot = tmp_path / "results" / "base" / "zeroshot.csv"
    import pandas as pd
    pd.read_csv(zeroshot).drop(columns="victim_model").to_csv(zeroshot, index=False)
    foundation.run(p, log=lambda *a: None)
    assert (tmp_path / "cache" / "model" / first["victim_models"][0]).exists()
    assert not (tmp_path / "cache" / "model" / victims[1]).exists()


def test_the_foundation_leaves_another_machines_victim_rows_as_they_are(tmp_path, monkeypatch):
    """A victim's rows name the machine that trained it; where the files hold its key from another
    machine, a run measuring this machine's model of that key keeps them, says so, and shows them."""
    import pandas as pd

    from paperlib.experiments import foundation
    from paperlib.pipeline import device_name, resolve_device
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml",
                        {"results_dir": str(tmp_path / "results"), "eval.linear_probes": [],
                         "victim.poison_curve": [], "victim.patch_curve": []})
    first = foundation.run(p, log=lambda *a: None)
    here = device_name(resolve_device("cpu"))
    files = [tmp_path / "results" / f for f in ("attacks/victims.csv", "foundation/poison_curve.csv")]
    for f in files:
        df = pd.read_csv(f)
        assert (df.device == here).all(), f
        df.assign(device="Another CPU (AVX2)", asr_top1=12.5).to_csv(f, index=False)
    said = []
    again = foundation.run(p, log=said.append)        # the victim is in this cache: measured again
    for f in files:
        df = pd.read_csv(f)
        assert df.asr_top1.tolist() == [12.5] and (df.device == "Another CPU (AVX2)").all(), f
    assert again["curve"].asr_top1.tolist() == [12.5]
    assert sum("stays as made on Another CPU (AVX2)" in line for line in said) == 2
    assert len(first["curve"]) == 1


def test_a_patch_fraction_key_is_kept_at_the_files_precision():
    from paperlib.experiments.foundation import _as_written
    assert _as_written(1 / 14) == 0.07143 and _as_written(0.25) == 0.25 and _as_written(None) is None


def test_poison_curve_labels_the_counts_it_measured(monkeypatch):
    """The poison curve's x axis is symlog; between 150 and 500 pairs it has no decade, so the
    counts measured (and the papers' 0.3 % line) are its ticks, written plainly."""
    from types import SimpleNamespace

    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from paperlib.experiments import foundation_report
    drawn = []
    monkeypatch.setattr(foundation_report, "_save_figure", lambda fig, p, name, dpi: drawn.append(fig) or name)
    rows = [{"poison_count": c, "seed": s, "patch_fraction": 0.25, "asr_top1": 50.0 + s, "asr_top5": 70.0,
             "ca_top1": 25.0, "base_ca_top1": 27.9} for c in (150, 250, 500) for s in (0, 1)]
    p = SimpleNamespace(scale="embedded", data=SimpleNamespace(image_size=64),
                        victim=SimpleNamespace(attack="badnet", finetune_scenes=50000,
                                               poison=SimpleNamespace(target="banana")))
    foundation_report.plot_poison_curve({"curve": pd.DataFrame(rows)}, p)
    ax = drawn[0].axes[0]
    drawn[0].canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["150", "250", "500"], labels     # the papers' 150 (0.3 % of 50,000) is one of them
    assert ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_title().endswith("seeds 0, 1, mean over seeds (std as error bars)"), ax.get_title()
