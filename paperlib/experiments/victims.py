"""A partial victim entry is completed from the attack suite's victim of the same attack.

The attack suite (``params/attacks/<scale>.yaml``; at the embedded scale ``embedded-victims.yaml``, the
victims every notebook uses, see ``SUITE_NAMES``; a file may name another with ``victim_suite``) holds the calibrated victim of every attack at
each scale: trigger settings, poison count, fine-tuning recipe.  Without completion, an entry such
as ``{attack: blended}`` (or a victim added by name from the command line,
``victims.blended.poison.poison_count=300``) would take the dataclass defaults: a trigger and a
recipe that nobody calibrated, which at the embedded scale implant nothing.  So a victim entry
keeps what it states and takes everything it leaves out from the suite's victim of its attack;
an attack that the suite has no victim for must be stated in full, or it is refused.

``attack_params: {}`` stated explicitly means the attack's own defaults (the settings of its paper),
not "complete from the suite": merged key by key, an empty mapping would take every trigger setting
of the suite's victim (e.g. its calibrated Blended opacity or BadCLIP patch size), the opposite of
what the entry says.  Leaving ``attack_params`` out takes the suite's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paperlib.config import ParamError, load_yaml

# keys a victim entry must state when the attack suite cannot complete it
REQUIRED = {"victims": ("attack_params", "poison", "finetune_scenes", "finetune"),
            "pretrain_victims": ("attack_params", "poison")}


# the attack suite each scale's victims are completed from, where it is not ``<scale>.yaml``: at the
# embedded scale the four papers' notebooks use the victims of issue 22 on the shipped base
# (embedded-victims.yaml), and its pre-training victim (issue 23: the same trigger and captions, which
# implant in pre-training where embedded.yaml's older entry does not).  A parameter file of another
# world names its suite: ``victim_suite: embedded`` (the files made before issue 22, whose entries
# leave the caption kind to that suite).
SUITE_NAMES = {("embedded", "victims"): "embedded-victims", ("embedded", "pretrain_victims"): "embedded-victims"}


def suite_file(scale: str, field: str = "victims", name: str | None = None) -> Path:
    """The attack suite whose ``field`` victims complete partial entries at ``scale`` (``name``:
    the file's own ``victim_suite``, a file of params/attacks/ without its .yaml)."""
    from paperlib.assets import repo_root
    folder = repo_root() / "params" / "attacks"
    if name is not None:
        path = folder / f"{name}.yaml"
        if not isinstance(name, str) or "/" in name or not path.is_file():
            have = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
            raise ParamError(f"victim_suite: {name!r} is not an attack suite; give one of: {have}")
        return path
    return folder / f"{SUITE_NAMES.get((scale, field), scale)}.yaml"


def merged(base: Any, over: Any) -> Any:
    """``over`` laid onto ``base``: mappings merge key by key, anything else in ``over`` wins."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merged(base.get(k), v) if k in base else v
        return out
    return over


def complete_victims(data: dict, fields=("victims", "pretrain_victims")) -> dict:
    """``data`` (a parsed parameter file, overrides applied) with every victim entry completed
    from the attack suite of its scale; see the module docstring."""
    scale = data.get("scale", "embedded")
    name = data.get("victim_suite")
    out = {k: v for k, v in data.items() if k != "victim_suite"}
    for field in fields:
        path = suite_file(scale, field, name)
        suite = load_yaml(path) if path.is_file() else {}
        entries = data.get(field)
        if isinstance(entries, dict):   # victims by attack name: {badnet: {poison: ...}, ...}
            entries = [{"attack": k, **(v or {})} for k, v in entries.items()]
        if not isinstance(entries, list):
            continue
        known = {e.get("attack"): e for e in suite.get(field) or [] if isinstance(e, dict)}
        done = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ParamError(f"{field}[{i}]: expected a victim section (attack, attack_params, poison, ...), "
                                 f"got {entry!r}")
            attack = entry.get("attack")
            if attack in known:
                done.append(merged(known[attack], entry))
                if entry.get("attack_params") == {}:   # stated empty: the attack's defaults, see above
                    done[-1]["attack_params"] = {}
                continue
            missing = [k for k in REQUIRED[field] if k not in entry]
            if missing:
                have = ", ".join(sorted(str(a) for a in known)) or "none"
                raise ParamError(f"{field}[{i}] ({attack}): the entry leaves out {', '.join(missing)} and "
                                 f"{path} has no {attack} victim to complete it from (it has: {have}); "
                                 "state the victim in full or choose one of those attacks")
            done.append(entry)
        out[field] = done
    return out


def check_seeds_by_attack(seeds_by_attack: dict, attacks) -> None:
    """``seeds_by_attack`` (attack -> its seeds) names only attacks with a victim, each with a
    non-empty list of distinct integer seeds >= 0; a ParamError naming the key otherwise."""
    for a, seeds in seeds_by_attack.items():
        if a not in attacks:
            raise ParamError(f"seeds_by_attack: {a!r} has no victim; victims: {sorted(attacks)}")
        if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
                or not all(type(s) is int and s >= 0 for s in seeds)):
            raise ParamError(f"seeds_by_attack.{a}: {seeds!r}; give a list of distinct seeds (integers >= 0)")
