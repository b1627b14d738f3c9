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
    import os

    from paperlib import run_all
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    calls = []
    from paperlib.results import RUN_COMMIT_ENV, start_commit
    monkeypatch.delenv(RUN_COMMIT_ENV, raising=False)
    monkeypatch.setattr(run_all, "run_notebook", lambda name, scale, out, results_dir: calls.append(
        (name, scale, out, results_dir, os.environ.get(RUN_COMMIT_ENV))) or 1.0)
    run_all.main(["--scale", "smoke", "--only", "foundation"])
    (name, scale, out, results_dir, kernels_commit), = calls
    assert kernels_commit == start_commit() and RUN_COMMIT_ENV not in os.environ   # passed on, then gone
    assert out == tmp_path / "s" / "results" / "foundation"
    assert Path(results_dir) == tmp_path / "s" / "results"
    assert (tmp_path / "s" / "results" / "run_all_smoke.json").is_file()
    with pytest.raises(SystemExit, match="smoke run never writes"):
        run_all.main(["--scale", "smoke", "--publish"])


def test_run_all_reproduce_uses_its_own_cache_and_an_empty_results_folder(tmp_path, monkeypatch, capsys):
    import os

    from paperlib import run_all
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(run_all, "run_notebook", lambda name, scale, out, results_dir: seen.append(
        (out, results_dir, os.environ["PAPERLIB_CACHE"])) or 1.0)
    run_all.main(["--scale", "smoke", "--only", "cfbd", "--reproduce"])
    (out, results_dir, cache), = seen
    assert Path(results_dir) == tmp_path / "s" / "reproduce" and out == tmp_path / "s" / "reproduce" / "cfbd"
    assert not (tmp_path / "s" / "reproduce" / "defences").exists(), "committed rows were copied in"
    assert cache.endswith(os.path.join(".cache", "reproduce"))
    assert "retraining everything from scratch: at least" in capsys.readouterr().out   # no smoke manifest
    # where the published manifests list their artifacts, the estimate adds up their recorded costs
    from paperlib import costs
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: {"wall_seconds": {"t": 30.0}, "artifacts": [
        {"section": "t", "kind": "model", "role": "retrain", "key": "k1", "built_seconds": 0.0}]})
    monkeypatch.setattr(costs, "build_costs", lambda *a, **k: {("model", "retrain"): 150.0})
    run_all.main(["--scale", "embedded", "--only", "cfbd", "--reproduce"])   # the costs are the embedded scale's
    assert ("retraining everything from scratch: ~3.0 min left, 1 artifact to build by "
            "results/benchmarks/cache_costs.csv for 1 notebook(s)") in capsys.readouterr().out


def test_timer_reports_sections_to_the_terminal_under_run_all(monkeypatch):
    import io
    import sys

    from paperlib import costs
    from paperlib.results import RUN_ENV, Timer
    err = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", err)
    monkeypatch.setenv(RUN_ENV, "cleanerclip:embedded")
    # a manifest published before manifests listed their artifacts
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: {"wall_seconds": {"table1": 60.0,
                                                                                            "fig3": 120.0}})
    timer = Timer()
    with timer("table1"):
        pass
    lines = err.getvalue().splitlines()
    assert lines[0] == "[cleanerclip] table1 ... (published run: 1.0 min)"
    assert lines[1] == ("[cleanerclip] table1: 0 s; elapsed 0 s; ~2.0 min left by the published run (its manifest "
                        "lists no artifacts: models this cache lacks come on top)")
    with timer("victims"):          # work the published run did not do (its victims stood in): said, not estimated
        pass
    lines = err.getvalue().splitlines()
    assert lines[2] == "[cleanerclip] victims ... (not in the published run)"
    assert lines[3].endswith(", plus what the published run did not do (victims so far), not in the estimate")
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: {})   # no published run at all
    unpublished = Timer()
    with unpublished("victims"):
        pass
    assert "published run did not do" not in err.getvalue().splitlines()[-1]
    monkeypatch.delenv(RUN_ENV)
    quiet = Timer()
    with quiet("x"):
        pass
    assert len(err.getvalue().splitlines()) == 6 and quiet.sections["x"] >= 0


def test_the_student_guide_cost_table_is_the_one_the_results_files_give():
    from paperlib.bench import GUIDE_BEGIN, GUIDE_END, costs_markdown
    text = (ROOT / "docs" / "student-guide.md").read_text()
    table = text.split(GUIDE_BEGIN, 1)[1].split(GUIDE_END, 1)[0]
    assert table.strip() == costs_markdown().strip(), "run python -m paperlib.bench --guide"
    assert "| model / clean_pretrain |" in table and "NVIDIA H200" in table


def test_run_all_out_naming_the_committed_results_needs_publish(tmp_path, monkeypatch):
    from paperlib import run_all
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("a notebook ran"))
    for argv in (["--scale", "smoke", "--out", "results"], ["--out", str(ROOT / "results")]):
        with pytest.raises(SystemExit, match="only --publish writes there"):
            run_all.main(argv + ["--only", "foundation"])


def test_the_performance_tables_are_the_ones_the_results_files_give():
    from paperlib.bench import PERF_BEGIN, PERF_END, versus_markdown
    text = (ROOT / "docs" / "performance.md").read_text()
    table = text.split(PERF_BEGIN, 1)[1].split(PERF_END, 1)[0]
    assert table.strip() == versus_markdown().strip(), "run python -m paperlib.bench --guide"


def test_publishing_from_a_modified_checkout_is_refused_unless_asked(tmp_path, monkeypatch):
    from paperlib import results
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    monkeypatch.delenv(results.PUBLISH_DIRTY_ENV, raising=False)
    monkeypatch.setattr(results, "_START_COMMIT", None)   # this test's start; the earlier value comes back after
    monkeypatch.delenv(results.RUN_COMMIT_ENV, raising=False)
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: "0123456789abcdef+dirty")
    with pytest.raises(ParamError, match=r"results_dir: .*committed results folder.*0123456789ab.*PAPERLIB_PUBLISH_DIRTY=1"):
        results.prepare_results_dir(results.PUBLISHED)
    with pytest.raises(ParamError, match="differed from its commit"):
        results.prepare_results_dir(ROOT / "results")                  # the same folder named absolutely
    assert results.prepare_results_dir(tmp_path / "mine") == tmp_path / "mine"   # any other folder: written
    assert results.prepare_results_dir(results.default_results_dir()).is_dir()   # the scratch folder too
    monkeypatch.setenv(results.PUBLISH_DIRTY_ENV, "1")
    assert results.prepare_results_dir(results.PUBLISHED) == ROOT / "results"   # asked for: published
    monkeypatch.setenv(results.PUBLISH_DIRTY_ENV, "0")
    assert results.prepare_results_dir(results.PUBLISHED, check_dirty=False) == ROOT / "results"   # rows made elsewhere
    for commit in ("0123456789abcdef", "unknown"):                    # clean, or nothing to compare
        results.refuse_dirty_publishing(ROOT / "results", commit)
    with pytest.raises(ParamError):
        results.refuse_dirty_publishing(ROOT / "results", "0123456789abcdef+dirty")


def test_a_manifest_names_the_commit_its_run_started_from(tmp_path, monkeypatch):
    from paperlib import results
    monkeypatch.setattr(results, "_START_COMMIT", None)
    monkeypatch.delenv(results.RUN_COMMIT_ENV, raising=False)
    commits = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: next(commits))
    results.prepare_results_dir(tmp_path / "out")                 # the run starts at aaaa
    env = results.environment()                                    # and ends after bbbb was committed
    assert env["commit"] == "aaaa" and env["commit_at_end"] == "bbbb"
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: "cccc+dirty")
    results.prepare_results_dir(tmp_path / "again")               # a kernel's setup cell run again: still aaaa
    assert results.start_commit() == "aaaa"
    monkeypatch.setattr(results, "_START_COMMIT", None)            # a kernel run_all started inherits its commit
    monkeypatch.setenv(results.RUN_COMMIT_ENV, "dddd+dirty")
    with pytest.raises(ParamError, match="dddd"):
        results.prepare_results_dir(results.PUBLISHED)
    assert results.prepare_results_dir(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setattr(results, "_START_COMMIT", "bbbb")
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: "bbbb")
    env = results.environment()
    assert env["commit"] == "bbbb" and "commit_at_end" not in env


def test_a_folder_or_file_inside_the_committed_results_is_published_too(tmp_path, monkeypatch):
    from paperlib import bench
    from paperlib.results import is_published
    assert is_published("results") and is_published("results/eftclip") and is_published(ROOT / "results" / "x.csv")
    assert not is_published("scratch/results") and not is_published(tmp_path / "results")
    assert not is_published("results_old")                        # a sibling whose name only starts alike
    out = ROOT / "results" / "benchmarks" / "throughput.csv"
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="only --publish writes there"):
        bench.main(["--reproduce-estimate", "--out", str(out), "--costs-out", str(tmp_path / "c.csv")])
    assert out.read_bytes() == before
