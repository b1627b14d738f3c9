"""Backdoor attacks: one module per attack, one registry (ids as the papers' tables name them)."""
from __future__ import annotations

from paperlib.attacks.badnet import BadNet, BadNetConfig

# attack id -> (Attack class, its config dataclass)
REGISTRY = {
    "badnet": (BadNet, BadNetConfig),
}
ATTACK_IDS = ("badnet", "blended", "sig", "wanet", "ssba", "trojannn", "trojannet", "lc",
              "mmpoison", "badclip")


def attack_config_class(attack_id: str):
    if attack_id not in REGISTRY:
        from paperlib.config import ParamError
        raise ParamError(f"unknown or not yet implemented attack {attack_id!r}; implemented: "
                         f"{', '.join(REGISTRY)} (all ids: {', '.join(ATTACK_IDS)})")
    return REGISTRY[attack_id][1]


def build_attack(attack_id: str, cfg=None, image_side: int = 64):
    cls, cfg_cls = REGISTRY[attack_id] if attack_id in REGISTRY else (None, attack_config_class(attack_id))
    return cls(cfg if cfg is not None else cfg_cls(), image_side=image_side)
