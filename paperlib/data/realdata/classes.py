"""A zero-shot folder's class names and prompt templates, from classes.json or a classes.py parsed, never executed."""
from __future__ import annotations

import ast
import json
import os
import string
from typing import Any


def check_template(t: Any, where: str) -> str:
    """Validate that a template is a string with exactly one ``"{}"`` field."""
    if not isinstance(t, str):
        raise ValueError(f"{where}: template must be a string, got {type(t).__name__}: {t!r}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{where}: template {t!r} is not a valid format string: {exc}") from exc
    if fields != [""]:
        raise ValueError(
            f"{where}: template {t!r} must contain exactly one '{{}}' placeholder "
            f"(e.g. 'a photo of a {{}}.'); found fields {fields}"
        )
    return t


def default_templates() -> list[str]:
    """open_clip's 80 OpenAI ImageNet prompt templates as format strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def _escape(s: str) -> str:
    return s.replace("{", "{{").replace("}", "}}")


def _template_from_expr(node: ast.expr, arg: str, where: str) -> str:
    """Turn the body of ``lambda arg: ...`` into a format string.

    Accepted bodies: an f-string using ``{arg}`` (no conversion/format spec),
    a ``+`` concatenation of string literals and ``arg``, or
    ``"...{}...".format(arg)``.
    """
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(_escape(part.value))
            elif (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.value.id == arg
                and part.conversion == -1
                and part.format_spec is None
            ):
                out.append("{}")
            else:
                raise ValueError(f"{where}: f-string may only interpolate {{{arg}}} plainly")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template_from_expr(node.left, arg, where) + _template_from_expr(node.right, arg, where)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _escape(node.value)
    if isinstance(node, ast.Name) and node.id == arg:
        return "{}"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == arg
    ):
        return node.func.value.value
    raise ValueError(
        f"{where}: unsupported template expression {ast.dump(node)[:80]}; use "
        f"lambda c: f\"...{{c}}...\" or a plain string with '{{}}'"
    )


def _template_from_node(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return check_template(node.value, where)
    if isinstance(node, ast.Lambda):
        a = node.args
        if len(a.args) != 1 or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults:
            raise ValueError(f"{where}: template lambda must take exactly one argument")
        return check_template(_template_from_expr(node.body, a.args[0].arg, where), where)
    raise ValueError(
        f"{where}: template must be a string literal or a lambda, got {type(node).__name__}"
    )


def parse_classes_py(path: str | os.PathLike) -> tuple[list[str], list[str] | None]:
    """Safely read CleanCLIP's ``classes.py`` without executing it.

    The file may contain only a docstring/comments and the assignments
    ``classes = [<string literals>]`` and ``templates = [<lambdas or strings>]``.
    Anything else (imports, calls, other names) is rejected with the line number.
    Returns (classes, templates or None when the file defines none).
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        src = fh.read()
    try:
        tree = ast.parse(src, filename=path, mode="exec")
    except SyntaxError as exc:
        raise ValueError(f"{path}: not valid Python: {exc}") from exc
    found: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring / bare literal
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id in ("classes", "templates")
        ):
            found[stmt.targets[0].id] = stmt.value
            continue
        raise ValueError(
            f"{path}:{stmt.lineno}: refusing to load classes.py: only "
            f"'classes = [...]' and 'templates = [...]' assignments are allowed, "
            f"found {type(stmt).__name__} statement (the file is parsed, never executed)"
        )
    if "classes" not in found:
        raise KeyError(f"{path}: no 'classes = [...]' assignment; valid names: classes, templates")
    try:
        classes = ast.literal_eval(found["classes"])
    except ValueError as exc:
        raise ValueError(f"{path}: 'classes' must be a literal list of strings") from exc
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: 'classes' must be a list of strings")
    templates = None
    if "templates" in found:
        node = found["templates"]
        if not isinstance(node, (ast.List, ast.Tuple)):
            raise ValueError(f"{path}: 'templates' must be a list of lambdas or strings")
        templates = [
            _template_from_node(el, f"{path}: templates[{k}]") for k, el in enumerate(node.elts)
        ]
    return list(classes), templates


def _parse_classes_json(path: str) -> tuple[list[str], list[str] | None]:
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if not isinstance(meta, dict) or "classes" not in meta:
        raise KeyError(f"{path}: expected an object with key 'classes' (and optional 'templates')")
    unknown = sorted(set(meta) - {"classes", "templates"})
    if unknown:
        raise KeyError(f"{path}: unknown key(s) {unknown}; valid keys: classes, templates")
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: 'classes' must be a list of strings")
    templates = meta.get("templates")
    if templates is not None:
        if not isinstance(templates, list):
            raise ValueError(f"{path}: 'templates' must be a list of strings")
        templates = [check_template(t, f"{path}: templates[{k}]") for k, t in enumerate(templates)]
    return classes, templates


def load_class_metadata(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Class names and templates for a zero-shot folder.

    ``classes.json`` (declarative) is preferred when present, else
    ``classes.py`` (parsed safely). Missing templates default to open_clip's
    OpenAI ImageNet templates.
    """
    root = os.fspath(root)
    jpath, ppath = os.path.join(root, "classes.json"), os.path.join(root, "classes.py")
    if os.path.isfile(jpath):
        classes, templates = _parse_classes_json(jpath)
    elif os.path.isfile(ppath):
        classes, templates = parse_classes_py(ppath)
    else:
        raise FileNotFoundError(
            f"zero-shot folder {root}: needs class metadata in classes.json "
            f'({{"classes": [...], "templates": [...]}}) or classes.py '
            f"(classes = [...]; templates = [lambda c: f\"...{{c}}...\"])"
        )
    if not classes:
        raise ValueError(f"zero-shot folder {root}: class list is empty")
    if not templates:
        templates = default_templates()
    return classes, templates
