"""kd_det's registries: children of mmengine's roots under the scope ``kd_det``.

Cross-scope look-ups (``type='kd_det.SingleTeacherDistiller'`` in an mmdet config) import
``kd_det.registry``; the ``locations`` make the registries import their modules lazily.

Besides the registries, this module checks what a config asks of them before anything is built:
:func:`check_type` turns an unknown ``type`` into one ``ValueError`` with a "did you mean" over
kd_det's and the other loaded scopes' registries, :func:`build_kd_module` refuses options a class
does not take (and says which it does), and :func:`check_number` is the finite-and-in-range check
every registered module runs on its numeric options (NaN compares false with everything, so
``if w < 0`` alone lets it through).
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope="kd_det",
    locations=["kd_det.distillers", "kd_det.losses", "kd_det.connectors"],
)
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="kd_det", locations=["kd_det.hooks"])
# Layer mappers (kd_det.mappers). Not an mmengine root kind, so a plain registry.
MAPPERS = Registry("layer mapper", scope="kd_det", locations=["kd_det.mappers"])

_PLURALS = {"loss": "losses"}
# what a registered class is, by the name of a base class (kd_det's or mmengine's)
_KIND_BASES = {
    "BaseConnector": "connector",
    "BaseProjector": "projector",
    "BaseNorm": "norm",
    "LayerMapper": "mapper",
    "Hook": "hook",
    "BaseModel": "model",
}


def plural(kind: str) -> str:
    """``'loss'`` -> ``'losses'``, ``'connector'`` -> ``'connectors'``."""
    return _PLURALS.get(kind, kind + "s")


def kind_of(obj: Any) -> str:
    """What a registered class is: ``'loss'`` (it has ``input_kind``), ``'connector'``,
    ``'projector'``, ``'norm'``, ``'mapper'``, ``'hook'``, ``'model'``, else ``'module'``."""
    if hasattr(obj, "input_kind"):
        return "loss"
    for base in getattr(obj, "__mro__", ()):
        if base.__name__ in _KIND_BASES:
            return _KIND_BASES[base.__name__]
    return "module"


def _names(registry: Registry) -> list[str]:
    registry.import_from_location()
    return list(registry.module_dict)


def _children(registry: Registry) -> Iterator[Registry]:
    for child in registry.children.values():
        yield child
        yield from _children(child)


def registered(kind: str, registry: Registry = MODELS) -> list[str]:
    """kd_det's registered names of one ``kind`` (see :func:`kind_of`), sorted."""
    return sorted(n for n in _names(registry) if kind_of(registry.module_dict[n]) == kind)


def _candidates(scoped: Registry) -> list[str]:
    """Every name a ``type`` can take from ``scoped``: its own and its ancestors' bare, those of
    the other loaded scopes as ``'scope.Name'``."""
    names: list[str] = []
    node: Registry | None = scoped
    while node is not None:
        names.extend(_names(node))
        node = node.parent
    for child in _children(scoped._get_root_registry()):
        if child is not scoped and child.scope:
            names.extend(f"{child.scope}.{n}" for n in _names(child))
    return list(dict.fromkeys(names))


def lookup(type_name: str, registry: Registry = MODELS, scope: str | None = "kd_det") -> Any:
    """The class ``type_name`` names in ``registry`` seen from ``scope`` (mmengine's rules:
    a bare name is looked up in the scope's registry and its ancestors, ``'mmdet.X'`` in
    mmdet's), or ``None``."""
    with registry.switch_scope_and_registry(scope) as scoped:
        return scoped.get(type_name)


def check_type(
    type_name: Any,
    registry: Registry = MODELS,
    kind: str | None = None,
    scope: str | None = "kd_det",
    valid: list[str] | None = None,
    valid_label: str | None = None,
) -> Any:
    """Return the class ``type_name`` names, or raise one ``ValueError`` that names it.

    The message is ``unknown <kind> type 'X' (did you mean 'Y'?); registered <kinds>: [...]``:
    the closest names come from ``scope``'s registry, its ancestors and the other loaded scopes
    (as ``'mmdet.X'``), the list is ``valid`` (``[]`` for none; ``valid_label`` names it) or
    ``registry``'s names of ``kind`` (by default the kind of the closest name).
    """
    if not isinstance(type_name, str):
        if callable(type_name):
            return type_name
        raise ValueError(f"a type is a registered name (a string), got {type_name!r}")
    found = lookup(type_name, registry, scope)
    if found is not None:
        return found
    with registry.switch_scope_and_registry(scope) as scoped:
        candidates = _candidates(scoped)
        close = difflib.get_close_matches(type_name, candidates, n=1, cutoff=0.75)
        if not close:  # compare without the scopes: 'RetinaNett' is close to 'mmdet.RetinaNet'
            by_bare = {c.rsplit(".", 1)[-1]: c for c in reversed(candidates)}
            bare = type_name.rsplit(".", 1)[-1]
            close = [by_bare[c] for c in difflib.get_close_matches(bare, by_bare, n=1)]
        if kind is None:
            kind = kind_of(scoped.get(close[0])) if close else "type"
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if valid is None:
        valid = sorted(
            n for n in _names(registry) if kind in ("type", kind_of(registry.module_dict[n]))
        )
    if valid_label is None:
        valid_label = f"registered {plural(kind)}" if kind != "type" else "registered in kd_det"
    listed = f"; {valid_label}: {valid}" if valid else ""
    where = f" in scope {scope!r}" if scope and scope != "kd_det" else ""
    what = "type" if kind == "type" else f"{kind} type"
    raise ValueError(f"unknown {what} {type_name!r}{where}{hint}{listed}")


def check_options(
    cls: Any, cfg: Mapping[str, Any], supplied: Mapping[str, Any] | None = None
) -> None:
    """Raise ``ValueError`` if ``cfg`` gives ``cls`` an option its ``__init__`` does not take
    ("did you mean") or leaves out one it needs; ``supplied`` are the arguments the caller adds
    (a connector's ``in_channels``...), not listed as options."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let it speak for itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    supplied = supplied or {}
    named = [
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    options = [n for n in named if n not in supplied]
    name = getattr(cls, "__name__", repr(cls))
    given = [k for k in cfg if k not in ("type", "_scope_")]
    for key in given:
        if key not in named:
            close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{name}: unknown option {key!r}{hint}; valid options: {options}")
    missing = [
        n
        for n in named
        if params[n].default is inspect.Parameter.empty and n not in cfg and n not in supplied
    ]
    if missing:
        raise ValueError(
            f"{name}: needs the option(s) {missing}, which the config does not give; "
            f"valid options: {options}"
        )


def build_kd_module(cfg: dict[str, Any], registry: Registry = MODELS, **default_args: Any) -> Any:
    """Build a kd_det component whatever the caller's default scope is.

    Inside an mmdet run the default scope is ``mmdet``, and mmengine would look a bare
    ``type='LogSumLoss'`` up in mmdet's registry. kd_det's own parts are looked up in kd_det's
    registry first; ``type='mmdet.X'`` still reaches other scopes.

    Before building, an unknown ``type`` (:func:`check_type`), an option the class does not take
    and a required option left out (:func:`check_options`) each raise one ``ValueError``.
    """
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        example = cfg if isinstance(cfg, str) else "..."
        raise ValueError(
            f"expected a config dict with a 'type', such as dict(type={example!r}), got {cfg!r}"
        )
    cfg = dict(cfg)
    cfg.setdefault("_scope_", "kd_det")
    cls = check_type(cfg["type"], registry, scope=cfg["_scope_"])
    check_options(cls, cfg, default_args)
    return registry.build(cfg, default_args=default_args or None)


def check_number(
    owner: str,
    name: str,
    value: Any,
    minimum: float = 0.0,
    strict: bool = False,
    valid: str | None = None,
) -> float:
    """``value`` as a float if it is a finite real number ``>= minimum`` (``> minimum`` when
    ``strict``), else a ``ValueError`` naming ``owner``, the option, the value and the valid
    range (``valid`` to say it otherwise). NaN and inf are refused."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
    )
    if not ok:
        valid = valid or f"a finite number {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{owner}: {name} must be {valid}, got {value!r}")
    return float(value)
