"""The training loop under torchrun (DDP, gloo on the CPU): ranks stay in sync and learn."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_two_rank_ddp_training_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           str(HERE / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["hash"] == r1["hash"], "DDP ranks ended with different weights"
    assert r0["steps"] == 6 * (64 // 16)   # global batch 16 = 2 ranks x 8
    assert r0["loss"] < 0.8 * math.log(16)


@pytest.mark.slow
def test_two_rank_roclip_shares_one_memory_bank(tmp_path):
    """Under DDP every rank pushes the global batch's captions, so the ranks' banks are identical
    (a checkpoint written by rank 0 is right for all) and hold the whole bank size, not half."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29532",
           str(HERE / "ddp_worker.py"), str(tmp_path), "cpu", "roclip"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["hash"] == r1["hash"]
    assert r0["bank_rows"] == r1["bank_rows"] == 48
    assert r0["bank_hash"] == r1["bank_hash"], "the ranks' RoCLIP memory banks differ"
