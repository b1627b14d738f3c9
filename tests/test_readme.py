"""The README: its results at a glance are what paperlib.readme makes of the committed results files,
it stays short, keeps CI's test command, and every link in it and in docs/ leads to a file.  Light:
reads small CSV files and Markdown."""
import re
from pathlib import Path

import pandas as pd
import pytest

from paperlib import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_glance_section_is_the_one_the_committed_results_give():
    text = (ROOT / "README.md").read_text()
    assert readme.render(text, ROOT / "results") == text, "run python -m paperlib.readme"
    section = text.split(readme.BEGIN, 1)[1].split(readme.END, 1)[0]
    for p in readme.PAPERS:
        assert f"| {p.name} |" in section and f"docs/deviations-{p.id}.md" in section
        assert f"results/{p.id}/{p.id}.ipynb" in section


def test_the_glance_opens_with_the_papers_and_leaves_the_device_check_to_docs():
    """Issue 24 item 3: the first table of the section is the papers' (verdicts, headline, citation
    with an arXiv or OpenReview identifier); the victims and defences follow; the CPU/GPU device
    check lives in docs/gpu.md, between its markers, written from device_check.csv."""
    text = (ROOT / "README.md").read_text()
    section = text.split(readme.BEGIN, 1)[1].split(readme.END, 1)[0]
    first_table = next(line for line in section.splitlines() if line.startswith("| "))
    assert first_table.startswith("| paper | claims")
    assert section.index("| paper | claims") < section.index("The papers (")
    if "**New victims**" in section:
        assert section.index("The papers (") < section.index("**New victims**")
    assert "Same cache key, two devices" not in section and "](docs/gpu.md)" in section
    for p in readme.PAPERS:
        assert re.search(r"arXiv:\d{4}\.\d{5}|OpenReview id \w+", p.citation), p.name
    gpu = (ROOT / readme.GPU_FILE).read_text()
    assert readme.render_gpu_docs(gpu, ROOT / "results") == gpu, "run python -m paperlib.readme"
    body = gpu.split(readme.GPU_BEGIN, 1)[1].split(readme.GPU_END, 1)[0]
    assert "](../results/defences/device_check.csv)" in body and "](results/" not in body
    empty = readme.render_gpu_docs(f"a\n{readme.GPU_BEGIN}\nold\n{readme.GPU_END}\nb", Path("nowhere"))
    assert "old" not in empty and "no model trained on both devices yet" in empty


def test_the_fresh_clone_times_are_the_ones_the_benchmark_file_gives():
    text = (ROOT / "README.md").read_text()
    assert readme.render_fresh(text, ROOT / "results") == text, "run python -m paperlib.readme"


def test_the_defence_docs_table_is_the_one_the_committed_results_give(tmp_path):
    """docs/defences.md's table of the new victims is written from the matrix summary, with links
    relative to docs/; a file without its markers is refused by name."""
    text = (ROOT / readme.DOCS_FILE).read_text()
    assert readme.render_docs(text, ROOT / "results") == text, "run python -m paperlib.readme"
    section = text.split(readme.DOCS_BEGIN, 1)[1].split(readme.DOCS_END, 1)[0]
    assert "](results/" not in section
    if "| attack (seeds) |" in section:
        assert "](../results/defences/matrix_summary.csv)" in section
    with pytest.raises(ValueError, match="docs/defences.md"):
        readme.render_docs("no markers", ROOT / "results")
    # with no matrix summary the section says so instead of keeping a stale table
    empty = readme.render_docs(f"a\n{readme.DOCS_BEGIN}\nold\n{readme.DOCS_END}\nb", tmp_path)
    assert "old" not in empty and "no rows of the new victims yet" in empty


def test_cfbds_goals_in_the_docs_are_the_ones_the_committed_rows_give(tmp_path, monkeypatch):
    """docs/deviations-cfbd.md's goals table is written from the committed CFBD rows, the same from
    any folder, without building anything (the shipped base named, not imported into the cache),
    and under CPU keys even where torch sees a GPU; with no rows it says so."""
    import torch
    text = (ROOT / readme.CFBD_GOALS_FILE).read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert readme.render_cfbd_goals(text, ROOT / "results") == text, "run python -m paperlib.readme"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("DONE"))
    empty = readme.render_cfbd_goals(f"a\n{readme.CFBD_GOALS_BEGIN}\nold\n{readme.CFBD_GOALS_END}\nb", tmp_path)
    assert "old" not in empty and "no CFBD rows of these settings yet" in empty


def test_the_readme_is_short_and_keeps_the_command_ci_runs():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 15 * 1024
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test   # set everything up, then run the test suite (CI runs exactly this through .ci/run)" in text


def _links(path: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if not re.match(r"^[a-z]+://", target) and not target.startswith("#"):
            yield target.split("#", 1)[0]


@pytest.mark.parametrize("doc", ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
def test_every_relative_link_leads_to_a_file(doc):
    path = ROOT / doc
    broken = [t for t in _links(path) if not (path.parent / t).exists()]
    assert not broken, f"{doc}: {broken}"


def test_the_counts_follow_the_collected_verdicts_once_they_exist(tmp_path):
    """Old per-paper files count yes / no / not measured as holds / fails / inconclusive, labelled; a
    results/claims.csv with a paper's rows takes over for that paper."""
    import shutil
    res = tmp_path / "results"
    for p in readme.PAPERS:
        shutil.copytree(ROOT / "results" / p.id, res / p.id,
                        ignore=shutil.ignore_patterns("*.ipynb", "*.png", "*.json"))
    old = readme.glance(res)
    # papers whose own claims.csv is of the old code (a yes / no `holds` column, no `verdict`)
    n_old = sum("verdict" not in pd.read_csv(res / p.id / "claims.csv").columns for p in readme.PAPERS)
    assert old.count("old yes/no verdicts, pre-SEM rule") == n_old
    pd.DataFrame([{"paper": "abd", "scale": "embedded", "claim": c, "paper_value": "", "ours": "", "spread": "",
                   "n_seeds": 3, "verdict": v} for c, v in (("a", "holds"), ("b", "inconclusive"), ("c", "inconclusive"))]
                 ).to_csv(res / "claims.csv", index=False)
    new = readme.glance(res)
    row = next(line for line in new.splitlines() if line.startswith("| ABD |"))
    assert "| 1 / 0 / 2 (embedded; [`results/claims.csv`](results/claims.csv), two-SEM rule)" in row
    abd_old = "verdict" not in pd.read_csv(res / "abd" / "claims.csv").columns
    assert new.count("old yes/no verdicts, pre-SEM rule") == n_old - abd_old


def test_the_new_victims_paragraph_reads_the_recipes_rows(tmp_path):
    """The glance's paragraph on the new victims: only rows of the parameter file's recipe, each
    attack's mean ± std over its seeds; nothing when there are none."""
    from paperlib.readme import new_victims
    params = tmp_path / "v.yaml"
    params.write_text("victims:\n  - &r {attack: badnet, poison: {poison_count: 500, caption: natural},\n"
                      "     finetune_scenes: 50000, finetune: {epochs: 1, lr: 1.0e-4}}\n"
                      "  - {<<: *r, attack: blended, attack_params: {}}\n")
    (tmp_path / "attacks").mkdir()
    assert new_victims(tmp_path, params) == ""
    row = dict(attack="badnet", threat_model="finetune", poison_caption="natural", finetune_lr=1e-4,
               finetune_epochs=1.0, finetune_scenes=50000, base_ca_top1=27.87, poison_count=500,
               attack_params='{"patch_fraction": 0.25, "position": "bottom_right"}')   # BadNet's trigger in the suite the entry
    # completes from (the embedded scale's: attacks/embedded-victims.yaml)
    pd.DataFrame([{**row, "seed": 0, "asr_top1": 96.0, "ca_top1": 25.0},
                  {**row, "seed": 1, "asr_top1": 98.0, "ca_top1": 26.0},
                  {**row, "seed": 0, "poison_caption": "template", "asr_top1": 16.0, "ca_top1": 24.0},
                  {**row, "seed": 2, "attack_params": '{"patch_fraction": 0.1}', "asr_top1": 10.0, "ca_top1": 27.0},
                  {**row, "seed": 0, "attack": "blended", "attack_params": "{}", "asr_top1": 90.0, "ca_top1": 26.5},
                  # another trigger than the file's (Blended's defaults): not counted
                  {**row, "seed": 1, "attack": "blended", "attack_params": '{"alpha": 0.3}', "asr_top1": 50.0,
                   "ca_top1": 26.5}]
                 ).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    text = new_victims(tmp_path, params)
    assert "BadNet 97.0 ± 1.4 at clean 25.5 ± 0.7 (2 seeds)" in text
    assert "Blended 90.0 at clean 26.5 (1 seed)" in text and "16.0" not in text and "50.0" not in text
    assert "1% of them poisoned" in text and "one pass at lr 1e-4" in text


def test_the_defence_table_reads_the_budgets_lines_of_the_recipe(tmp_path):
    """The glance's table of the matrix on the new victims: a line per attack of the file with rows,
    each defence's ASR / clean top-1 at the file's budget beside the papers' range; other budgets
    and recipes left out; nothing without lines."""
    from paperlib.readme import new_matrix
    params = tmp_path / "d.yaml"
    (tmp_path / "b.safetensors").write_bytes(b"")
    (tmp_path / "b.json").write_text('{"base_model": "b0"}')          # the shipped base's key beside it
    params.write_text(f"scale: embedded\nseeds: [0, 1]\nbase_checkpoint: {tmp_path / 'b.safetensors'}\n"
                      "victims:\n  - &r {attack: badnet, attack_params: {patch_fraction: 0.25},\n"
                      "     poison: {poison_count: 500, caption: natural},\n"
                      "     finetune_scenes: 50000, finetune: {epochs: 1, lr: 1.0e-4}}\n"
                      "  - {<<: *r, attack: blended, attack_params: {}}\n"
                      "defence: {methods: [ft, abd], clean_scenes: 5000, train: {epochs: 5, batch_size: 128, lr: 1.0e-4}}\n")
    (tmp_path / "defences").mkdir()
    assert new_matrix(tmp_path, params) == ""
    from paperlib.experiments import defences
    from paperlib.experiments.matrix_summary import settings_json
    cfg = defences.load(params).defence
    ft, abd = (settings_json(cfg.config(d, "badnet")) for d in ("ft", "abd"))
    row = dict(attack="badnet", threat_model="finetune", poison_caption="natural", finetune_lr=1e-4,
               finetune_epochs=1.0, finetune_scenes=50000, poison_count=500,
               attack_params='{"patch_fraction": 0.25, "position": "bottom_right"}',   # completed from the scale's suite
               seeds="0 1", devices="cpu A", defence_samples=24960, scale="embedded", base_model="b0", papers_asr_low=float("nan"), papers_asr_high=float("nan"))
    pd.DataFrame([{**row, "defence": "none", "defence_lr": None, "asr_top1_mean": 98.0, "ca_top1_mean": 26.0,
                   "papers_asr_low": 91.28, "papers_asr_high": 100.0},
                  {**row, "defence": "ft", "defence_lr": 1e-4, "asr_top1_mean": 75.0, "ca_top1_mean": 26.1,
                   "papers_asr_low": 62.14, "papers_asr_high": 66.41, "defence_settings": ft},
                  {**row, "defence": "ft", "defence_lr": 3e-5, "asr_top1_mean": 90.0, "ca_top1_mean": 26.2,
                   "defence_settings": ft},
                  {**row, "defence": "ft", "defence_lr": 1e-4, "defence_samples": 99840, "asr_top1_mean": 33.3,
                   "ca_top1_mean": 26.2, "defence_settings": ft},
                  {**row, "defence": "abd", "defence_lr": 1e-4, "seeds": "0", "asr_top1_mean": 1.5, "ca_top1_mean": 24.0,
                   "papers_asr_low": 5.36, "papers_asr_high": 5.36, "defence_settings": abd},
                  # ABD with other settings (a variant, or rows written before the column): not this file's
                  {**row, "defence": "abd", "defence_lr": 1e-4, "asr_top1_mean": 44.4, "ca_top1_mean": 24.0,
                   "defence_settings": abd.replace("}", ', "x": 1}')},
                  {**row, "poison_count": 1000, "defence": "ft", "defence_lr": 1e-4, "asr_top1_mean": 11.1,
                   "ca_top1_mean": 11.1, "defence_settings": ft},
                  # the same recipe on another clean base, and at another scale: not this file's world
                  {**row, "base_model": "b1", "defence": "ft", "defence_lr": 1e-4, "asr_top1_mean": 55.5,
                   "ca_top1_mean": 20.0, "defence_settings": ft},
                  {**row, "scale": "smoke", "defence": "ft", "defence_lr": 1e-4, "asr_top1_mean": 66.6,
                   "ca_top1_mean": 20.0, "defence_settings": ft}]).to_csv(tmp_path / "defences" / "matrix_summary.csv", index=False)
    text = new_matrix(tmp_path, params)
    assert "| BadNet (0-1) | 98.0 / 26.0 [91–100] | 75.0 / 26.1 [62–66] | 1.5 / 24.0 (seed 0) [5.4] |" in text
    assert "90.0" not in text and "11.1" not in text and "33.3" not in text and "44.4" not in text
    assert "55.5" not in text and "66.6" not in text
    # every line at one seed: the seeds column still reads as text
    one = pd.read_csv(tmp_path / "defences" / "matrix_summary.csv")
    one[one.seeds == "0 1"].assign(seeds="0").to_csv(tmp_path / "defences" / "matrix_summary.csv", index=False)
    assert "| BadNet (0) | 98.0 / 26.0 [91–100] | 75.0 / 26.1 [62–66] |" in new_matrix(tmp_path, params) and "Blended" not in text
    # every planned model has its line: the table says all, not in progress
    lines = []
    for attack, params_json in (("badnet", row["attack_params"]), ("blended", "{}")):
        at = {**row, "attack": attack, "attack_params": params_json}
        lines += [{**at, "defence": "none", "defence_lr": None, "asr_top1_mean": 98.0, "ca_top1_mean": 26.0}]
        lines += [{**at, "defence": d, "defence_lr": 1e-4, "asr_top1_mean": 50.0, "ca_top1_mean": 25.0,
                   "defence_settings": settings_json(cfg.config(d, attack))} for d in ("ft", "abd")]
    pd.DataFrame(lines).to_csv(tmp_path / "defences" / "matrix_summary.csv", index=False)
    assert "all 8 defended models" in new_matrix(tmp_path, params)
    assert "3 of 8 defended models" in text and "embedded scale, on cpu A" in text
    # the none column beside the attack suite's victims of the same recipe: named where over a point apart
    assert "The `none` column" not in new_matrix(tmp_path, params)        # no victims.csv: nothing to compare
    (tmp_path / "attacks").mkdir()
    suite = {k: row[k] for k in ("attack", "threat_model", "poison_caption", "finetune_lr", "finetune_epochs",
                                 "finetune_scenes", "poison_count", "attack_params")}
    pd.DataFrame([{**suite, "seed": 0, "asr_top1": 97.5}, {**suite, "seed": 1, "asr_top1": 98.1},
                  {**suite, "seed": 7, "asr_top1": 10.0},                 # a seed the matrix's line does not hold
                  {**suite, "attack": "blended", "attack_params": "{}", "seed": 0, "asr_top1": 80.0}]).to_csv(
        tmp_path / "attacks" / "victims.csv", index=False)
    apart = new_matrix(tmp_path, params)
    assert "for Blended, 98.0 against 80.0 (the matrix's victims made on cpu A)" in apart and "BadNet, " not in apart


def test_the_device_check_sentence_pairs_models_and_names_those_beyond_the_limit(tmp_path):
    (tmp_path / "defences").mkdir()
    rows = []
    for attack, defence, model, cpu, gpu in (("sig", "none", "a", 50.0, 50.5), ("sig", "ft", "b", 10.0, 9.0),
                                             ("ssba", "none", "c", 40.0, 60.0), ("ssba", "none", "d", 45.0, 62.0)):
        for device, asr in (("AMD EPYC", cpu), ("NVIDIA H200", gpu)):
            rows.append({"attack": attack, "defence": defence, "scale": "embedded", "seed": 0, "model": model,
                         "device": device, "asr_top1": asr, "ca_top1": 25.0 if device == "AMD EPYC" else 25.4})
    rows.append({**rows[0], "model": "only-on-cpu"})   # no partner: not counted
    pd.DataFrame(rows).to_csv(tmp_path / "defences" / "device_check.csv", index=False)
    text = readme.device_check(tmp_path)
    assert "4 models trained both on a CPU and on NVIDIA H200" in text
    assert "clean top-1 by at most 0.4" in text and "2 of them within 3 points" in text
    assert "SSBA victims (2): +17.0 to +20.0" in text and "SIG" not in text
    assert readme.device_check(tmp_path / "nothing") == ""


def test_the_glance_names_the_papers_run_on_the_shipped_base(tmp_path):
    import json
    (tmp_path / "abd").mkdir()
    (tmp_path / "abd" / "manifest_embedded.json").write_text(json.dumps(
        {"params": {"base_checkpoint": "paperlib/bases/tiny-rn64-embedded.safetensors"}}))
    (tmp_path / "cfbd").mkdir()
    (tmp_path / "cfbd" / "manifest_embedded.json").write_text(json.dumps({"params": str({"base_checkpoint": None})}))
    assert readme.on_shipped_base(tmp_path, "abd") and not readme.on_shipped_base(tmp_path, "cfbd")
    assert not readme.on_shipped_base(tmp_path, "eftclip")            # no manifest: not run
    first = readme.which_runs(tmp_path)
    assert first.startswith("Executed on the new victims and methods (the shipped clean base, issues 22-23): ABD.")
    assert first.endswith("to be re-made: EftCLIP, CleanerCLIP, CFBD. ")
    assert readme.which_runs(tmp_path / "none").startswith("All made on the old base")


def test_every_manifest_written_from_a_modified_checkout_is_named_in_the_provenance_doc():
    import json
    doc = (ROOT / "docs" / "provenance.md").read_text()
    doc = doc.split("## Manifests written from a modified checkout", 1)[1].split("\n## ", 1)[0]   # that section only
    dirty = []
    for path in sorted((ROOT / "results").rglob("*.json")):
        env = json.loads(path.read_text()).get("environment")
        if isinstance(env, dict) and str(env.get("commit", "")).endswith("+dirty"):
            rel = path.relative_to(ROOT).as_posix()
            dirty.append(rel)
            assert f"`{rel}` | {env['commit'][:7]} |" in doc, f"{rel} ({env['commit']}) is not in docs/provenance.md's table"
    assert len(dirty) == doc.count("| `results/"), "the provenance table names a manifest that is not +dirty"


def test_eftclips_budget_study_in_the_docs_is_the_one_the_committed_rows_give(tmp_path, monkeypatch):
    """docs/deviations-eftclip.md's budget table is written from the committed budget rows of the
    embedded file's pre-training victims, without building anything."""
    text = (ROOT / readme.BUDGET_FILE).read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    assert readme.render_budget(text, ROOT / "results") == text, "run python -m paperlib.readme"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("DONE"))
    assert "| badnet | CleanCLIP (5,000) | 5, 1e-4 (the matrix's) |" in text


def test_the_foundations_poison_curve_in_the_docs_is_the_one_the_committed_rows_give(tmp_path, monkeypatch):
    """docs/foundation.md's poison-curve table is written from the committed curve rows of the shipped
    base at the foundation file's seeds; a row of another seed or base does not enter it."""
    import pandas as pd

    from paperlib.experiments import foundation
    from paperlib.experiments.foundation_report import curve_markdown
    text = (ROOT / readme.CURVE_FILE).read_text()
    monkeypatch.chdir(tmp_path)
    assert readme.render_curve(text, ROOT / "results") == text, "run python -m paperlib.readme"
    p = readme._cpu_params(foundation.load, readme.FOUNDATION_PARAMS, ROOT / "results")
    rows = [{"attack": "badnet", "threat_model": "finetune", "base_model": "0a2f939564f40c4eb1c0",
             "scale": "embedded", "seed": s, "finetune_scenes": 50000, "finetune_lr": 1e-4, "finetune_epochs": 1,
             "patch_fraction": 0.25, "poison_count": 150, "asr_top1": a, "ca_top1": 26.0}
            for s, a in ((0, 40.0), (1, 60.0), (7, 99.0))]
    rows += [{**rows[0], "base_model": "another", "asr_top1": 1.0}, {**rows[0], "finetune_lr": 5e-4, "asr_top1": 2.0}]
    table = curve_markdown(pd.DataFrame(rows), p)
    assert "| 16 px | 150 (0.3%) | 40.0 / 26.0 | 60.0 / 26.0 | 50.0 ± 14.1 / 26.0 ± 0.0 |" in table, table
    assert "seed 7" not in table and "99.0" not in table and "| 1.0 /" not in table and "2.0 /" not in table
