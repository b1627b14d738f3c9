"""The training loop: loss goes down, checkpoints resume exactly, optimiser groups and schedule."""
import numpy as np
import pytest
import torch

from paperlib.models import create_model, load_checkpoint, save_checkpoint
from paperlib.train.loop import TrainConfig, train
from paperlib.train.losses import ClipLossTerm, info_nce
from paperlib.train.optim import param_groups, warmup_cosine
from paperlib.train.pairs import TensorPairs


def _pairs(n=64, side=64, seed=0):
    """Images whose colour encodes one of 4 classes; captions name the class."""
    from paperlib.models import get_tokenizer
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    images = np.repeat(np.repeat(palette[labels][:, None, None, :], side, 1), side, 2)
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    names = ["red", "green", "blue", "yellow"]
    tokens = get_tokenizer("tiny-rn64")([f"a {names[l]} square" for l in labels]).numpy()
    return TensorPairs(images, tokens)


def _params(model):
    return torch.cat([p.detach().flatten().float() for p in model.parameters()])


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = 10 * a @ a.t()
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(2))
    assert info_nce(a, a, 10.0).item() == pytest.approx(expected.item())
    # the loss is smallest when the pairs are aligned
    assert info_nce(a, a, 10.0) < info_nce(a, a.flip(0), 10.0)


def test_warmup_cosine():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)


def test_no_decay_on_norms_biases_and_logit_scale():
    model = create_model("tiny-rn64", seed=0)
    decay, plain = param_groups(model, 0.1)
    plain_ids = {id(p) for p in plain["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in plain_ids}
    assert "logit_scale" in names
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(n.endswith("bias") for n in names) and any("ln" in n for n in names)
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0


def test_loss_decreases():
    torch.manual_seed(0)
    model = create_model("tiny-rn64", seed=0)
    pairs = _pairs()
    cfg = TrainConfig(epochs=8, batch_size=16, lr=1e-3, warmup_steps=2, log_every=1)
    out = train(model, pairs, cfg, [(ClipLossTerm(), 1.0)])
    assert out["steps"] == 32
    assert out["final_losses"]["clip"] < np.log(16) * 0.8


def test_resume_from_checkpoint_is_exact(tmp_path, interrupt_after_epoch):
    pairs = _pairs()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, warmup_steps=2, checkpoint_every=3)
    full = create_model("tiny-rn64", seed=0)
    train(full, pairs, cfg, [(ClipLossTerm(), 1.0)], work_dir=tmp_path / "full")
    # interrupted run: 1 epoch worth (checkpoint written at step 3), then a fresh process resumes
    part = create_model("tiny-rn64", seed=0)
    short = TrainConfig(**{**cfg.__dict__, "epochs": 2})
    work = tmp_path / "part"

    with pytest.raises(interrupt_after_epoch.Interrupted):
        train(part, pairs, short, [(ClipLossTerm(), 1.0)], work_dir=work, callbacks=[interrupt_after_epoch(1)])
    resumed = create_model("tiny-rn64", seed=0)
    train(resumed, pairs, short, [(ClipLossTerm(), 1.0)], work_dir=work)
    assert torch.allclose(_params(full), _params(resumed), atol=1e-6)


def test_safetensors_roundtrip_and_no_pickle(tmp_path):
    a = create_model("tiny-rn64", seed=1)
    save_checkpoint(a, tmp_path / "m.safetensors")
    b = load_checkpoint(create_model("tiny-rn64", seed=2), tmp_path / "m.safetensors")
    assert torch.equal(_params(a), _params(b))
    torch.save(a.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(b, tmp_path / "m.pt")


def _bad_weights(path, content):
    """A file named like a checkpoint that is not one: a pickle (torch.save), random or no bytes."""
    if content == "pickle":
        torch.save(create_model("tiny-rn64", seed=0).state_dict(), path)
    else:
        path.write_bytes(np.random.default_rng(0).bytes(4096) if content == "random" else b"")
    return path


@pytest.mark.parametrize("content", ["pickle", "random", "empty"])
def test_a_corrupt_or_mislabelled_checkpoint_names_the_file_and_what_is_valid(tmp_path, content):
    from paperlib.models import load_model
    path = _bad_weights(tmp_path / "rn50.safetensors", content)
    with pytest.raises(ValueError) as e:
        load_model("tiny-rn64", path)
    msg = str(e.value)
    assert str(path) in msg and "not a safetensors file" in msg
    assert "save_checkpoint" in msg and "README" in msg          # what would be valid, and where it is said


def test_a_checkpoint_of_another_architecture_names_the_file_and_the_model(tmp_path):
    from paperlib.models import load_model
    save_checkpoint(create_model("tiny-rn64", seed=0), tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError) as e:
        load_model("small-rn64", tmp_path / "tiny.safetensors")
    assert str(tmp_path / "tiny.safetensors") in str(e.value) and "small-rn64" in str(e.value)


def test_a_damaged_cached_weights_file_says_to_rebuild_its_artifact(tmp_path):
    """Weights the project wrote into its cache (a trigger, a classifier, optimiser state) are read
    through the same check; a damaged one names the artifact folder to delete."""
    from paperlib.models import read_safetensors
    art = tmp_path / "classifier" / "0123abcd"
    art.mkdir(parents=True)
    (art / "params.json").write_text("{}")
    (art / "DONE").write_text("")
    path = _bad_weights(art / "classifier.safetensors", "random")
    with pytest.raises(ValueError) as e:
        read_safetensors(path)
    assert str(path) in str(e.value) and f"delete {art}" in str(e.value)


def test_an_external_base_that_is_not_safetensors_is_refused_before_use(tmp_path):
    from paperlib.pipeline import external_model
    path = _bad_weights(tmp_path / "openai-rn50.safetensors", "pickle")
    with pytest.raises(ValueError) as e:
        external_model("tiny-rn64", path)
    assert "base_checkpoint" in str(e.value) and str(path) in str(e.value) and "README" in str(e.value)


def test_precision_auto_resolves_by_device_and_keys_the_resolved_value(monkeypatch):
    """``auto`` is bf16 on CUDA and fp32 on every CPU, with or without native bf16, so the same
    parameters train the same artifacts on any CPU; the cache key holds what it resolved to, so
    artifacts trained in bf16 and in fp32 never share a key, and an explicit choice is kept."""
    import paperlib.train.loop as loop
    monkeypatch.setattr(loop.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert loop.resolve_precision("auto", "cpu") == "fp32"
    assert loop.resolve_precision("auto", "cuda") == "bf16"
    assert loop.resolve_precision("bf16", "cpu") == "bf16"
    assert TrainConfig().key()["precision"] == "fp32"
    assert TrainConfig().key("cuda")["precision"] == "bf16"   # keyed by the device it trains on
    assert TrainConfig(precision="bf16").key()["precision"] == "bf16"
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.resolve_precision("auto", "cpu") == "fp32"                # native bf16 changes nothing
    assert TrainConfig().key() == TrainConfig(precision="fp32").key()     # same artifact as an explicit fp32
    assert TrainConfig(precision="bf16").key()["precision"] == "bf16"
    with pytest.raises(ValueError, match="fp32"):
        loop.resolve_precision("fp16")


def test_cpu_bf16_detection_reads_cpuinfo_flags(monkeypatch, tmp_path):
    import builtins

    import paperlib.train.loop as loop
    real_open = builtins.open
    for flags, expected in (("fpu avx2 fma", False), ("fpu avx512f avx512_bf16", True), ("sse amx_bf16", True)):
        f = tmp_path / "cpuinfo"
        f.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(f if p == "/proc/cpuinfo" else p, *a, **k))
        assert loop.cpu_has_native_bf16() is expected


def test_roclip_resume_restores_its_memory_bank(tmp_path, interrupt_after_epoch):
    """RoCLIP's nearest-neighbour epochs read a bank filled by earlier steps: a run stopped and
    resumed must look up the same neighbours as one that never stopped (the bank is checkpointed)."""
    from paperlib.defences.roclip import RoCLIPConfig, RoCLIPTerm, record_step
    pairs = _pairs()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, warmup_steps=2, checkpoint_every=3)

    def run(work, callbacks=()):
        model = create_model("tiny-rn64", seed=0)
        term = RoCLIPTerm(RoCLIPConfig(break_epoch=2, bank_size=32), steps_per_epoch=4)
        train(model, pairs, cfg, [(term, 1.0)], work_dir=work, transforms=[record_step], callbacks=callbacks)
        return model, term

    full, full_term = run(tmp_path / "full")

    with pytest.raises(interrupt_after_epoch.Interrupted):
        run(tmp_path / "part", [interrupt_after_epoch(1)])   # last checkpoint at step 3, its bank full (steps 2-3)
    assert (tmp_path / "part" / "last_terms.safetensors").is_file()
    resumed, resumed_term = run(tmp_path / "part")
    assert torch.allclose(_params(full), _params(resumed), atol=1e-6)
    assert torch.allclose(full_term.bank.items, resumed_term.bank.items, atol=1e-6)


def test_resume_without_the_terms_state_is_refused(tmp_path):
    """A checkpoint that lacks a stateful term's state (written by older code) would resume with an
    empty bank and silently change the result: the loop names the file instead."""
    from paperlib.defences.roclip import RoCLIPConfig, RoCLIPTerm, record_step
    pairs = _pairs()
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, warmup_steps=2, checkpoint_every=2)
    term = lambda: RoCLIPTerm(RoCLIPConfig(break_epoch=2, bank_size=32), steps_per_epoch=4)  # noqa: E731
    train(create_model("tiny-rn64", seed=0), pairs, cfg, [(term(), 1.0)], work_dir=tmp_path,
          transforms=[record_step])
    (tmp_path / "last_terms.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="last_terms.safetensors"):
        train(create_model("tiny-rn64", seed=0), pairs, cfg, [(term(), 1.0)], work_dir=tmp_path,
              transforms=[record_step])


def test_one_way_contrastive_over_ranks_is_the_whole_batchs_loss(monkeypatch):
    """CleanCLIP's in-modal term under DDP: each rank's rows against every rank's views, so the
    ranks' mean loss is the single-process loss of the whole batch (gather simulated for 2 ranks)."""
    import torch

    from paperlib.defences.cleanclip import one_way_nce
    from paperlib.train import losses
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(8, 5, generator=g), dim=-1)
    monkeypatch.setattr(losses, "gather_features", lambda x, rank, world: b)   # every rank's views
    per_rank = [losses.one_way_contrastive(a[4 * r:4 * r + 4], b[4 * r:4 * r + 4], 3.0, r, 2) for r in (0, 1)]
    whole = one_way_nce(a, b, 3.0)
    assert torch.allclose(sum(per_rank) / 2, whole, atol=1e-6)
    # and one process is the plain loss
    monkeypatch.undo()
    assert torch.allclose(losses.one_way_contrastive(a, b, 3.0), whole)
