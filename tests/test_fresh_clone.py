"""The fresh-clone timer: a clone of HEAD, the checkout's environment left out, one row per run."""
import subprocess

import pandas as pd

from paperlib import fresh_clone


def _repo(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    (repo / "Makefile").write_text("test:\n\t@echo cache=[$$PAPERLIB_CACHE] committed=$$(cat committed.txt)\n"
                                   "all:\n\t@exit 3\n")
    (repo / "committed.txt").write_text("yes\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=repo, check=True)
    (repo / "committed.txt").write_text("no: an uncommitted edit\n")   # not in the clone
    return repo


def test_make_runs_in_a_fresh_clone_without_this_checkouts_cache(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    monkeypatch.setattr(fresh_clone, "repo_root", lambda: repo)
    monkeypatch.setattr("paperlib.results.git_commit", lambda *a: "0123456789abcdef+dirty")
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "warm-cache"))
    monkeypatch.setattr(fresh_clone.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "clone"))
    recorded = []
    row = fresh_clone.measure("test", tmp_path / "logs" / "t.log", say=lambda *a: None,
                              record=lambda r: recorded.append((r, (tmp_path / "clone").exists())))
    assert recorded == [(row, True)]          # the row is given out before the clone is deleted
    assert (tmp_path / "logs" / "t.log").read_text().strip() == "cache=[] committed=yes"
    assert row["rc"] == 0 and row["commit"] == "0123456789ab" and row["seconds"] >= 0 and row["target"] == "test"
    assert not (tmp_path / "clone").exists(), "the clone was left behind"
    failed = fresh_clone.measure("all", tmp_path / "logs" / "a.log", say=lambda *a: None)
    assert failed["rc"] != 0 and failed["notebooks"] == ""
    (repo / "Makefile").write_text("all:\n\t@echo args=[$(RUN_ARGS)]\n")   # run_all's notebooks reach make
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "y"], cwd=repo, check=True)
    some = fresh_clone.measure("all", tmp_path / "logs" / "s.log", say=lambda *a: None, only=("abd", "foundation"))
    assert (tmp_path / "logs" / "s.log").read_text().strip() == "args=[--only abd foundation]"
    assert some["rc"] == 0 and some["notebooks"] == "abd foundation"


def test_the_readme_sentence_quotes_the_latest_successful_run_of_each_target(tmp_path):
    assert "`make all` not timed yet; `make test` not timed yet" in fresh_clone.sentence(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    base = {"cpu": "AMD EPYC", "cores": 2, "load_end": 1.0, "log": "x.log", "commit": "abcdef123456"}
    pd.DataFrame([{**base, "target": "test", "seconds": 600.0, "rc": 0, "load_start": 0.1, "measured": "2026-12-05T01:00:00+0000"},
                  {**base, "target": "test", "seconds": 420.0, "rc": 0, "load_start": 1.7, "measured": "2026-12-05T02:00:00+0000"},
                  {**base, "target": "all", "seconds": 60.0, "rc": 2, "load_start": 0.0, "measured": "2026-12-05T03:00:00+0000"}]
                 ).to_csv(tmp_path / "benchmarks" / "fresh_clone.csv", index=False)
    text = fresh_clone.sentence(tmp_path)
    assert "`make all` not timed yet" in text                     # its only run failed
    assert "`make test` 7.0 min (commit abcdef1, AMD EPYC, 2 cores, beside other work (load average 1.7" in text
    assert "[fresh_clone.csv](results/benchmarks/fresh_clone.csv)" in text
    # make all over some notebooks only: said as such, never as the whole job's time
    partial = pd.DataFrame([{**base, "target": "all", "seconds": 1200.0, "rc": 0, "load_start": 0.1,
                             "measured": "2026-12-05T04:00:00+0000", "notebooks": "foundation abd"}])
    pd.concat([pd.read_csv(tmp_path / "benchmarks" / "fresh_clone.csv"), partial]).to_csv(
        tmp_path / "benchmarks" / "fresh_clone.csv", index=False)
    text = fresh_clone.sentence(tmp_path)
    assert "`make all` not timed yet (over foundation, abd only: 20.0 min (commit abcdef1, AMD EPYC, 2 cores))" in text
    # a whole run after it: the whole time alone; a partial run after that one: both
    whole = {**base, "target": "all", "seconds": 1500.0, "rc": 0, "load_start": 0.1, "notebooks": None}
    rows = pd.read_csv(tmp_path / "benchmarks" / "fresh_clone.csv")
    pd.concat([rows, pd.DataFrame([{**whole, "measured": "2026-12-05T06:00:00+0100"}])]).to_csv(   # 05:00 UTC
        tmp_path / "benchmarks" / "fresh_clone.csv", index=False)
    text = fresh_clone.sentence(tmp_path)
    assert "`make all` 25.0 min (commit abcdef1, AMD EPYC, 2 cores);" in text and "only" not in text
    later = {**base, "target": "all", "seconds": 300.0, "rc": 0, "load_start": 0.1, "notebooks": "abd",
             "measured": "2026-12-05T05:30:00+0000"}
    pd.concat([pd.read_csv(tmp_path / "benchmarks" / "fresh_clone.csv"), pd.DataFrame([later])]).to_csv(
        tmp_path / "benchmarks" / "fresh_clone.csv", index=False)
    assert "`make all` 25.0 min (commit abcdef1, AMD EPYC, 2 cores) (over abd only: 5.0 min" in fresh_clone.sentence(tmp_path)


def test_the_checkouts_own_variables_are_dropped():
    env = fresh_clone.clean_environment({"PAPERLIB_CACHE": "/c", "OMP_NUM_THREADS": "1", "PATH": "/bin", "HOME": "/h"})
    assert env == {"PATH": "/bin", "HOME": "/h"}
