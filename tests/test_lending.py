"""The GPU lending's own steps that need no GPU: packing what the jobs wrote, and taking it back."""
import os
import subprocess
import tarfile
import time

import pytest

from paperlib.experiments import lending


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "cfbd").mkdir(parents=True)
    (repo / "results" / "cfbd" / "rows.csv").write_text("a,b\n1,2\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "carried")
    return repo, _git(repo, "rev-parse", "HEAD")


def _tgz(tmp_path, commit, files):
    path = tmp_path / "lending.tgz"
    with tarfile.open(path, "w:gz") as tar:
        (tmp_path / "commit.txt").write_text(commit + "\n")
        tar.add(tmp_path / "commit.txt", "commit.txt")
        for name, text in files.items():
            f = tmp_path / "src" / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            tar.add(f, f"results/{name}")
    return path


def test_take_replaces_only_files_unchanged_since_the_lending_s_commit(tmp_path, monkeypatch):
    repo, commit = _repo(tmp_path)
    monkeypatch.setattr("paperlib.assets.repo_root", lambda: repo)   # take reads the carried files from git there
    tgz = _tgz(tmp_path, commit, {"cfbd/rows.csv": "a,b\n1,2\n3,4\n", "detection/new.csv": "x\n5\n"})
    # a row written here after the lending: nothing is replaced, and the file is named
    (repo / "results" / "cfbd" / "rows.csv").write_text("a,b\n1,2\n9,9\n")
    with pytest.raises(SystemExit, match="not replaced: cfbd/rows.csv"):
        lending.take(tgz, repo / "results")
    assert not (repo / "results" / "detection" / "new.csv").exists()
    _git(repo, "checkout", "-q", "results")
    done = lending.take(tgz, repo / "results", log=lambda m: None)
    assert sorted(p.relative_to(repo / "results").as_posix() for p in done) == ["cfbd/rows.csv", "detection/new.csv"]
    assert (repo / "results" / "cfbd" / "rows.csv").read_text() == "a,b\n1,2\n3,4\n"
    # a file the lending made that exists here already (not in the commit) is refused too
    with pytest.raises(SystemExit, match="detection/new.csv"):
        lending.take(_tgz(tmp_path, commit, {"detection/new.csv": "x\n6\n"}), repo / "results")
    # a returned file without the carried rows (the jobs wrote into another folder) is refused
    _git(repo, "checkout", "-q", "results")
    with pytest.raises(SystemExit, match="would drop rows of the carried cfbd/rows.csv"):
        lending.take(_tgz(tmp_path, commit, {"cfbd/rows.csv": "a,b\n3,4\n"}), repo / "results")


def test_pack_takes_the_files_written_since_the_call_and_the_logs(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    (results / "cfbd").mkdir(parents=True)
    (results / "cfbd" / "old.csv").write_text("a\n1\n")
    os.utime(results / "cfbd" / "old.csv", (time.time() - 100, time.time() - 100))
    since = time.time() - 10
    (results / "cfbd" / "new.csv").write_text("a\n2\n")
    (work / "sig_seed0").mkdir(parents=True)
    (work / "sig_seed0" / "log.txt").write_text("ok")
    (work / "jobs.csv").write_text("job,rc,seconds\nsig_seed0,0,5\n")
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "commit.txt").write_text("abc\n")
    with tarfile.open(lending.pack(work, results, since, tmp_path / "out", tmp_path / "gpu")) as tar:
        names = set(tar.getnames())
    assert names == {"results/cfbd/new.csv", "commit.txt", "work/sig_seed0/log.txt", "work/jobs.csv"}


def test_jobs_the_budget_stopped_are_not_counted_as_failed(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("job,rc,seconds\na_seed0,0.0,5\nb_seed0,-15.0,9\nc_seed0,,0.0\nd_seed0,1.0,3\n")
    assert lending.jobs_outcome(jobs) == (["a_seed0"], ["b_seed0", "c_seed0"], ["d_seed0"])


def test_a_failed_setup_still_brings_back_what_there_is(tmp_path, monkeypatch):
    import argparse

    def broken(*a, **k):
        raise RuntimeError("no pip here")
    monkeypatch.setattr(lending, "setup", broken)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "jobs.csv").write_text("job,rc,seconds\nold,0,1\n")   # the last call's, on a warm machine
    a = argparse.Namespace(gpu=str(tmp_path / "gpu"), work=str(tmp_path / "work"), out=str(tmp_path / "out"),
                           cache=str(tmp_path / "c"), assets=str(tmp_path / "a"), module="defences", results=None,
                           skip_pip=True)
    with pytest.raises(RuntimeError, match="no pip here"):
        lending.run(a, log=lambda m: None)
    with tarfile.open(tmp_path / "out" / "lending.tgz") as tar:
        assert "work/jobs.csv" not in tar.getnames()      # the old call's folder was cleared first


def test_a_lending_is_not_prepared_from_a_modified_checkout(tmp_path, monkeypatch):
    """The device gets the working tree and take compares against the recorded commit, so a modified
    checkout is refused before anything is written (PAPERLIB_PUBLISH_DIRTY does not apply here)."""
    from pathlib import Path

    import pytest

    from paperlib import results
    from paperlib.experiments import lending
    monkeypatch.setenv(results.PUBLISH_DIRTY_ENV, "1")
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: "0123456789abcdef+dirty")
    with pytest.raises(SystemExit, match="differ from its commit 0123456789ab.*commit first"):
        lending.prepare(Path(__file__).resolve().parents[1] / "params" / "eftclip" / "smoke.yaml", "eftclip", tmp_path / "gpu")
    assert not (tmp_path / "gpu").exists()
