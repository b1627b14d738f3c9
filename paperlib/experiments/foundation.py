"""The foundation experiment: clean base CLIP, a BadNet victim, and the ASR-vs-poison-count curve.

Parameters come from ``params/foundation/<scale>.yaml`` (schema: :class:`FoundationParams`).
``run`` writes ``results/base/zeroshot.csv`` and ``results/attacks/victims.csv`` rows (tidy, one
row per measurement), the poison curve, and a manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from paperlib.attacks import ATTACK_IDS, attack_config_class
from paperlib.attacks.base import PoisonConfig
from paperlib.config import SCALES, ParamError, from_dict, load_params, param
from paperlib.data.splits import DataConfig
from paperlib.models import model_names
from paperlib.train.loop import TrainConfig

ZEROSHOT_SPLITS = ("imagenet_analog", "cifar10_analog", "in_style")


@dataclass(frozen=True)
class VictimConfig:
    """How the backdoored model is made from the clean base (fine-tuning threat model)."""

    attack: str = param("badnet", choices=ATTACK_IDS, doc="attack id")
    attack_params: dict = param(default_factory=dict, doc="the attack's own settings (see its config class)")
    poison: PoisonConfig = param(default_factory=PoisonConfig, doc="target and poison count")
    finetune_scenes: int = param(20_000, range=(2, None), doc="CC3M-analogue pairs in the poisoned fine-tuning set")
    finetune: TrainConfig = param(default_factory=lambda: TrainConfig(epochs=2, lr=5e-4, warmup_steps=20),
                                  doc="optimisation of the poisoning fine-tune")
    poison_curve: tuple[int, ...] = param((), range=(0, None), doc="extra poison counts for the ASR curve")

    def validate(self):
        from_dict(attack_config_class(self.attack), self.attack_params, prefix="attack_params")

    def attack_config(self):
        return from_dict(attack_config_class(self.attack), self.attack_params)


@dataclass(frozen=True)
class EvalConfig:
    asr_convention: str = param("exclude_target", choices=("exclude_target", "all"),
                                doc="whether target-class images count in ASR (anchors.md)")
    batch_size: int = param(512, range=(1, None), doc="evaluation batch size")
    splits: tuple[str, ...] = param(ZEROSHOT_SPLITS, choices=ZEROSHOT_SPLITS, doc="zero-shot splits to report")


@dataclass(frozen=True)
class FoundationParams:
    scale: str = param("embedded", choices=SCALES, doc="which scale these parameters describe")
    model: str = param("tiny-rn64", choices=model_names, doc="open_clip model config")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), doc="where to train")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of the victims")
    data: DataConfig = param(default_factory=DataConfig)
    pretrain: TrainConfig = param(default_factory=TrainConfig, doc="clean pre-training")
    victim: VictimConfig = param(default_factory=VictimConfig)
    eval: EvalConfig = param(default_factory=EvalConfig)
    results_dir: str = param("results", doc="where CSV files and figures go")

    def validate(self):
        if not self.seeds:
            raise ParamError("seeds: give at least one seed")


def load(path: str | Path | None = None, overrides: dict | None = None) -> FoundationParams:
    return load_params(FoundationParams, path, overrides)


__all__ = ["FoundationParams", "VictimConfig", "EvalConfig", "load", "ZEROSHOT_SPLITS"]
_ = (asdict, field)
