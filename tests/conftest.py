"""Shared pytest set-up.

Under pytest-xdist (`make test` runs `-n 2` on the 2-core CI machine) every worker
is its own process, and torch would give each of them one OpenMP thread per core:
two workers then run four busy threads on two cores, and OpenMP's spin-waiting
makes that several times slower than one thread each (the foundation notebook's
smoke run: 81 s alone, 419 s oversubscribed). So each worker gets
cores // workers threads, and the environment variables carry the same limit to
the processes a test starts (papermill kernels, torchrun workers).
"""
import os

import pytest

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def interrupt_after_epoch():
    """A training callback that stops a run at the end of epoch ``n`` (as a killed process would,
    after its last checkpoint), and the exception it raises: ``interrupt_after_epoch.Interrupted``."""
    class Interrupted(Exception):
        pass

    def make(n: int = 1):
        def callback(event, state):
            if event == "epoch_end" and state["epoch"] == n:
                raise Interrupted
        return callback
    make.Interrupted = Interrupted
    return make


@pytest.fixture(scope="module")
def wn():
    """WordNet as the project reads it (``lexicon.wordnet``); the test is skipped where it is not
    set up (a machine without ``make setup``)."""
    from paperlib.assets import AssetMissingError
    from paperlib.text.lexicon import wordnet
    try:
        return wordnet()
    except AssetMissingError as err:  # pragma: no cover - only without `make setup`
        pytest.skip(str(err))
