"""Backdoor attacks: one module per attack, one registry (ids as the papers' tables name them)."""
from __future__ import annotations

from paperlib.attacks.badclip import BadCLIP, BadCLIPConfig
from paperlib.attacks.badnet import BadNet, BadNetConfig
from paperlib.attacks.blended import Blended, BlendedConfig
from paperlib.attacks.lc import LabelConsistent, LCConfig
from paperlib.attacks.mmpoison import MMPoison, MMPoisonConfig
from paperlib.attacks.sig import Sig, SigConfig
from paperlib.attacks.ssba import SSBA, SSBAConfig
from paperlib.attacks.trojannn import TrojanNN, TrojanNNConfig
from paperlib.attacks.trojannet import TrojanNet, TrojanNetConfig
from paperlib.attacks.wanet import WaNet, WaNetConfig

# attack id -> (Attack class, its config dataclass)
REGISTRY = {
    "badnet": (BadNet, BadNetConfig),
    "blended": (Blended, BlendedConfig),
    "sig": (Sig, SigConfig),
    "wanet": (WaNet, WaNetConfig),
    "trojannet": (TrojanNet, TrojanNetConfig),
    "lc": (LabelConsistent, LCConfig),
    "mmpoison": (MMPoison, MMPoisonConfig),
    "ssba": (SSBA, SSBAConfig),
    "trojannn": (TrojanNN, TrojanNNConfig),
    "badclip": (BadCLIP, BadCLIPConfig),
}
ATTACK_IDS = ("badnet", "blended", "sig", "wanet", "ssba", "trojannn", "trojannet", "lc",
              "mmpoison", "badclip")


def attack_config_class(attack_id: str):
    if attack_id not in REGISTRY:
        from paperlib.config import ParamError
        raise ParamError(f"unknown or not yet implemented attack {attack_id!r}; implemented: "
                         f"{', '.join(REGISTRY)} (all ids: {', '.join(ATTACK_IDS)})")
    return REGISTRY[attack_id][1]


def attack_key(attack_id: str, cfg) -> dict:
    """What identifies an attack's trigger in cache keys: its settings, and the version of its
    :meth:`~paperlib.attacks.base.Attack.fit` when that was bumped (a refitted trigger gives new
    victims and new evaluations, not only a new trigger; version 1 adds nothing, so earlier keys stay)."""
    from dataclasses import asdict
    key = asdict(cfg)
    version = REGISTRY[attack_id][0].fit_version if attack_id in REGISTRY else 1
    if version != 1:
        key["fit_version"] = version
    return key


def build_attack(attack_id: str, cfg=None, image_side: int = 64):
    cls, cfg_cls = REGISTRY[attack_id] if attack_id in REGISTRY else (None, attack_config_class(attack_id))
    return cls(cfg if cfg is not None else cfg_cls(), image_side=image_side)
