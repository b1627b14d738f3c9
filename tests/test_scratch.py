"""Committed results are written only by a run that publishes on purpose: every other run (a
notebook, a smoke run, an override) writes to the scratch folder, a copy of the committed results."""
from pathlib import Path

import pytest

from paperlib.config import ParamError

ROOT = Path(__file__).resolve().parents[1]


def test_default_results_dir_is_scratch_seeded_from_the_committed_results(tmp_path, monkeypatch):
    from paperlib.experiments.cleanerclip import load
    from paperlib.results import is_published, open_results_dir
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    p = load(ROOT / "params" / "cleanerclip" / "embedded.yaml", {"defence.train.lr": 5e-5})
    assert Path(p.results_dir) == tmp_path / "s" / "results" and not is_published(p.results_dir)
    where = open_results_dir(p)
    committed = ROOT / "results" / "defences" / "matrix.csv"
    assert (where / "defences" / "matrix.csv").read_bytes() == committed.read_bytes()
    # a second run keeps what the first wrote (the copy is made once)
    (where / "defences" / "matrix.csv").write_text("attack\n")
    open_results_dir(p)
    assert (where / "defences" / "matrix.csv").read_text() == "attack\n"
    assert not list((tmp_path / "s").glob(".results.seeding*")), "a seeding folder was left behind"


def test_publishing_is_explicit_and_never_at_smoke_scale(tmp_path, monkeypatch):
    from paperlib.experiments.cleanerclip import load
    from paperlib.results import is_published, open_results_dir
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    assert is_published(load(ROOT / "params" / "cleanerclip" / "embedded.yaml", {"results_dir": "results"}).results_dir)
    smoke = load(ROOT / "params" / "cleanerclip" / "smoke.yaml", {"results_dir": "results"})
    with pytest.raises(ParamError, match="smoke run never writes"):
        open_results_dir(smoke)
    other = load(ROOT / "params" / "cleanerclip" / "smoke.yaml", {"results_dir": str(tmp_path / "mine")})
    assert open_results_dir(other) == tmp_path / "mine" and not list((tmp_path / "mine").iterdir())


def test_run_all_writes_to_scratch_unless_published(tmp_path, monkeypatch):
    from paperlib import run_all
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    calls = []
    monkeypatch.setattr(run_all, "run_notebook", lambda name, scale, out, results_dir: calls.append(
        (name, scale, out, results_dir)) or 1.0)
    run_all.main(["--scale", "smoke", "--only", "foundation"])
    (name, scale, out, results_dir), = calls
    assert out == tmp_path / "s" / "results" / "foundation"
    assert Path(results_dir) == tmp_path / "s" / "results"
    assert (tmp_path / "s" / "results" / "run_all_smoke.json").is_file()
    with pytest.raises(SystemExit, match="smoke run never writes"):
        run_all.main(["--scale", "smoke", "--publish"])
