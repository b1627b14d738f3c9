"""Every notebook runs end to end through papermill with its smoke parameters (no cell errors)."""
import json
import re
import time
from pathlib import Path

import pytest

from paperlib.run_all import notebooks, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def results_snapshot() -> dict:
    """Size and modification time of every file under the committed results/."""
    return {str(f.relative_to(ROOT)): (f.stat().st_size, f.stat().st_mtime_ns)
            for f in sorted((ROOT / "results").rglob("*")) if f.is_file()}


@pytest.mark.parametrize("name", notebooks())
def test_notebook_runs_with_smoke_params(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    # the default results folder is the scratch one, here in tmp_path (the kernel inherits this)
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "scratch"))
    # sprites are shared with the real cache when present (read-only use, keyed by content)
    before = results_snapshot()
    t0 = time.time()
    out = tmp_path / "scratch" / "results"
    run_notebook(name, "smoke", out / name)
    assert results_snapshot() == before, "a smoke run changed the committed results/"
    nb = json.loads((out / name / f"{name}.ipynb").read_text())
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # the injected cell names the parameter file relative to the repository, no path of this machine
    injected = ["".join(c["source"]) for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and f"params/{name}/smoke.yaml" in injected[0] and str(ROOT) not in injected[0]
    assert nb["metadata"]["papermill"]["input_path"] == f"notebooks/{name}.ipynb"   # nor papermill's record
    # run_all hides paperlib's bars: a saved notebook must not hold one output per tqdm redraw
    bars = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and "%|" in "".join(o.get("text", ""))]
    assert not bars, f"{len(bars)} progress-bar outputs"
    warnings = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "stream" and "Warning" in "".join(o.get("text", ""))]
    assert not warnings, "".join(warnings[0].get("text", ""))[:300]
    # the scratch folder starts as a copy of the committed results: the run's own tables are newer
    assert any(f.stat().st_mtime > t0 for f in out.rglob("*.csv")), "the notebook wrote no result table"
    manifest = json.loads((out / name / "manifest_smoke.json").read_text())   # parameters, versions, wall time
    assert manifest["params"]["scale"] == "smoke" and manifest["wall_seconds"]
    # the defence matrix's own manifest is the matrix run's, not a notebook's that takes rows from it
    assert not (out / "defences" / "manifest_smoke.json").exists()


def test_repo_relative_paths(tmp_path, monkeypatch):
    from paperlib.run_all import repo_relative
    assert repo_relative(ROOT / "params" / "cfbd" / "smoke.yaml") == "params/cfbd/smoke.yaml"
    assert repo_relative("/tmp/elsewhere/results") == "/tmp/elsewhere/results"
    with monkeypatch.context() as m:     # a relative path from another folder becomes absolute
        m.chdir(tmp_path)
        assert repo_relative("results") == str(tmp_path.resolve() / "results")


def test_every_notebook_opens_with_its_title_then_the_parameters_cell():
    for name in notebooks():
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        title, params = nb["cells"][0], nb["cells"][1]
        assert title["cell_type"] == "markdown" and "".join(title["source"]).startswith("# "), name
        assert "parameters" in params["metadata"].get("tags", []), name
        for scale in ("smoke", "embedded", "gpu", "paper"):
            assert (ROOT / "params" / name / f"{scale}.yaml").is_file(), (name, scale)


def test_every_paper_notebook_ends_with_its_verdicts_and_deviations():
    """The verdict section is generated from the claims table (show_claims, no number typed in) and
    the last cell lists the deviations from the paper, linked to docs/deviations-<paper>.md."""
    for name in ("abd", "cleanerclip", "cfbd", "eftclip"):
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        heading, code, last = ("".join(c["source"]) for c in cells[-3:])
        assert heading.startswith("## Verdicts") and "docs/verdicts.md" in heading, name
        assert f"{name}.claims(" in code and "show_claims(cl" in code, name
        assert last.startswith("## Deviations from the paper") and f"docs/deviations-{name}.md" in last, name
        assert (ROOT / "docs" / f"deviations-{name}.md").is_file(), name
        words = re.sub(r"(Tables?|Fig\.|Algorithms?) [0-9IV]+", "", heading)   # names, not numbers
        assert not re.search(r"[0-9]", words), (name, "a number typed into the verdicts")


def test_every_notebook_is_valid_nbformat():
    """Cell ids and the rest of the schema (a cell added by hand without an id makes nbformat warn
    on every run, and a later nbformat refuse the notebook)."""
    import nbformat
    for name in notebooks():
        raw = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        ids = [c.get("id") for c in raw["cells"]]   # nbformat.read would fill missing ids itself
        nbformat.validate(nbformat.from_dict(raw))
        assert all(ids) and len(set(ids)) == len(ids), name


def test_a_failed_run_leaves_the_last_complete_notebook_in_place(tmp_path, monkeypatch):
    """papermill saves after every cell: run_notebook writes a side file and renames it only when
    every cell ran, so an error (or a kill) never leaves a half-executed notebook in results/."""
    import papermill as pm

    def failing(src, dest, **kw):
        Path(dest).write_text('{"half": true}')
        raise RuntimeError("cell 7 failed")

    def passing(src, dest, **kw):
        Path(dest).write_text('{"complete": true}')

    out = tmp_path / "foundation"
    out.mkdir()
    (out / "foundation.ipynb").write_text('{"previous": true}')
    monkeypatch.setattr(pm, "execute_notebook", failing)
    with pytest.raises(RuntimeError, match="cell 7"):
        run_notebook("foundation", "smoke", out)
    assert json.loads((out / "foundation.ipynb").read_text()) == {"previous": True}
    assert json.loads((out / "foundation.partial.ipynb").read_text()) == {"half": True}   # kept for reading
    monkeypatch.setattr(pm, "execute_notebook", passing)
    run_notebook("foundation", "smoke", out)
    assert json.loads((out / "foundation.ipynb").read_text()) == {"complete": True}
    assert not (out / "foundation.partial.ipynb").exists()


def test_papermills_recorded_paths_become_repository_relative(tmp_path):
    import nbformat
    from paperlib.run_all import paths_relative
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"input_path": str(ROOT / "notebooks" / "abd.ipynb"),
                                "output_path": str(ROOT / "results" / "abd" / "abd.partial.ipynb"), "parameters": {}}
    path = tmp_path / "abd.partial.ipynb"
    nbformat.write(nb, path)
    paths_relative(path, ROOT / "notebooks" / "abd.ipynb", ROOT / "results" / "abd" / "abd.ipynb")
    meta = json.loads(path.read_text())["metadata"]["papermill"]
    assert (meta["input_path"], meta["output_path"]) == ("notebooks/abd.ipynb", "results/abd/abd.ipynb")
    assert [f.name for f in tmp_path.iterdir()] == ["abd.partial.ipynb"]   # no temporary file left
