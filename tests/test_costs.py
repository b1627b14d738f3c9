"""The run's artifact ledger and the estimate of what is left (paperlib.cache, paperlib.costs)."""
import io
import json
import sys

import pytest

from paperlib import cache, costs
from paperlib.cache import ArtifactCache


@pytest.fixture
def ledger(monkeypatch):
    """A fresh ledger and no build hooks, so the process's own history does not leak in."""
    monkeypatch.setattr(cache, "_USED", {})
    monkeypatch.setattr(cache, "BUILD_HOOKS", [])
    monkeypatch.setattr(cache, "_SECTION", [""])
    return cache._USED


def test_the_ledger_lists_each_artifact_once_with_its_section_and_build_time(tmp_path, ledger):
    store = ArtifactCache(tmp_path)
    heard = []
    cache.BUILD_HOOKS.append(lambda event, info: heard.append((event, info["kind"])))
    cache.set_section("table1")
    store.get_or_build("model", {"role": "defence", "seed": 0}, lambda work: (work / "w").write_text("x"))
    store.get_or_build("model", {"role": "defence", "seed": 0}, lambda work: pytest.fail("rebuilt"))
    assert not store.exists("eval", {"x": 1}) and store.cached("eval", {"x": 1}) is None
    cache.set_section("fig3")
    store.get_or_build("eval", {"x": 2}, lambda work: None)
    assert store.exists("eval", {"x": 2})       # a check only: the ledger keeps where it was used
    cache.set_section("fig4")
    assert store.cached("model", {"role": "defence", "seed": 0}) == store.path("model", {"role": "defence", "seed": 0})
    used = cache.used_artifacts()
    assert [(u["section"], u["kind"], u["role"]) for u in used] == [("table1", "model", "defence"), ("fig3", "eval", "")]
    assert used[0]["key"] == store.path("model", {"role": "defence", "seed": 0}).name
    assert heard == [("start", "model"), ("done", "model"), ("start", "eval"), ("done", "eval")]


def test_an_artifact_another_process_built_during_the_run_keeps_its_build_time(tmp_path, ledger, monkeypatch):
    store = ArtifactCache(tmp_path)
    store.get_or_build("model", {"role": "victim"}, lambda work: None)
    meta = store.path("model", {"role": "victim"}) / "params.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "build_seconds": 42.0}))
    ledger.clear()                                  # as a parent process that never built it sees it
    assert store.exists("model", {"role": "victim"}) and cache.used_artifacts() == []   # a check is no use
    assert store.cached("model", {"role": "victim"}) is not None
    assert cache.used_artifacts()[0]["built_seconds"] == 42.0
    ledger.clear()
    monkeypatch.setattr(cache, "_STARTED", 4e9)    # built before this process started: a plain hit
    assert store.cached("model", {"role": "victim"}) is not None
    assert cache.used_artifacts()[0]["built_seconds"] == 0.0


def _done(root, kind, key):
    (root / kind / key).mkdir(parents=True)
    (root / kind / key / "DONE").write_text("now")


def test_a_section_costs_its_published_time_less_its_builds_plus_what_this_cache_lacks(tmp_path):
    manifest = {"wall_seconds": {"table1": 500.0, "fig3": 20.0}, "artifacts": [
        {"section": "table1", "kind": "model", "role": "poison_finetune", "key": "aaa", "built_seconds": 300.0},
        {"section": "table1", "kind": "model", "role": "defence", "key": "bbb", "built_seconds": 100.0},
        {"section": "table1", "kind": "eval", "role": "", "key": "ccc", "built_seconds": 0.0},
        {"section": "table1", "kind": "segmenter", "role": "segmenter", "key": "ddd", "built_seconds": 0.0},
        {"section": "fig3", "kind": "eval", "role": "", "key": "eee", "built_seconds": 0.0}]}
    _done(tmp_path, "model", "bbb")
    _done(tmp_path, "eval", "eee")
    recorded = {("model", "poison_finetune"): 174.0, ("eval", ""): 4.0}
    est = costs.section_estimate(manifest, "table1", tmp_path, recorded)
    # 500 - 400 built then, + 174 (victim absent) + 4 (eval absent); the segmenter has no recorded cost
    assert (est.seconds, est.to_build, est.uncosted, est.known) == (278.0, 3, 1, True)
    cached = costs.section_estimate(manifest, "fig3", tmp_path, recorded)
    assert (cached.seconds, cached.to_build) == (20.0, 0)
    assert "every model the published run used is in this cache" in costs.describe(cached)
    text = costs.describe(est)
    assert text.startswith("~4.6 min left, 3 artifacts to build") and "1 with no recorded cost" in text
    old = costs.section_estimate({"wall_seconds": {"table1": 60.0}}, "table1", tmp_path, recorded)
    assert not old.known and "lists no artifacts" in costs.describe(old)
    assert costs.describe(None) == "no published run to estimate from"


def test_recorded_costs_are_this_cpu_kinds_latest(tmp_path):
    path = tmp_path / "costs.csv"
    path.write_text("kind,role,precision,artifacts,total_seconds,median_seconds,samples,resumed,cpu,cpu_native_bf16,measured\n"
                    "model,defence,fp32,3,9,3.0,0,0,AMD EPYC,True,2026-11-29T10:00:00+0000\n"
                    "model,defence,fp32,3,9,5.0,0,0,AMD EPYC,True,2026-11-30T10:00:00+0000\n"
                    "model,defence,fp32,3,9,7.0,0,0,AMD EPYC,False,2026-12-01T10:00:00+0000\n"
                    "eval,,,3,9,1.5,0,0,AMD EPYC,True,2026-11-30T10:00:00+0000\n")
    assert costs.build_costs(str(path), "True") == {("model", "defence"): 5.0, ("eval", ""): 1.5}
    assert costs.build_costs(str(path), "False") == {("model", "defence"): 7.0}
    assert costs.build_costs(str(path), None) == {}     # a GPU: the CPU's costs do not apply
    assert costs.build_costs(str(tmp_path / "missing.csv"), "True") == {}


def test_an_artifact_recorded_by_key_is_priced_by_its_own_time_others_by_their_kinds_median(tmp_path):
    """A split of 130,000 scenes takes twenty times the median split: where artifact_costs.csv has
    that very artifact (cache keys are the same on every machine) its own time counts, on this CPU
    kind, not a resumed build's last leg."""
    costs.build_costs.cache_clear()
    path = tmp_path / "cache_costs.csv"
    path.write_text("kind,role,precision,artifacts,total_seconds,median_seconds,samples,resumed,cpu,cpu_native_bf16,measured\n"
                    "split,,,3,160,7.7,0,0,AMD EPYC,True,2026-11-30T10:00:00+0000\n")
    (tmp_path / costs.ARTIFACT_COSTS_NAME).write_text(
        "kind,role,key,precision,build_seconds,resumed,cpu,cpu_native_bf16,measured\n"
        "split,,big,,147.6,0,AMD EPYC,True,2026-11-30T10:00:00+0000\n"
        "split,,big,,400.0,0,AMD EPYC,False,2026-11-30T10:00:00+0000\n"
        "split,,cut,,3.0,1,AMD EPYC,True,2026-11-30T10:00:00+0000\n")
    c = costs.build_costs(str(path), "True")
    assert costs.artifact_cost(c, "split", "", "big") == 147.6
    assert costs.artifact_cost(c, "split", "", "cut") == 7.7          # resumed: the kind's median
    assert costs.artifact_cost(c, "split", "", "other") == 7.7
    assert costs.artifact_cost(costs.build_costs(str(path), "False"), "split", "", "big") == 400.0   # that kind's own
    assert costs.artifact_cost(costs.build_costs(str(path), "False"), "split", "", "other") is None  # no median there
    manifest = {"wall_seconds": {"s": 10.0}, "artifacts": [
        {"section": "s", "kind": "split", "role": "", "key": k, "built_seconds": 0.0} for k in ("big", "other")]}
    est = costs.section_estimate(manifest, "s", tmp_path / "empty-cache", c)
    assert est.to_build == 2 and est.seconds == pytest.approx(10.0 + 147.6 + 7.7)


def test_the_manifest_lists_the_artifacts_and_the_timer_names_their_section(tmp_path, ledger):
    from paperlib.results import Timer, write_manifest
    timer = Timer()
    inner = Timer()                               # an experiment's timer inside the notebook's section
    with timer("table2"):
        with inner("victims"):
            ArtifactCache(tmp_path).get_or_build("eval", {"x": 3}, lambda work: None)
        assert cache.current_section() == "table2"
    assert cache.current_section() == ""          # restored after the section
    manifest = write_manifest(tmp_path / "m.json", {"a": 1}, timer.sections)
    assert [(a["section"], a["kind"]) for a in manifest["artifacts"]] == [("table2", "eval")]
    assert json.loads((tmp_path / "m.json").read_text())["artifacts"] == manifest["artifacts"]


def test_under_run_all_sections_and_builds_are_told_in_the_terminal(tmp_path, ledger, monkeypatch):
    from paperlib import results
    from paperlib.results import RUN_ENV, Timer
    err = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", err)
    monkeypatch.setattr(results, "_ANNOUNCING", [False])
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    store = ArtifactCache(tmp_path / "cache")
    key = store.path("model", {"role": "defence", "n": 1}).name
    manifest = {"wall_seconds": {"table1": 400.0, "fig3": 30.0},
                "artifacts": [{"section": "table1", "kind": "model", "role": "defence", "key": key,
                               "built_seconds": 350.0}]}
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: manifest)
    monkeypatch.setattr(costs, "build_costs", lambda *a, **k: {("model", "defence"): 120.0})
    monkeypatch.setenv(RUN_ENV, "abd:embedded")
    monkeypatch.setenv(costs.RUN_RESULTS_ENV, str(tmp_path / "rows"))   # no row stands in
    timer = Timer()
    with timer("table1"):
        store.get_or_build("model", {"role": "defence", "n": 1}, lambda work: None)
    lines = err.getvalue().splitlines()
    assert lines[0] == "[abd] table1 ... (published run: 6.7 min; here ~2.8 min left, 1 artifact to build by " \
                       "results/benchmarks/cache_costs.csv)"
    assert lines[1].startswith("[abd]   building model (defence) ") and lines[1].endswith(": ~2.0 min by "
                                                                                        "results/benchmarks/cache_costs.csv")
    assert lines[2].startswith("[abd]   built model (defence) ")
    # after table1, fig3 is left: its 30 s, nothing to build
    assert lines[3].startswith("[abd] table1: 0 s; elapsed 0 s; ~30 s left (every model")


def test_a_build_before_the_first_section_is_told_too(tmp_path, ledger, monkeypatch):
    """A notebook renders its splits in the cells before its first section: under run_all,
    notebook.setup installs the announcer, so those builds get their lines (elsewhere: none)."""
    from paperlib import notebook, results
    from paperlib.results import RUN_ENV
    err = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", err)
    monkeypatch.setattr(results, "_ANNOUNCING", [False])
    monkeypatch.setattr(costs, "build_costs", lambda *a, **k: {})
    monkeypatch.setattr(results, "open_results_dir", lambda params, log=None: tmp_path)
    # setup's process-wide side effects (logging's root handler, the offline environment) stay out
    monkeypatch.setattr("logging.basicConfig", lambda *a, **k: None)
    monkeypatch.setattr("paperlib.assets.configure_environment", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    store = ArtifactCache(tmp_path / "cache")
    monkeypatch.delenv(RUN_ENV, raising=False)
    notebook.setup(lambda path, overrides: {}, "p.yaml")
    store.get_or_build("split", {"n": 1}, lambda work: None)
    assert err.getvalue() == ""
    monkeypatch.setenv(RUN_ENV, "foundation:embedded")
    notebook.setup(lambda path, overrides: {}, "p.yaml")
    store.get_or_build("split", {"n": 2}, lambda work: None)
    lines = err.getvalue().splitlines()
    assert [line.split(" ")[:5] for line in lines] == [["[foundation]", "", "", "building", "split"],
                                                        ["[foundation]", "", "", "built", "split"]]


def test_an_absent_artifact_a_row_names_is_not_built(tmp_path):
    rows = tmp_path / "rows"
    (rows / "defences").mkdir(parents=True)
    (rows / "defences" / "matrix.csv").write_text("attack,model,asr_top1\nbadnet,aaa,98.0\nsig,,90.0\n")
    (rows / "detection").mkdir()
    (rows / "detection" / "eftclip.csv").write_text("seed,eval_key,tpr\n0,ccc,50\n")
    (rows / "other.csv").write_text("seed,victim_model\n0,bbb\n")   # naming a victim is not standing in for it
    (rows / "foundation").mkdir()
    (rows / "foundation" / "poison_curve.csv").write_text("seed,victim_model\n0,fff\n")   # except here
    keys = costs.stand_in_keys(str(rows))
    assert keys == {"aaa", "ccc", "fff"}
    manifest = {"wall_seconds": {"t": 10.0}, "artifacts": [
        {"section": "t", "kind": "model", "role": "defence", "key": k, "built_seconds": 0.0} for k in ("aaa", "bbb", "ccc")]}
    est = costs.section_estimate(manifest, "t", tmp_path / "empty-cache", {("model", "defence"): 60.0}, keys)
    assert (est.seconds, est.to_build, est.stand_in) == (70.0, 1, 2)
    assert costs.describe(est).endswith("; 2 more stand in by their rows")


def test_a_build_inside_a_build_is_spent_once(tmp_path, ledger, monkeypatch):
    """What a unit of work subtracts for the builds made meanwhile: the seconds of outermost builds
    only (an evaluation that builds its classifier spends the classifier's time once)."""
    store = ArtifactCache(tmp_path)
    clock = [1000.0]   # a clock that moves only when a builder works
    monkeypatch.setattr(cache.time, "time", lambda: clock[0])
    spent = cache.build_seconds_spent()

    def work_for(seconds):
        clock[0] += seconds

    def outer(work):
        work_for(10.0)
        store.get_or_build("classifier", {"c": 1}, lambda w: work_for(4.0))
        work_for(6.0)

    store.get_or_build("eval", {"e": 1}, outer)
    assert cache.build_seconds_spent() - spent == 20.0    # not 20 + 4


def test_a_screening_stands_in_only_where_its_own_rows_and_its_models_rows_do(tmp_path, ledger):
    """A unit of work (a CFBD screening: kind ``work``, keyed by victim and detector) is in the
    ledger with its seconds and the models whose rows must stand in too; the estimate leaves it out
    only where its detection rows, found by the columns ``victim_model`` and ``detector``, and every
    model's row are in the results folder and none of the models is in this cache."""
    cache.set_section("detection")
    cache._USED[("model", "m0")] = {"section": "detection", "kind": "model", "role": "", "key": "m0",
                                    "built_seconds": 5.0}
    cache._USED[("model", "m1")] = {"section": "detection", "kind": "model", "role": "defence", "key": "m1",
                                    "built_seconds": 40.0}
    set_a, set_b, set_c = (cache.work_key("cfbd_set", v, "det9") for v in ("va", "vb", "vc"))
    assert set_a == "cfbd_set/va/det9"
    cache.note_work("cfbd_set", set_a, 60.0, ["m1", "abl1"])
    cache.note_work("cfbd_set", set_a, 999.0, ["zzz"])                 # the first note of a key is kept
    cache.note_work("cfbd_set", set_b, -3.0, ["m2"])                   # never negative
    cache.note_work("cfbd_set", set_c, 50.0, [])                       # no retraining, no ABL: its rows alone
    work = [e for e in cache.used_artifacts() if e["kind"] == "work"]
    assert [(e["key"], e["built_seconds"], e["models"]) for e in work] == [
        (set_a, 60.0, ["m1", "abl1"]), (set_b, 0.0, ["m2"]), (set_c, 50.0, [])]
    rows = tmp_path / "rows"
    (rows / "detection").mkdir(parents=True)
    (rows / "detection" / "cfbd.csv").write_text(
        "attack,stage,victim_model,detector,model\nbadnet,coarse,va,det9,m1\nsig,coarse,vc,det9,\n"
        "blended,coarse,vb,,\n")                                      # a row without a detector stands in for nothing
    (rows / "detection" / "abl.csv").write_text("attack,model\nbadnet,abl1\n")
    keys = costs.stand_in_keys(str(rows))
    assert keys == {"m1", "abl1", set_a, set_c}
    manifest = {"wall_seconds": {"detection": 200.0}, "artifacts": cache.used_artifacts()}
    recorded = {("model", "defence"): 30.0, ("model", ""): 1.0}
    # published 200 s less 45 s of builds and 110 s of screenings: 45 s that every run spends
    fresh = costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, keys)
    assert (fresh.seconds, fresh.to_build, fresh.stand_in) == (45.0 + 1.0, 1, 3)   # m0 built; a, c, m1 stand in
    no_abl = costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, keys - {"abl1"})
    assert no_abl.seconds == 45.0 + 1.0 + 60.0 and no_abl.stand_in == 2         # ABL's row missing: a screened
    no_rows = costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, keys - {set_a, set_c})
    assert no_rows.seconds == 45.0 + 1.0 + 60.0 + 50.0 and no_rows.stand_in == 1   # m1 still stands in
    _done(tmp_path, "model", "m1")
    here = costs.section_estimate(manifest, "detection", tmp_path, recorded, keys)
    assert here.seconds == 45.0 + 1.0 + 60.0 and here.stand_in == 1           # its model is here: a screened


def test_a_screening_that_stood_in_is_priced_by_its_models_where_its_rows_are_missing(tmp_path, ledger):
    """A published run whose screenings all stood in (cache.note_stood_in: no seconds, its models
    unbuilt) still tells a run without those rows (make reproduce) what to build: each model at its
    recorded cost, the screening itself as uncosted; with the rows there it stands in as before."""
    cache.set_section("detection")
    set_a = cache.work_key("cfbd_set", "va", "det9")
    cache.note_stood_in("cfbd_set", set_a, {"abl1": "abl_isolation", "r1": "retrain"})
    cache.note_stood_in("cfbd_set", set_a, {"zzz": "retrain"})          # the first note of a key is kept
    [entry] = [e for e in cache.used_artifacts() if e["kind"] == "work"]
    assert entry["built_seconds"] is None and entry["models"] == ["abl1", "r1"]
    manifest = {"wall_seconds": {"detection": 2.0}, "artifacts": cache.used_artifacts()}
    recorded = {("model", "abl_isolation"): 270.0, ("model", "retrain"): 360.0}
    empty = costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, frozenset())
    assert (empty.seconds, empty.to_build, empty.untimed, empty.stand_in) == (2.0 + 270.0 + 360.0, 2, 1, 0)
    assert "1 screening that the published run took from its rows, untimed" in costs.describe(empty)
    seen = {("model", "r1")}   # an earlier notebook of the estimate counted it
    assert costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, frozenset(), seen).seconds == 272.0
    rows = frozenset({set_a, "abl1", "r1"})
    there = costs.section_estimate(manifest, "detection", tmp_path / "empty", recorded, rows)
    assert (there.seconds, there.to_build, there.stand_in) == (2.0, 0, 1)
    for name in ("abl1", "r1"):   # the models here, the screening's rows not: nothing to build, one untimed
        _done(tmp_path / "cache", "model", name)
    models_here = costs.section_estimate(manifest, "detection", tmp_path / "cache", recorded, frozenset())
    assert (models_here.to_build, models_here.untimed) == (0, 1)
    assert "nothing to build; 1 screening that the published run took from its rows" in costs.describe(models_here)


def test_artifacts_used_between_sections_count_while_absent(tmp_path, monkeypatch):
    manifest = {"wall_seconds": {"a": 10.0}, "artifacts": [
        {"section": "", "kind": "split", "role": "", "key": "s1", "built_seconds": 0.0},
        {"section": "a", "kind": "eval", "role": "", "key": "e1", "built_seconds": 0.0}]}
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: manifest)
    monkeypatch.setattr(costs, "build_costs", lambda *a, **k: {("split", ""): 100.0, ("eval", ""): 5.0})
    est = costs.left("x", "embedded", cache_root=tmp_path, rows_dir=str(tmp_path / "rows"))
    assert (est.seconds, est.to_build) == (115.0, 2)
    assert costs.left("x", "embedded", done={"a"}, cache_root=tmp_path, rows_dir=str(tmp_path / "rows")).seconds == 100.0
    _done(tmp_path, "split", "s1")
    assert costs.left("x", "embedded", done={"a"}, cache_root=tmp_path, rows_dir=str(tmp_path / "rows")).seconds == 0.0
    assert costs.left("x", "smoke", cache_root=tmp_path, rows_dir=str(tmp_path / "rows")).uncosted == 1   # costs are the embedded scale's


def test_nested_sections_are_quiet_and_a_failing_hook_or_estimate_stops_nothing(tmp_path, ledger, monkeypatch):
    from paperlib import results
    from paperlib.results import RUN_ENV, Timer
    err = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", err)
    monkeypatch.setenv(RUN_ENV, "abd:embedded")

    def broken(*a, **k):
        raise ValueError("damaged manifest")
    monkeypatch.setattr(costs, "published_manifest", broken)
    monkeypatch.setattr(results, "_ANNOUNCING", [True])      # no announcing hook: the broken one below
    cache.BUILD_HOOKS.append(broken)
    outer, inner = Timer(), Timer()
    with outer("matrix"):
        with inner("victims"):
            ArtifactCache(tmp_path).get_or_build("eval", {"x": 9}, lambda work: None)
    lines = err.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["(no", "(no"], lines   # the outer section's two lines only
    assert all("damaged manifest" in line for line in lines)
    assert ArtifactCache(tmp_path).exists("eval", {"x": 9}) and inner.sections["victims"] >= 0


def test_an_artifact_two_notebooks_share_is_counted_once(tmp_path, monkeypatch):
    manifests = {n: {"wall_seconds": {"t": 0.0}, "artifacts": [
        {"section": "t", "kind": "model", "role": "shipped_base", "key": "base", "built_seconds": 0.0},
        {"section": "t", "kind": "model", "role": "defence", "key": n, "built_seconds": 0.0}]} for n in ("a", "b")}
    monkeypatch.setattr(costs, "published_manifest", lambda notebook, scale: manifests[notebook])
    monkeypatch.setattr(costs, "build_costs", lambda *a, **k: {("model", "shipped_base"): 7.0, ("model", "defence"): 50.0})
    seen: set = set()
    total = sum((costs.left(n, "embedded", cache_root=tmp_path, rows_dir=str(tmp_path), seen=seen) for n in "ab"),
                costs.Estimate())
    assert (total.seconds, total.to_build) == (107.0, 3)


def test_the_recorded_total_sums_one_cpu_kinds_cold_caches(tmp_path):
    file = tmp_path / "costs.csv"
    file.write_text("kind,role,precision,artifacts,total_seconds,median_seconds,samples,resumed,cpu,cpu_native_bf16,measured\n"
                    "model,victim,,12,2000.5,174,0,0,AMD EPYC,True,2026-11-30\n"
                    "split,,,3,24,8,0,0,AMD EPYC,True,2026-11-30\n"
                    "model,victim,,4,1860,465,0,0,AMD EPYC,False,2026-11-29\n")
    assert costs.recorded_total(str(file), cpu_kind="True") == (2024.5, 15)
    assert costs.recorded_total(str(file), cpu_kind="False") == (1860.0, 4)
    assert costs.recorded_total(str(file), cpu_kind=None) is None            # a GPU machine
    assert costs.recorded_total(str(tmp_path / "none.csv"), cpu_kind="True") is None
    with file.open("a") as fh:   # the same kind measured again under the CPU label with its extension
        fh.write("model,victim,,5,2500,480,0,0,AMD EPYC (AVX2),False,2026-12-05\n")
    assert costs.recorded_total(str(file), cpu_kind="False") == (2500.0, 5)     # the latest, not both


def test_an_evaluation_names_its_model_and_is_not_counted_where_that_model_stands_in(tmp_path, ledger):
    from paperlib.cache import artifact_key
    store = ArtifactCache(tmp_path / "cache")
    victim = {"role": "poison_finetune", "seed": 3}
    cache.set_section("table1")
    store.get_or_build("eval", {"model": victim, "split": "imagenet_analog"}, lambda work: None)
    store.get_or_build("classifier", {"model": victim, "classnames": ["a"]}, lambda work: None)
    store.get_or_build("eval", {"x": 1}, lambda work: None)            # names no model
    assert [u.get("of") for u in cache.used_artifacts()] == [artifact_key("model", victim)] * 2 + [None]
    manifest = {"wall_seconds": {"table1": 10.0}, "artifacts": cache.used_artifacts()}
    recorded = {("eval", ""): 4.0, ("classifier", ""): 1.0}
    empty = tmp_path / "empty"
    # the victim's row stands in: neither its evaluation nor its classifier is made, the other eval is
    est = costs.section_estimate(manifest, "table1", empty, recorded, stand_in=frozenset({artifact_key("model", victim)}))
    assert (est.to_build, est.stand_in, est.seconds) == (1, 2, 14.0)
    assert costs.section_estimate(manifest, "table1", empty, recorded).to_build == 3


def test_the_reproduce_benchmark_writes_a_row_per_notebook_and_their_sum_on_an_empty_cache(tmp_path, monkeypatch):
    from pathlib import Path

    from paperlib import bench
    asked = []

    def left(name, scale, cache_root=None, rows_dir=None, seen=None, **k):
        asked.append((name, list(Path(cache_root).iterdir()), list(Path(rows_dir).iterdir())))
        if name == "foundation":
            return None                                         # no published run: no row
        return costs.Estimate(seconds=1800.0, to_build=3, known=True, untimed=2 if name == "cfbd" else 0)
    monkeypatch.setattr(costs, "left", left)
    monkeypatch.setattr("paperlib.run_all.notebooks", lambda: ["foundation", "cfbd", "abd"])
    rows = bench.reproduce_estimate_rows()
    assert [a[1:] for a in asked] == [([], [])] * 3              # an empty cache, no rows to stand in
    assert [r["notebook"] for r in rows] == ["cfbd", "abd", "all"]
    assert rows[-1]["hours"] == 1.0 and rows[-1]["to_build"] == 6 and rows[-1]["untimed_screenings"] == 2
    assert rows[-1]["notebooks"] == 2 and rows[-1]["artifacts_listed"]
    out = tmp_path / "throughput.csv"
    assert bench.main(["--reproduce-estimate", "--out", str(out), "--costs-out", str(tmp_path / "c.csv")]) == 0
    import pandas as pd
    written = pd.read_csv(tmp_path / "reproduce_estimate.csv")
    assert sorted(written.notebook) == ["abd", "all", "cfbd"] and {"cpu", "commit"} <= set(written.columns)


def test_a_model_whose_row_stood_in_is_listed_and_priced_where_the_row_is_missing(tmp_path, ledger, monkeypatch):
    """A run published on a cache without the models (every row stood in) still lists them, so the
    estimate of a run without those rows (make reproduce) prices them; a stood-in model built later
    in the same run is listed with its build time instead."""
    from types import SimpleNamespace

    from paperlib.experiments.common import published_row
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    key = {"role": "defence", "seed": 3}
    name = cache.artifact_key("model", key)
    (tmp_path / "res" / "x").mkdir(parents=True)
    (tmp_path / "res" / "x" / "rows.csv").write_text(f"model,top1\n{name},70.0\n")
    p = SimpleNamespace(reuse_rows=True, results_dir=str(tmp_path / "res"))
    cache.set_section("table2")
    assert published_row(p, "x/rows.csv", key)["top1"] == 70.0
    assert published_row(p, "x/rows.csv", {"role": "defence", "seed": 4}) is None      # no row: nothing listed
    [entry] = cache.used_artifacts()
    assert (entry["key"], entry["role"], entry["built_seconds"], entry["stood_in"]) == (name, "defence", None, True)
    manifest = {"wall_seconds": {"table2": 1.0}, "artifacts": cache.used_artifacts()}
    est = costs.section_estimate(manifest, "table2", tmp_path / "empty", {("model", "defence"): 300.0}, frozenset())
    assert (est.seconds, est.to_build) == (301.0, 1)
    there = costs.section_estimate(manifest, "table2", tmp_path / "empty", {("model", "defence"): 300.0},
                                   frozenset({name}))
    assert (there.seconds, there.to_build, there.stand_in) == (1.0, 0, 1)
    ArtifactCache(tmp_path / "cache").get_or_build("model", key, lambda work: (work / "w").write_text("x"))
    [entry] = cache.used_artifacts()
    assert entry["built_seconds"] is not None and "stood_in" not in entry



def test_a_diagnostics_rows_naming_models_stand_in_for_none(tmp_path):
    """ABL's loss diagnostic names the clean base and ABL's isolation models it measured: those rows
    are not the models' results, so they stand in for nothing (a matrix row does)."""
    (tmp_path / "detection").mkdir()
    (tmp_path / "defences").mkdir()
    (tmp_path / "detection" / "abl_losses.csv").write_text("model,low_loss_auroc\nbase1,0.0\niso1,6.6\n")
    (tmp_path / "defences" / "matrix.csv").write_text("model,asr_top1\nft1,10.0\n")
    assert costs.stand_in_keys(str(tmp_path)) == frozenset({"ft1"})
