"""One optimizer per network of a :class:`~kd_det.distillers.MutualDistiller`.

mmengine's Runner builds an :class:`~mmengine.optim.OptimWrapperDict` from ``optim_wrapper``
only through a constructor (``constructor=...`` in the config), which gets the whole
``optim_wrapper`` dict and the model. :class:`MutualOptimWrapperConstructor` reads the dict as
the settings every network shares, with per-network overrides under the network's name::

    optim_wrapper = dict(
        constructor='kd_det.MutualOptimWrapperConstructor',
        type='OptimWrapper',                                   # shared by both networks
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
        net2=dict(optimizer=dict(lr=0.05)))                    # net2 only: merged over the above

and builds one wrapper per network with mmengine's ``DefaultOptimWrapperConstructor`` over the
parameters :meth:`MutualDistiller.optim_groups` gives that network (the network and the parts
of the distiller that train with it). A config that inherits a plain schedule (``optim_wrapper =
dict(optimizer=...)``) turns it into one optimizer per network by adding only ``constructor``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mmengine.config import Config, ConfigDict
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_CONSTRUCTORS
from mmengine.registry import Registry
from torch import nn

__all__ = ["NETWORKS", "OPTIM_WRAPPER_CONSTRUCTORS", "MutualOptimWrapperConstructor"]

#: The names of the two networks of a mutual distiller.
NETWORKS = ("net1", "net2")

# kd_det's child of mmengine's constructor registry (scope ``kd_det``), so that a config anywhere
# names ``constructor='kd_det.MutualOptimWrapperConstructor'``. Reused if another kd_det module
# created it first: a root registry takes one child per scope.
OPTIM_WRAPPER_CONSTRUCTORS = MMENGINE_CONSTRUCTORS.children.get("kd_det") or Registry(
    "optimizer wrapper constructor", parent=MMENGINE_CONSTRUCTORS, scope="kd_det"
)


def network_optim_wrapper_cfg(optim_wrapper: Mapping[str, Any], network: str) -> ConfigDict:
    """The plain optimizer-wrapper config of one network: the shared settings of a mutual
    ``optim_wrapper`` with the network's own entry merged over them (``_delete_=True`` in the
    entry replaces a field instead of merging into it), ``constructor`` and the other
    network's entry left out. A config without a ``constructor`` is returned as it is."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {list(NETWORKS)}, got {network!r}")
    cfg = copy.deepcopy(dict(optim_wrapper))
    if "constructor" not in cfg:
        return ConfigDict(cfg)
    cfg.pop("constructor")
    overrides = {name: cfg.pop(name) for name in NETWORKS if name in cfg}
    merged = Config(dict(w=cfg))
    own = overrides.get(network)
    if own is not None:
        if not isinstance(own, Mapping):
            raise ValueError(
                f"optim_wrapper.{network} must be a dict of the settings that differ for "
                f"{network} (e.g. dict(optimizer=dict(lr=0.05))), got {own!r}"
            )
        merged.merge_from_dict(dict(w=dict(own)))
    return ConfigDict(merged.to_dict()["w"])


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MutualOptimWrapperConstructor:
    """Build an :class:`~mmengine.optim.OptimWrapperDict` with one wrapper per network.

    Args:
        optim_wrapper_cfg: the config's ``optim_wrapper`` without ``constructor`` and
            ``paramwise_cfg``: the shared wrapper settings (``type``, ``optimizer``,
            ``clip_grad``, ...) and optional ``net1``/``net2`` dicts merged over them for that
            network.
        paramwise_cfg: mmengine's parameter-wise settings, applied to each network (a network's
            own ``paramwise_cfg`` entry replaces it for that network).
    """

    def __init__(
        self, optim_wrapper_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(optim_wrapper_cfg, Mapping):
            raise TypeError(f"optim_wrapper_cfg must be a dict, got {type(optim_wrapper_cfg)}")
        cfg = dict(optim_wrapper_cfg, constructor=type(self).__name__)
        self.network_cfgs: dict[str, ConfigDict] = {}
        self.paramwise_cfgs: dict[str, dict[str, Any] | None] = {}
        for name in NETWORKS:
            own = network_optim_wrapper_cfg(cfg, name)
            self.paramwise_cfgs[name] = own.pop("paramwise_cfg", paramwise_cfg)
            if "optimizer" not in own:
                raise ValueError(
                    f"optim_wrapper has no optimizer for {name}: give a shared "
                    f"optimizer=dict(type=..., lr=...) or optim_wrapper.{name}.optimizer"
                )
            self.network_cfgs[name] = own

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        module = model.module if is_model_wrapper(model) else model
        groups = getattr(module, "optim_groups", None)
        if groups is None:
            raise TypeError(
                f"MutualOptimWrapperConstructor needs a kd_det.MutualDistiller (a model with "
                f"optim_groups()), got {type(module).__name__}"
            )
        parts: dict[str, nn.Module] = groups()
        if set(parts) != set(NETWORKS):
            raise ValueError(f"optim_groups() must name {list(NETWORKS)}, got {list(parts)}")
        owner: dict[int, str] = {}
        for name, part in parts.items():
            for param in part.parameters():
                if id(param) in owner and owner[id(param)] != name:
                    raise ValueError(
                        f"a parameter belongs to both {owner[id(param)]} and {name}; each "
                        "parameter is trained by one network's optimizer"
                    )
                owner[id(param)] = name
        orphans = [
            n for n, p in module.named_parameters() if p.requires_grad and id(p) not in owner
        ]
        if orphans:
            raise ValueError(
                f"{len(orphans)} trainable parameters belong to no network's optimizer "
                f"(e.g. {orphans[:3]})"
            )
        wrappers = {
            name: DefaultOptimWrapperConstructor(
                copy.deepcopy(self.network_cfgs[name]), copy.deepcopy(self.paramwise_cfgs[name])
            )(parts[name])
            for name in NETWORKS
        }
        return OptimWrapperDict(**wrappers)
