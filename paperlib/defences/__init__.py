"""Defences by fine-tuning: one module per defence, one registry, all plugged into the one loop.

``plan(defence_id, cfg, ctx)`` returns the :class:`~paperlib.defences.base.DefencePlan` (loss
terms, batch transforms) that :func:`paperlib.pipeline.defend` hands to the training loop.
EftCLIP and CFBD are detection-based defences (``paperlib.detect``); they end in fine-tuning
or retraining through the same loop.
"""
from __future__ import annotations

from paperlib.defences import abd, cleanclip, cleanerclip, ft, roclip
from paperlib.defences.base import DefenceContext, DefencePlan

# defence id -> (module with plan(cfg, ctx), its config dataclass)
REGISTRY = {
    "ft": (ft, ft.FTConfig),
    "cleanclip": (cleanclip, cleanclip.CleanCLIPConfig),
    "cleanerclip": (cleanerclip, cleanerclip.CleanerCLIPConfig),
    "abd": (abd, abd.ABDConfig),
    "roclip": (roclip, roclip.RoCLIPConfig),
}
DEFENCE_IDS = ("ft", "cleanclip", "cleanerclip", "abd", "roclip", "eftclip", "cfbd")


def defence_config_class(defence_id: str):
    if defence_id not in REGISTRY:
        from paperlib.config import ParamError
        raise ParamError(f"unknown fine-tuning defence {defence_id!r}; valid: {', '.join(REGISTRY)} "
                         f"(detection defences eftclip, cfbd live in paperlib.detect)")
    return REGISTRY[defence_id][1]


def plan(defence_id: str, cfg, ctx: DefenceContext) -> DefencePlan:
    module, cfg_cls = REGISTRY[defence_id] if defence_id in REGISTRY else (None, defence_config_class(defence_id))
    return module.plan(cfg if cfg is not None else cfg_cls(), ctx)


__all__ = ["REGISTRY", "DEFENCE_IDS", "DefenceContext", "DefencePlan", "defence_config_class", "plan"]
