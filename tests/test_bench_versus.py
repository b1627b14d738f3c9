"""paperlib.bench --versus: the side-by-side run of paperlib's loop and open_clip_train.

What is tested is that both trainers are given the same run and that the rates are read from
their step times correctly; the rates themselves are measured by the benchmark, never asserted.
"""
import pandas as pd
import pytest

from paperlib import bench_versus as bv

LOG = """2026-12-03,15:00:01 | INFO | Running with a single process. Device cpu.
2026-12-03,15:00:05 | INFO | Train Epoch: 0 [ 16/48 (33%)] Data (t): 0.210 Batch (t): 1.500, 10.6667/s, 10.6667/s/gpu LR: 0.000050 Logit Scale: 14.286 Contrastive_loss: 2.7 (2.7) Loss: 2.7 (2.7)
2026-12-03,15:00:06 | INFO | Train Epoch: 0 [ 32/48 (67%)] Data (t): 0.010 Batch (t): 0.400, 40.0000/s, 40.0000/s/gpu LR: 0.000100 Logit Scale: 14.286 Contrastive_loss: 2.7 (2.7) Loss: 2.7 (2.7)
2026-12-03,15:00:07 | INFO | Train Epoch: 0 [ 48/48 (100%)] Data (t): 0.010 Batch (t): 0.600, 26.6667/s, 26.6667/s/gpu LR: 0.000090 Logit Scale: 14.286 Contrastive_loss: 2.7 (2.7) Loss: 2.7 (2.7)
"""


def test_step_times_are_read_per_step_and_the_warmup_is_left_out():
    steps = bv.parse_steps(LOG, batch_size=16)
    # each step's seconds from its rate (16 pairs / rate), its data wait from "Data (t)"
    assert [round(t, 4) for t, _ in steps] == [1.5, 0.4, 0.6] and [d for _, d in steps] == [0.21, 0.01, 0.01]
    times = [t for t, _ in steps]
    assert bv._steady_seconds(times, warmup=1) == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ValueError, match="no timed steps"):
        bv._steady_seconds(times, warmup=3)


def test_open_clip_train_gets_the_same_run():
    args = bv.open_clip_train_args("tiny-rn64", "synthetic", "bf16", 32, 2, 5, 2, "/tmp/logs")
    opts = dict(zip(args[::2], args[1::2]))
    assert opts["--model"] == "tiny-rn64" and opts["--batch-size"] == "32"
    assert float(opts["--lr"]) == bv.LR and float(opts["--wd"]) == bv.WEIGHT_DECAY
    assert (float(opts["--beta1"]), float(opts["--beta2"])) == bv.BETAS and float(opts["--eps"]) == bv.EPS
    assert float(opts["--grad-clip-norm"]) == bv.GRAD_CLIP and opts["--warmup"] == "2"
    assert opts["--precision"] == "amp_bf16" and opts["--device"] == "cpu"
    assert opts["--train-num-samples"] == str(32 * 7)           # warm-up and timed steps, one epoch
    assert opts["--log-every-n-steps"] == "1" and opts["--save-frequency"] == "0"
    csv_args = bv.open_clip_train_args("tiny-rn64", "csv", "fp32", 32, 2, 5, 2, "/tmp/logs", "/d/pairs.csv")
    csv_opts = dict(zip(csv_args[::2], csv_args[1::2]))
    assert csv_opts["--dataset-type"] == "csv" and csv_opts["--train-data"] == "/d/pairs.csv"
    assert (csv_opts["--csv-img-key"], csv_opts["--csv-caption-key"]) == ("filepath", "title")
    assert csv_opts["--precision"] == "fp32"


def test_flops_per_pair_do_not_depend_on_the_batch():
    small, large = bv.flops_per_pair("tiny-rn64", batch_size=2), bv.flops_per_pair("tiny-rn64", batch_size=4)
    assert small > 1e8
    # the contrastive loss's B x B logits are the only term that grows with the batch
    assert large == pytest.approx(small, rel=0.01)


def test_a_tiny_side_by_side_run_gives_one_row_per_trainer_data_and_precision(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    lines = []
    rows = bv.compare(batch_size=4, warmup=1, steps=1, repeats=1, threads=1, workers=0,
                      precisions=("fp32",), folder=tmp_path, log=lines.append)
    table = pd.DataFrame(rows).set_index(["trainer", "data"])
    assert sorted(table.index) == [("open_clip_train", "csv"), ("open_clip_train", "synthetic"),
                                   ("paperlib", "csv"), ("paperlib", "synthetic")]
    assert (table["samples_per_second"] > 0).all() and (table["fraction_of_peak"] > 0).all()
    assert table["pipeline"].nunique() == 4          # each row says how its trainer fed the data
    assert not (tmp_path / "cache" / "split").exists()   # the exported scenes stay in the folder given
    for data in ("csv", "synthetic"):
        ours, theirs = table.loc[("paperlib", data)], table.loc[("open_clip_train", data)]
        assert ours["speedup_vs_open_clip_train"] == pytest.approx(
            ours["samples_per_second"] / theirs["samples_per_second"], abs=0.01)
    exported = pd.read_csv(tmp_path / "versus_csv" / "pairs.csv")
    assert list(exported.columns) == ["filepath", "title"] and len(exported) == 4 * 2
    assert any("about" in line and "left" in line for line in lines)   # progress with an estimate
    profile = pd.DataFrame(bv.step_profile(batch_size=4, steps=1, threads=1, workers=0, data="csv",
                                           csv=tmp_path / "versus_csv" / "pairs.csv"))
    assert list(profile["phase"]) == ["data", "forward", "backward", "optimizer"]
    assert profile["share"].sum() == pytest.approx(1.0)
