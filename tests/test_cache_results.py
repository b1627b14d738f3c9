"""Artifact cache keys, resumable builds, and tidy result files."""
import pandas as pd
import pytest

from paperlib.cache import ArtifactCache, artifact_key
from paperlib.results import upsert_csv


def test_key_is_order_independent_and_sensitive():
    assert artifact_key("model", {"a": 1, "b": [1, 2]}) == artifact_key("model", {"b": [1, 2], "a": 1})
    assert artifact_key("model", {"a": 1}) != artifact_key("model", {"a": 2})
    assert artifact_key("model", {"a": 1}) != artifact_key("split", {"a": 1})


def test_build_once_then_hit(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build(work):
        calls.append(1)
        (work / "x.txt").write_text("hello")
    p1 = cache.get_or_build("eval", {"k": 1}, build)
    p2 = cache.get_or_build("eval", {"k": 1}, build)
    assert p1 == p2 and len(calls) == 1 and (p1 / "x.txt").read_text() == "hello"
    assert (p1 / "DONE").is_file() and (p1 / "params.json").is_file()


def test_interrupted_build_resumes_from_partial_dir(tmp_path):
    cache = ArtifactCache(tmp_path)

    def crash(work):
        (work / "checkpoint").write_text("step 5")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("model", {"k": 2}, crash)
    assert not cache.exists("model", {"k": 2})
    seen = []

    def resume(work):
        seen.append((work / "checkpoint").read_text())
    cache.get_or_build("model", {"k": 2}, resume)
    assert seen == ["step 5"] and cache.exists("model", {"k": 2})


def test_upsert_replaces_same_key_keeps_others(tmp_path):
    f = tmp_path / "t.csv"
    upsert_csv(f, [{"attack": "badnet", "seed": 0, "asr": 1.0}, {"attack": "sig", "seed": 0, "asr": 2.0}],
               ("attack", "seed"))
    df = upsert_csv(f, [{"attack": "badnet", "seed": 0, "asr": 9.0}], ("attack", "seed"))
    assert len(df) == 2
    assert pd.read_csv(f).set_index("attack").loc["badnet", "asr"] == 9.0
    with pytest.raises(KeyError):
        upsert_csv(f, [{"seed": 1}], ("attack", "seed"))


def test_upsert_keeps_another_machines_row_of_the_same_model(tmp_path):
    """made_on: a row measuring the same model (model_column) trained on another machine, or on none
    named (written before the column), stays; this machine's row of that key is left out and said. The
    same machine's row, a row of another model under the key, and a row where neither names a machine
    replace it."""
    f = tmp_path / "curve.csv"
    key = ("seed",)
    upsert_csv(f, [{"seed": 0, "victim_model": "a", "asr": 1.0}, {"seed": 1, "victim_model": "b", "asr": 2.0},
                   {"seed": 2, "victim_model": "c", "asr": 3.0, "device": "AMD EPYC (AVX2)"},
                   {"seed": 3, "victim_model": "e", "asr": 4.0}], key)
    said = []
    df = upsert_csv(f, [{"seed": 0, "victim_model": "a", "asr": 7.0, "device": "Intel Xeon (AVX-512)"},
                        {"seed": 2, "victim_model": "c", "asr": 8.0, "device": "Intel Xeon (AVX-512)"},
                        {"seed": 1, "victim_model": "other", "asr": 5.0, "device": "Intel Xeon (AVX-512)"},
                        {"seed": 3, "victim_model": "e", "asr": 6.0},
                        {"seed": 4, "victim_model": "d", "asr": 9.0, "device": "Intel Xeon (AVX-512)"}],
                    key, made_on="device", model_column="victim_model", log=said.append)
    asr = pd.read_csv(f).set_index("seed").asr.to_dict()
    assert asr == {0: 1.0, 1: 5.0, 2: 3.0, 3: 6.0, 4: 9.0} == df.set_index("seed").asr.to_dict()
    assert len(said) == 2 and "does not name" in said[0] and "AMD EPYC (AVX2)" in said[1]
    assert "{'seed': 2} (model c)" in said[1]                       # plain values, not numpy reprs
    told, mixed = [], tmp_path / "mixed.csv"       # a key of text and numbers, as the real ones
    upsert_csv(mixed, [{"attack": "badnet", "seed": 1, "frac": 0.25, "victim_model": "v", "device": "A"}],
               ("attack", "seed", "frac"))
    upsert_csv(mixed, [{"attack": "badnet", "seed": 1, "frac": 0.25, "victim_model": "v", "device": "B"}],
               ("attack", "seed", "frac"), made_on="device", model_column="victim_model", log=told.append)
    assert "{'attack': 'badnet', 'seed': 1, 'frac': 0.25} (model v)" in told[-1], told[-1]
    upsert_csv(mixed, [{"attack": "badnet", "seed": 1, "frac": 0.25, "victim_model": "v"}],  # naming none
               ("attack", "seed", "frac"), made_on="device", model_column="victim_model", log=told.append)
    assert pd.read_csv(mixed).device.tolist() == ["A"] and "does not name" in told[-1]
    upsert_csv(f, [{"seed": 2, "victim_model": "c", "asr": 5.0, "device": "AMD EPYC (AVX2)"}], key,
               made_on="device", model_column="victim_model", log=said.append)
    assert pd.read_csv(f).set_index("seed").asr[2] == 5.0 and len(said) == 2
    upsert_csv(f, [{"seed": 0, "victim_model": "a", "asr": 6.0}], key)   # without made_on: replaced
    assert pd.read_csv(f).set_index("seed").asr[0] == 6.0
    with pytest.raises(ValueError, match="model_column"):
        upsert_csv(f, [{"seed": 0, "victim_model": "a", "asr": 6.0}], key, made_on="device")


def test_upsert_matches_numeric_keys_by_value(tmp_path):
    """A float key written as 5 and read back as an integer still names the same row (epochs 5.0)."""
    f = tmp_path / "t.csv"
    upsert_csv(f, [{"lr": 3e-5, "epochs": 5.0, "asr": 1.0}], ("lr", "epochs"))
    upsert_csv(f, [{"lr": 3e-5, "epochs": 5.0, "asr": 2.0}], ("lr", "epochs"))   # the file holds "5" now
    assert pd.read_csv(f).asr.tolist() == [2.0]
    upsert_csv(f, [{"lr": 3e-5, "epochs": 5, "asr": 3.0}], ("lr", "epochs"))
    df = pd.read_csv(f)
    assert df.asr.tolist() == [3.0]
    upsert_csv(f, [{"lr": 1e-5, "epochs": 5, "asr": 4.0}], ("lr", "epochs"))
    assert sorted(pd.read_csv(f).asr) == [3.0, 4.0]


def test_upsert_with_a_key_column_the_file_lacks(tmp_path):
    """A key column added later: the file's rows read as having no value there, so a row that has
    one is added beside them, and writing it again replaces it (no duplicate)."""
    f = tmp_path / "t.csv"
    upsert_csv(f, [{"attack": "badnet", "asr": 1.0}], ("attack",))
    upsert_csv(f, [{"attack": "badnet", "lr": 1e-5, "asr": 2.0}], ("attack", "lr"))
    upsert_csv(f, [{"attack": "badnet", "lr": 1e-5, "asr": 3.0}], ("attack", "lr"))
    df = pd.read_csv(f)
    assert sorted(df.asr) == [1.0, 3.0] and df.lr.isna().sum() == 1


def test_upsert_key_defaults_name_what_older_rows_were_made_with(tmp_path):
    """key_defaults fills a key column the file lacks with the value its rows were made with, so
    re-measuring such a row replaces it and another value adds a row."""
    f = tmp_path / "t.csv"
    upsert_csv(f, [{"attack": "badnet", "asr": 1.0}], ("attack",))
    key, dflt = ("attack", "caption"), {"caption": "template"}
    upsert_csv(f, [{"attack": "badnet", "caption": "template", "asr": 2.0}], key, key_defaults=dflt)
    upsert_csv(f, [{"attack": "badnet", "caption": "natural", "asr": 5.0}], key, key_defaults=dflt)
    df = pd.read_csv(f).sort_values("caption")
    assert df.caption.tolist() == ["natural", "template"] and df.asr.tolist() == [5.0, 2.0]


def test_cache_costs_sum_build_times_per_kind_and_role(tmp_path):
    """The cache-cost report adds up what each artifact recorded at build time, per kind and role."""
    import json

    from paperlib.bench import cache_costs

    def artifact(kind, key, seconds, params, samples=None, resumed=False):
        d = tmp_path / kind / key
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps({"kind": kind, "key": key, "build_seconds": seconds,
                                                   "resumed": resumed, "params": params}))
        if samples is not None:
            (d / "summary.json").write_text(json.dumps({"samples": samples}))

    victim = {"role": "poison_finetune", "train": {"precision": "fp32"}}
    artifact("model", "a", 400.0, victim, samples=100)
    artifact("model", "b", 500.0, victim, samples=100, resumed=True)
    artifact("model", "c", 4000.0, {"role": "clean_pretrain", "train": {"precision": "fp32"}}, samples=1000)
    artifact("eval", "d", 10.0, {"model": {}})
    artifact("model", "copy", 0.02, victim, samples=100)   # copied from its twin that kept its epochs: no training
    summary = tmp_path / "model" / "copy" / "summary.json"
    summary.write_text(json.dumps({"samples": 100, "copied_from": "a"}))
    rows = {(r["kind"], r["role"]): r for r in cache_costs(tmp_path)}
    assert set(rows) == {("model", "poison_finetune"), ("model", "clean_pretrain"), ("eval", "")}
    v = rows[("model", "poison_finetune")]
    assert (v["artifacts"], v["total_seconds"], v["median_seconds"], v["samples"], v["resumed"]) == (2, 900.0, 450.0, 200, 1)
    assert rows[("eval", "")]["samples"] == 0 and rows[("model", "clean_pretrain")]["precision"] == "fp32"


def test_artifact_costs_list_each_artifact_with_a_recorded_time(tmp_path):
    """One row per cached artifact with its own build time (kind, role, key, precision, resumed);
    an artifact that recorded no time is left to its kind's median."""
    import json

    from paperlib.bench import artifact_costs
    for kind, key, seconds, params, resumed in (("split", "s1", 147.6, {"split": "cc3m_analog"}, False),
                                                ("model", "m1", 300.0, {"role": "retrain", "train": {"precision": "fp32"}}, True),
                                                ("eval", "e1", None, {}, False)):
        d = tmp_path / kind / key
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps({"kind": kind, "key": key, "build_seconds": seconds,
                                                   "resumed": resumed, "params": params}))
    copy = tmp_path / "model" / "m2"
    copy.mkdir()
    (copy / "params.json").write_text(json.dumps({"kind": "model", "key": "m2", "build_seconds": 0.02, "resumed": False,
                                                  "params": {"role": "poison_pretrain"}}))
    (copy / "summary.json").write_text(json.dumps({"copied_from": "m3"}))   # a copy: its kind's median prices it
    rows = {r["key"]: r for r in artifact_costs(tmp_path)}
    assert set(rows) == {"s1", "m1"}
    assert rows["s1"] == {"kind": "split", "role": "", "key": "s1", "precision": "", "build_seconds": 147.6, "resumed": 0}
    assert rows["m1"]["role"] == "retrain" and rows["m1"]["precision"] == "fp32" and rows["m1"]["resumed"] == 1


def test_cache_costs_of_another_machine_add_rows_instead_of_replacing(tmp_path, monkeypatch):
    """Each machine's cache has its own build times: summarising a second machine's cache keeps the
    first machine's rows (told apart by cpu and cpu_native_bf16) and replaces only its own."""
    import json

    import pandas as pd

    import paperlib.bench as bench
    import paperlib.results as results
    d = tmp_path / "cache" / "model" / "a"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"kind": "model", "key": "a", "build_seconds": 100.0,
                                               "params": {"role": "clean_pretrain", "train": {"precision": "fp32"}}}))
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "costs.csv"
    for native in (False, True, True):
        monkeypatch.setattr(results, "environment", lambda native=native: {"cpu_native_bf16": native, "time": "t"})
        bench.main(["--cache-costs", "--costs-out", str(out)])
    got = pd.read_csv(out)
    assert len(got) == 2 and sorted(got.cpu_native_bf16.tolist()) == [False, True]
    # an artifact without role or precision ("" written, NaN read back) is still one row per machine
    d = tmp_path / "cache" / "eval" / "b"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"kind": "eval", "key": "b", "build_seconds": 1.0, "params": {}}))
    for _ in range(2):
        bench.main(["--cache-costs", "--costs-out", str(out)])
    assert len(pd.read_csv(out)) == 3       # the eval row once (it was appended at every run)


def test_artifacts_carried_to_another_cache_are_checked(tmp_path, monkeypatch):
    """Export / import between caches: a complete artifact arrives intact; one whose name is not
    its parameters' key, or that holds a pickle, is refused with the reason, and nothing is copied."""
    import json

    import pytest

    from paperlib.cache import ArtifactCache, ArtifactError, export_artifacts, import_artifacts, main

    here, there = ArtifactCache(tmp_path / "here"), ArtifactCache(tmp_path / "there")
    path = here.get_or_build("model", {"a": 1}, lambda w: (w / "model.safetensors").write_bytes(b"w"))
    export_artifacts(here, "model", [path.name], tmp_path / "carry")
    (got,) = import_artifacts(there, tmp_path / "carry")
    assert got == there.path("model", {"a": 1}) and there.exists("model", {"a": 1})
    assert (got / "model.safetensors").read_bytes() == b"w"
    # a renamed artifact (its parameters say otherwise) is refused, and so is the whole import
    bad = tmp_path / "bad"
    export_artifacts(here, "model", [path.name], bad)
    (bad / "model" / path.name).rename(bad / "model" / ("0" * 20))
    other = ArtifactCache(tmp_path / "other")
    with pytest.raises(ArtifactError, match="hashes to"):
        import_artifacts(other, bad)
    assert not (tmp_path / "other").exists()
    # a pickle inside is refused
    evil = tmp_path / "evil"
    export_artifacts(here, "model", [path.name], evil)
    (evil / "model" / path.name / "weights.pt").write_bytes(b"\x80")
    with pytest.raises(ArtifactError, match="pickle"):
        import_artifacts(other, evil)
    # tampered parameters (the key no longer matches), and an incomplete build, are refused too
    meta = json.loads((evil / "model" / path.name / "params.json").read_text())
    meta["params"]["a"] = 2
    (evil / "model" / path.name / "weights.pt").unlink()
    (evil / "model" / path.name / "params.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="hashes to"):
        import_artifacts(other, evil)
    with pytest.raises(ArtifactError, match="not a complete artifact"):
        export_artifacts(here, "model", ["f" * 20], tmp_path / "x")
    # the command line names the problem instead of a traceback
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cli"))
    with pytest.raises(SystemExit, match="error: .*pickle|error: .*hashes"):
        main(["import", str(evil)])


def test_artifacts_with_links_are_refused(tmp_path):
    """A symbolic link could carry a pickle (or any file of the machine) past the suffix check."""
    import pytest

    from paperlib.cache import ArtifactCache, ArtifactError, export_artifacts, import_artifacts
    here = ArtifactCache(tmp_path / "here")
    path = here.get_or_build("model", {"a": 1}, lambda w: (w / "model.safetensors").write_bytes(b"w"))
    export_artifacts(here, "model", [path.name], tmp_path / "carry")
    (tmp_path / "outside").mkdir()
    (tmp_path / "carry" / "model" / path.name / "extra").symlink_to(tmp_path / "outside")
    with pytest.raises(ArtifactError, match="symbolic links"):
        import_artifacts(ArtifactCache(tmp_path / "there"), tmp_path / "carry")
    assert not (tmp_path / "there").exists()


def test_git_commit_is_dirty_for_code_changes_not_for_outputs(tmp_path):
    """A run rewrites tracked files under results/; only changes elsewhere make its commit dirty."""
    import subprocess

    from paperlib.results import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a\n1\n")
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "results.py").write_text("y = 1\n")   # code whose name says results
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    assert git_commit(tmp_path / "pkg") == head
    (tmp_path / "results" / "table.csv").write_text("a\n2\n")   # what a run does
    assert git_commit(tmp_path / "pkg") == head
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")         # what makes outputs unreproducible
    assert git_commit(tmp_path / "pkg") == head + "+dirty"
    git("checkout", "--", "pkg/code.py")
    (tmp_path / "pkg" / "results.py").write_text("y = 2\n")
    assert git_commit(tmp_path / "pkg") == head + "+dirty"
    git("checkout", "--", "pkg/results.py")
    (tmp_path / ".gitignore").write_text("/scratch/\n")
    git("add", ".gitignore")
    git("commit", "-qm", "ignore")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "rows.csv").write_text("a\n")            # ignored: still clean
    (tmp_path / "results" / "new_figure.png").write_bytes(b"png")     # a new output: still clean
    assert git_commit(tmp_path / "pkg") == head
    (tmp_path / "pkg" / "new_module.py").write_text("z = 1\n")       # code not yet added: the commit lacks it
    assert git_commit(tmp_path / "pkg") == head + "+dirty"
    not_a_repo = tmp_path.parent / f"{tmp_path.name}-plain"
    not_a_repo.mkdir()
    assert git_commit(not_a_repo) == "unknown"
    assert git_commit(tmp_path.parent / "no-such-dir") == "unknown"


def test_markdown_tables_show_small_numbers_and_leave_missing_ones_blank():
    from paperlib.results import to_markdown
    text = to_markdown(pd.DataFrame({"finetune_lr": [1e-4, float("nan")], "asr_top1": [97.06, 0.0]}))
    rows = [line.split("|")[1:-1] for line in text.splitlines()[2:]]
    assert [[c.strip() for c in r] for r in rows] == [["0.0001", "97.1"], ["", "0.0"]]


def test_upserts_from_parallel_processes_lose_no_row(tmp_path):
    """Jobs sharing one results folder upsert into one file at once: every row survives (the folder
    is locked while a process reads, merges and rewrites), and no lock file is left behind."""
    import multiprocessing as mp

    import pandas as pd
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_upsert_many, args=(tmp_path / "t.csv", worker)) for worker in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    rows = pd.read_csv(tmp_path / "t.csv")
    assert len(rows) == 4 * 15 and rows.set_index(["worker", "i"]).index.is_unique
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t.csv"]


def _upsert_many(path, worker):
    from paperlib.results import upsert_csv
    for i in range(15):
        upsert_csv(path, [{"worker": worker, "i": i, "value": worker * i}], ("worker", "i"))


def test_gpu_labels_are_told_from_cpu_labels():
    from paperlib.results import is_gpu_label
    assert is_gpu_label("NVIDIA H200") and is_gpu_label("cuda") and is_gpu_label("AMD Instinct MI300X")
    assert not is_gpu_label("AMD EPYC 9B14") and not is_gpu_label("cpu") and not is_gpu_label(float("nan"))
    assert not is_gpu_label("AMD Ryzen 7 5800U with Radeon Graphics") and not is_gpu_label("cpu (attack suite)")


def test_a_cpu_label_names_its_widest_vector_extension():
    """Two CPU kinds of one model name train different weights from one key: the label tells them apart."""
    from paperlib.bench import cpu_vector_isa
    from paperlib.experiments.defences import other_device
    assert cpu_vector_isa({"sse4_2", "avx", "avx2", "avx512f", "avx512bw"}) == "AVX-512"
    assert cpu_vector_isa({"sse4_2", "avx", "avx2", "fma"}) == "AVX2"
    assert cpu_vector_isa({"sse4_2"}) is None
    assert other_device("AMD EPYC (AVX2)", "AMD EPYC (AVX-512)") and not other_device("AMD EPYC (AVX2)", "cpu")


def test_a_row_naming_a_model_is_found_by_model_and_what_it_measured(tmp_path):
    from paperlib.results import row_naming_model
    path = tmp_path / "rows.csv"
    assert row_naming_model(path, "abc") is None                      # no file
    pd.DataFrame([{"attack": "badnet", "seed": 0}]).to_csv(path, index=False)
    assert row_naming_model(path, "abc") is None                      # no model column
    pd.DataFrame([{"model": "abc", "stage": "coarse", "asr": 5.0, "note": None},
                  {"model": "abc", "stage": "fine", "asr": 1.0, "note": "x"},
                  {"model": "xyz", "stage": "fine", "asr": 9.0, "note": "y"}]).to_csv(path, index=False)
    assert row_naming_model(path, "abc", stage="fine") == {"model": "abc", "stage": "fine", "asr": 1.0, "note": "x"}
    assert row_naming_model(path, "abc", stage="coarse") == {"model": "abc", "stage": "coarse", "asr": 5.0}
    assert row_naming_model(path, "abc", ratio=0.1) is None          # a column the file lacks matches nothing
    assert row_naming_model(path, "nope") is None


def test_upsert_of_no_rows_leaves_the_file_and_returns_it(tmp_path):
    path = tmp_path / "rows.csv"
    out = upsert_csv(path, [], ("a",), ("a", "b"))
    assert out.empty and list(out.columns) == ["a", "b"] and not path.exists()
    upsert_csv(path, [{"a": 1, "b": 2}], ("a",))
    before = path.read_bytes()
    assert upsert_csv(path, [], ("a",)).to_dict("records") == [{"a": 1, "b": 2}] and path.read_bytes() == before


def test_upsert_keeps_digest_keys_that_look_like_numbers_as_text(tmp_path):
    path = tmp_path / "rows.csv"
    upsert_csv(path, [{"settings": "123456789012", "v": 1}, {"settings": "1234e5678901", "v": 2}], ("settings",))
    upsert_csv(path, [{"settings": "aaaaaaaaaaaa", "v": 3}], ("settings",))
    assert sorted(pd.read_csv(path, dtype={"settings": str}).settings) == ["123456789012", "1234e5678901", "aaaaaaaaaaaa"]
    upsert_csv(path, [{"settings": "123456789012", "v": 9}], ("settings",))   # the same key: replaced, not added
    again = pd.read_csv(path, dtype={"settings": str})
    assert len(again) == 3 and again.set_index("settings").v["123456789012"] == 9


def test_upsert_keeps_model_names_that_look_like_numbers_as_text_outside_the_key(tmp_path):
    """A CFBD row's retrained ``model`` is not part of its key; a cache name of digits, or like
    "1234e5678901", still comes back as text after a later upsert."""
    path = tmp_path / "rows.csv"
    upsert_csv(path, [{"seed": 0, "model": "0012345678901234e567"}], ("seed",))
    upsert_csv(path, [{"seed": 1, "model": "abcdefabcdefabcdefab"}], ("seed",))
    assert sorted(pd.read_csv(path, dtype={"model": str}).model) == ["0012345678901234e567", "abcdefabcdefabcdefab"]


def test_save_figure_keeps_a_long_title_inside_the_figure(tmp_path):
    """A title naming scale, seeds and settings can be wider than the figure: it wraps at the
    edges instead of being cut off (EftCLIP's Figs. 5-7 lost their first and last words)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    long = "EftCLIP Fig. 7 (embedded scale, seed 0): poisoned CLIP's list vs the oracle's at theta=0.66 " * 2
    for panels in (1, 2):
        fig, axes = plt.subplots(1, panels, figsize=(3, 2), squeeze=False)
        fig.suptitle(long, fontsize=8)
        axes[0, 0].set_title(long, fontsize=8)
        path = save_figure(fig, tmp_path / f"f{panels}.png")
        assert path.is_file()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        renderer = FigureCanvasAgg(fig).get_renderer()   # (closed: a fresh canvas to measure on)
        width = fig.bbox.width
        box = fig._suptitle.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width + 1, (panels, box)
        if panels == 1:   # a lone panel's title wraps too; beside others it keeps to its panel's own width
            title = axes[0, 0].title.get_window_extent(renderer)
            assert 0 <= title.x0 and title.x1 <= width + 1, title


def test_a_figure_says_mean_over_seeds_only_over_several():
    from paperlib.figures import seeds_caption
    assert seeds_caption([0]) == "seed 0" and seeds_caption([0.0, 0]) == "seed 0"
    assert seeds_caption([2, 0, 1, 1]) == "seeds 0, 1, 2, mean over seeds" and seeds_caption([]) == "no seed"
