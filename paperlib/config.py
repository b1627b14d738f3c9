"""Parameter files: YAML in, frozen dataclasses out, with strict validation.

Every experiment is described by one YAML file under ``params/<experiment>/<scale>.yaml``.
A file is checked completely when it is loaded, before any work starts: an unknown key,
a value of the wrong type, a value outside its range or outside its list of choices fails
with a :class:`ParamError` that names the key (as a dotted path) and what would be valid.

Sections are plain dataclasses.  A field's ``metadata`` may carry

* ``choices``: a tuple (or a zero-argument callable returning one) of valid values;
* ``range``: ``(low, high)`` inclusive bounds, either may be ``None``;
* ``suffixes``: the file name endings a path may have (e.g. :data:`SAFETENSORS`: a weights file
  is refused when the parameters load, not hours later when it is opened);
* ``doc``: one line shown in error messages and in the parameter tables of the notebooks.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from paperlib.errors import ParamError  # noqa: F401 (re-exported)



class ParamLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), which also reads a number in exponent form as a float where
    YAML 1.1 leaves it a string (``1e-3``, ``5E+2``, ``1.0e3``, ``.5e-3``), as YAML 1.2 does: so
    ``lr: 1e-3`` in a file or ``defence.train.lr=1e-3`` on a command line means the number, in typed
    fields and in free-form settings (``defence.settings``) alike."""


ParamLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ParamLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                  re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                  list("-+0123456789."))


def read_yaml(text):
    """YAML text (or an open file) read with :class:`ParamLoader`: parameter files and command-line values."""
    return yaml.load(text, Loader=ParamLoader)

SCALES = ("smoke", "embedded", "gpu", "paper")


# the only weights files a parameter may name: a pickle (.pt, .pth, .bin, .ckpt) runs code when it
# is loaded, and this project handles models from untrusted sources by design
SAFETENSORS = (".safetensors",)


def param(default: Any = dataclasses.MISSING, *, choices=None, range=None, doc: str = "",
          default_factory: Any = dataclasses.MISSING, suffixes: tuple[str, ...] | None = None):
    """A dataclass field with validation metadata (see module docstring)."""
    meta = {"choices": choices, "range": range, "doc": doc, "suffixes": suffixes}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"Valid keys: {', '.join(sorted(valid))}.{hint}"


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Coerce ``value`` to the annotated type ``tp`` or raise ParamError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ParamError as err:
                errors.append(str(err))
        raise ParamError(f"{where}: {value!r} does not match {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ParamError(f"{where}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return from_dict(tp, value, prefix=where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ParamError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ParamError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _check_meta(value: Any, meta: Mapping, where: str) -> None:
    choices = meta.get("choices")
    if callable(choices):
        choices = choices()
    if choices is not None and value is not None:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v not in choices:
                raise ParamError(f"{where}: {v!r} is not valid. Valid choices: "
                                 f"{', '.join(map(str, choices))}.")
    rng = meta.get("range")
    if rng is not None and value is not None:
        lo, hi = rng
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ParamError(f"{where}: {v!r} is out of range [{lo}, {hi}].")
    suffixes = meta.get("suffixes")
    if suffixes and value is not None and not str(value).endswith(tuple(suffixes)):
        hint = f" ({meta['doc']})" if meta.get("doc") else ""
        if tuple(suffixes) == SAFETENSORS:
            hint += "; pickled weights are never loaded: convert them once as the README's 'paper scale' says"
        raise ParamError(f"{where}: {value!r} is not valid: only {' or '.join(suffixes)} files are accepted{hint}")


def from_dict(cls, data: Mapping | None, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, validating every key (recursively)."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            where = f"{prefix}.{key}" if prefix else key
            raise ParamError(f"unknown key {where!r}. {_suggest(key, list(fields))}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name in data:
            value = _check_type(data[name], hints[name], where)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
        else:
            raise ParamError(f"missing required key {where!r}: {f.metadata.get('doc', '')}")
        _check_meta(value, f.metadata, where)
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ParamError as err:
            raise ParamError(f"{prefix + ': ' if prefix else ''}{err}") from None
    return obj


def to_dict(obj) -> dict:
    """Plain dictionary of a (nested) parameter dataclass, for manifests and hashing."""
    return dataclasses.asdict(obj)


def replace(obj, **changes):
    """A copy of a parameter dataclass with ``changes`` applied and re-validated."""
    data = to_dict(obj)
    data.update(changes)
    return from_dict(type(obj), data)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"parameter file {str(path)!r} does not exist")
    with open(path) as fh:
        try:
            data = read_yaml(fh)
        except yaml.YAMLError as err:
            raise ParamError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError(f"{path}: the top level must be a mapping of keys")
    return data


def load_params(cls, path: str | Path | None = None, overrides: Mapping | None = None,
                complete: Callable[[dict], dict] | None = None):
    """Load parameter file ``path`` into dataclass ``cls``; ``overrides`` (dotted keys allowed) win.
    ``complete(data)``, when given, fills what the file and overrides left out before validation
    (the experiments complete a partial victim entry from the attack suite's victim)."""
    # YAML anchors share one dict between entries (``<<: *victim``): an override of one victim's
    # poison count must not change every victim made from the anchor
    data = _unshared(load_yaml(path)) if path is not None else {}
    try:
        for key, value in (overrides or {}).items():
            _set_dotted(data, key, value)
        if complete is not None:
            data = complete(data)
        obj = from_dict(cls, data)
        _check_model_matches_data(obj)
        return obj
    except ParamError as err:
        raise ParamError(f"{path}: {err}" if path else str(err)) from None


def _unshared(obj: Any) -> Any:
    """A copy of parsed YAML in which no two places hold the same dict or list."""
    if isinstance(obj, dict):
        return {k: _unshared(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unshared(v) for v in obj]
    return obj


def _check_model_matches_data(obj) -> None:
    """A model config is made for one input size; the data must be rendered / resized to it."""
    model, data = getattr(obj, "model", None), getattr(obj, "data", None)
    if not isinstance(model, str) or not hasattr(data, "image_size"):
        return
    from paperlib.models import config_image_size
    want = config_image_size(model)
    if want != data.image_size:
        raise ParamError(f"data.image_size={data.image_size} does not fit model {model!r}, which takes "
                         f"{want} px images: set data.image_size: {want} or choose another model")


# a list of sections is addressed by the value of this key in a dotted override
# (``victims.badnet.poison.poison_count``), or by position (``victims.0.poison.poison_count``)
NAME_KEY = "attack"


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            node = _list_entry(node, part, dotted, ".".join(parts[:i]))
            if last:
                raise ParamError(f"override {dotted!r}: name a key inside the entry {part!r}")
            continue
        if not isinstance(node, dict):
            raise ParamError(f"override {dotted!r}: {parts[i - 1]!r} is not a section")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:   # absent, or emptied by an earlier override
                node[part] = {}
            node = node[part]


def _list_entry(items: list, part: str, dotted: str, where: str) -> dict:
    """The entry of a list of sections that ``part`` names: its position, or its ``attack``
    value; a name not in the list adds an entry of that name (completed by the experiment)."""
    if part.lstrip("-").isdigit():
        if part.startswith("-"):
            raise ParamError(f"override {dotted!r}: entries are numbered from 0; {part} is not one")
        if int(part) >= len(items):
            raise ParamError(f"override {dotted!r}: {where} has {len(items)} entries, no entry {part}")
        entry = items[int(part)]
    else:
        named = [e for e in items if isinstance(e, dict) and e.get(NAME_KEY) == part]
        if len(named) > 1:
            raise ParamError(f"override {dotted!r}: {where} has {len(named)} entries named {part!r}; name one by position")
        if named:
            entry = named[0]
        else:
            entry = {NAME_KEY: part}
            items.append(entry)
            import logging
            logging.getLogger(__name__).warning("override %r: %s has no entry %r; one is added", dotted, where, part)
    if not isinstance(entry, dict):
        raise ParamError(f"override {dotted!r}: entry {part!r} of {where} is not a section")
    return entry


def describe(cls, prefix: str = "") -> list[dict]:
    """Rows (key, default, choices/range, doc) describing every parameter of ``cls``."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        choices = f.metadata.get("choices")
        if callable(choices):
            choices = choices()
        rows.append({"key": key, "default": default, "choices": choices,
                     "range": f.metadata.get("range"), "doc": f.metadata.get("doc", "")})
    return rows


Validator = Callable[[Any], None]
