"""Two networks trained together, each the other's teacher: deep mutual learning.

"Deep Mutual Learning" (Zhang, Xiang, Hospedales & Lu, CVPR 2018, arXiv:1706.00384): networks
``Θ₁`` and ``Θ₂`` learn from the labels and from each other. With ``p₁, p₂`` their predictions
and ``sg`` a stop-gradient (the partner's output is a constant target)::

    L_Θ₁ = L_task(Θ₁) + λ · KL( sg(p₂) ‖ p₁ )
    L_Θ₂ = L_task(Θ₂) + λ · KL( sg(p₁) ‖ p₂ )

each minimised by the network's own optimizer. IE-DML, the inheritance/exploration split of
"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181) on both networks, is a term of its own
(:mod:`kd_det.distillers.mutual_ie`). Both networks run once per iteration on the
same batch and both take a step (the paper's algorithm re-runs ``Θ₁`` after its step before
``Θ₂``'s update; the simultaneous form here is what mutual-learning codebases run, at the cost
of two forward passes instead of three).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from kd_det.capture import FeatureRecorder, Target, resolve_layers
from kd_det.distillers.models import build_model, probe_data_samples
from kd_det.distillers.optim import NETWORKS
from kd_det.distillers.term import DistillTerm
from kd_det.registry import MODELS, build_kd_module

__all__ = ["MutualDistiller", "MutualTerm"]

TERM_KEYS = ("net1", "net2", "loss", "mapper", "connector", "align", "capture")
#: the keys of an IE-DML term (one whose loss is ``InheritExploreLoss``)
IE_TERM_KEYS = (
    "net1",
    "net2",
    "loss",
    "capture",
    "split",
    "ratio",
    "seed",
    "factor_channels",
    "encoder",
    "decoder",
    "recon",
)
REQUIRED_KEYS = ("net1", "net2", "loss")
PREDICT_WITH = ("both", *NETWORKS)


def _partner(name: str) -> str:
    return NETWORKS[1] if name == NETWORKS[0] else NETWORKS[0]


class MutualTerm(nn.Module):
    """One mutual term: a :class:`DistillTerm` in each direction.

    ``self[net]`` (``net1``/``net2``) is the term that trains ``net`` towards its partner's
    detached layers: ``net1`` learns ``loss(f₁, sg(f₂))`` and ``net2`` learns ``loss(f₂, sg(f₁))``,
    each through its own connectors (which train with that network). ``scale`` (set per
    iteration by :class:`kd_det.hooks.DistillWeightScheduler`) applies to both directions.
    """

    def __init__(self, directions: dict[str, DistillTerm]) -> None:
        super().__init__()
        self.directions = nn.ModuleDict(directions)

    def __getitem__(self, network: str) -> DistillTerm:
        return self.directions[network]  # type: ignore[return-value]

    @property
    def scale(self) -> float:
        return self.directions[NETWORKS[0]].scale  # type: ignore[return-value]

    @scale.setter
    def scale(self, value: float) -> None:
        for term in self.directions.values():
            term.scale = value


def _is_inherit_explore(loss: nn.Module | None) -> bool:
    """Whether ``loss`` is IE-KD's ``InheritExploreLoss`` (an IE-DML term)."""
    if loss is None or not any(
        c.__module__.startswith("kd_det.inherit_explore") for c in type(loss).__mro__
    ):
        return False
    from kd_det.inherit_explore.loss import InheritExploreLoss

    return isinstance(loss, InheritExploreLoss)


def _num_classes(model: nn.Module, path: str) -> tuple[str, int] | None:
    """The head owning ``path`` and its ``num_classes`` (the nearest enclosing module that has
    one, e.g. ``bbox_head`` for ``bbox_head.retina_cls``), or None."""
    modules = dict(model.named_modules())
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        owner = ".".join(parts[:n])
        value = getattr(modules.get(owner), "num_classes", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return owner, value
    return None


def _preprocessor_settings(module: nn.Module) -> dict[str, Any]:
    """What a data preprocessor does to a batch: its class, buffers (mean, std) and settings."""
    simple = (bool, int, float, str, tuple, list, type(None))
    settings: dict[str, Any] = {"type": type(module).__name__}
    settings.update(
        {k: v.tolist() for k, v in module.named_buffers()},
    )
    settings.update(
        {k: v for k, v in vars(module).items() if k != "training" and isinstance(v, simple)}
    )
    return settings


@MODELS.register_module()
class MutualDistiller(BaseModel):
    """Two networks (any mmdet detectors or mmpretrain classifiers) that teach each other.

    * ``mode='loss'`` returns both networks' own losses and one ``distill.<name>.loss`` per
      term and network, every key prefixed with the network: ``net1.loss_cls``,
      ``net1.distill.logits.loss``, ``net2.loss_cls``, ... Each network's term compares its
      layers with its partner's **detached** layers, so a network's losses reach only its own
      parameters (and the connectors that train with it).
    * ``train_step`` needs an :class:`~mmengine.optim.OptimWrapperDict` with one wrapper per
      network (``optim_wrapper=dict(constructor='kd_det.MutualOptimWrapperConstructor', ...)``,
      see :mod:`kd_det.distillers.optim`); each network's losses are summed and stepped by its
      own optimizer.
    * ``mode='predict'`` returns, per image, an element with each network's prediction
      (``sample.net1``, ``sample.net2``), which ``kd_det.MutualMetric`` evaluates per network
      (``net1/coco/bbox_mAP``, ``net2/accuracy/top1``). ``predict_with='net1'`` (or ``'net2'``)
      returns that network's plain predictions instead, for the plain metric.
    * Both networks are registered sub-modules: saved in one checkpoint, restored by
      ``--resume`` (with both optimizers), exported one at a time by
      ``tools/export_student.py --network net1|net2``.

    The batch goes through ``net1``'s data preprocessor; ``net2``'s must do the same (same
    class, mean/std and settings), which is checked at construction.

    Args:
        net1: model dict, or ``dict(cfg_path='mmdet::…'|'mmpretrain::…'|file, **overrides)``,
            or a built model.
        net2: the same for the second network.
        distill: the mutual terms, a dict keyed by term name; each term is ``dict(net1, net2,
            loss, mapper=None, connector=None, align='resize', capture='output')``, ``net1`` /
            ``net2`` module paths (or lists of them, ``*`` wildcards) of the layers compared,
            e.g. ``head.fc`` of two classifiers (softmax KL, :class:`~kd_det.losses.LogitKDLoss`)
            or ``bbox_head.retina_cls`` of two RetinaNets (one layer per FPN level, sigmoid KD,
            :class:`~kd_det.losses.SigmoidKDLoss`). A term whose loss is
            ``InheritExploreLoss`` is an IE-DML term (:mod:`kd_det.distillers.mutual_ie`):
            ``dict(net1, net2, loss, capture='output', split='natural', ratio=0.5, seed=0,
            factor_channels=None, encoder=None, decoder=None, recon='l1')`` on feature maps
            of one width per network; its losses are ``<net>.distill.<name>.loss`` (inheritance
            and exploration), ``.recon_loss`` (the network's auto-encoder) and, logged only,
            ``.inh`` / ``.exp``. A term set to ``None`` is skipped.
        probe_size: ``(H, W)`` of the dummy batch that records the layer shapes at
            construction.
        predict_with: ``'both'`` (default), ``'net1'`` or ``'net2'``.
    """

    def __init__(
        self,
        net1: dict | nn.Module,
        net2: dict | nn.Module,
        distill: Mapping[str, Mapping[str, Any] | None],
        probe_size: tuple[int, int] = (128, 128),
        predict_with: str = "both",
        init_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        if data_preprocessor is not None:
            raise ValueError(
                "MutualDistiller uses net1's data_preprocessor; set it in the networks' model "
                "dicts (both the same) instead of on the distiller"
            )
        if predict_with not in PREDICT_WITH:
            raise ValueError(f"predict_with must be one of {PREDICT_WITH}, got {predict_with!r}")
        first = build_model(net1, "net1")
        super().__init__(data_preprocessor=first.data_preprocessor, init_cfg=init_cfg)
        self.net1 = first
        self.net2 = build_model(net2, "net2")
        self._check_preprocessors()
        self.predict_with = predict_with
        self.terms = nn.ModuleDict()
        self._build_terms(self._term_specs(distill), tuple(probe_size))

    @property
    def networks(self) -> dict[str, nn.Module]:
        """``{'net1': ..., 'net2': ...}``."""
        return {name: getattr(self, name) for name in NETWORKS}

    # -- construction ------------------------------------------------------------------------

    def _check_preprocessors(self) -> None:
        one, two = (_preprocessor_settings(n.data_preprocessor) for n in self.networks.values())
        if one != two:
            diff = sorted(k for k in set(one) | set(two) if one.get(k) != two.get(k))
            shown = "; ".join(f"{k}: net1 {one.get(k)!r} vs net2 {two.get(k)!r}" for k in diff[:4])
            raise ValueError(
                "net1 and net2 have different data preprocessors, but mutual learning feeds "
                f"both the same preprocessed batch (net1's): {shown}. Give both networks the "
                "same data_preprocessor"
            )

    def _term_specs(self, distill: Any) -> dict[str, dict[str, Any]]:
        """Check the ``distill`` dict; return its terms by name, ``None`` ones left out, each
        with its built loss under ``'_loss'``."""
        if not isinstance(distill, Mapping):
            raise ValueError(
                "distill must be a dict keyed by term name, e.g. distill=dict(logits=dict("
                "net1='head.fc', net2='head.fc', loss=dict(type='LogitKDLoss'))), got "
                f"{type(distill).__name__}"
            )
        specs: dict[str, dict[str, Any]] = {}
        for name, spec in distill.items():
            if spec is None:
                continue
            if not isinstance(name, str) or not name or "." in name or hasattr(nn.Module, name):
                raise ValueError(
                    f"distill term name {name!r} cannot be used: a name is a non-empty string "
                    "without '.' and not an attribute of nn.Module"
                )
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"distill term {name!r} must be a dict (or None to skip it), got "
                    f"{type(spec).__name__} {spec!r}"
                )
            missing = [k for k in REQUIRED_KEYS if k not in spec]
            loss = build_kd_module(spec["loss"]) if "loss" in spec else None
            valid = IE_TERM_KEYS if _is_inherit_explore(loss) else TERM_KEYS
            unknown = [k for k in spec if k not in valid]
            if missing or unknown:
                hints = []
                for key in unknown:
                    if key in ("student", "teacher"):
                        hints.append(f"{key!r}: a mutual term names 'net1' and 'net2' layers")
                    elif close := difflib.get_close_matches(key, valid, n=1):
                        hints.append(f"{key!r}: did you mean {close[0]!r}?")
                    elif key in IE_TERM_KEYS:
                        hints.append(f"{key!r} belongs to IE-DML terms (InheritExploreLoss)")
                kind = "an IE-DML term" if valid is IE_TERM_KEYS else "a term"
                raise ValueError(
                    f"distill term {name!r}: missing keys {missing}, unknown keys {unknown}"
                    + (f" ({'; '.join(hints)})" if hints else "")
                    + f"; valid keys of {kind}: {list(valid)}"
                )
            specs[name] = dict(spec, _loss=loss)
        return specs

    def _build_terms(self, specs: dict[str, dict[str, Any]], probe_size: tuple[int, int]) -> None:
        self._targets: dict[str, dict[str, list[Target]]] = {}
        for name, spec in specs.items():
            capture = spec.get("capture", "output")
            self._targets[name] = {
                net: [(p, capture) for p in resolve_layers(model, spec[net], net)]
                for net, model in self.networks.items()
            }
            self._check_classes(name, spec["_loss"])
        self._recorders = {
            net: FeatureRecorder(model, [t for ts in self._targets.values() for t in ts[net]])
            for net, model in self.networks.items()
        }
        if not specs:
            return
        self._probe(probe_size)
        for name, spec in specs.items():
            layers = {
                net: self._recorders[net].layers(self._targets[name][net]) for net in NETWORKS
            }
            labels = {
                net: self._recorders[net].labels(self._targets[name][net]) for net in NETWORKS
            }
            shapes = {net: [tuple(t.shape) for t in layers[net]] for net in NETWORKS}
            if _is_inherit_explore(spec["_loss"]):
                from kd_det.distillers.mutual_ie import MutualInheritExploreTerm

                options = {k: v for k, v in spec.items() if k in IE_TERM_KEYS[4:]}
                self.terms[name] = MutualInheritExploreTerm(
                    name, labels, shapes, spec["_loss"], **options
                )
                continue
            self._check_logit_shapes(name, spec["_loss"], shapes, labels)
            self.terms[name] = MutualTerm(
                {
                    net: DistillTerm(
                        f"{name} ({net} <- {_partner(net)})",
                        student_labels=labels[net],
                        teacher_labels=labels[_partner(net)],
                        student_shapes=shapes[net],
                        teacher_shapes=shapes[_partner(net)],
                        loss=spec["loss"],
                        mapper=spec.get("mapper"),
                        connector=spec.get("connector"),
                        align=spec.get("align", "resize"),
                    )
                    for net in NETWORKS
                }
            )

    def _check_classes(self, name: str, loss: nn.Module) -> None:
        """A logit term needs two heads over the same classes."""
        if getattr(loss, "input_kind", "features") != "logits":
            return
        found = {
            net: _num_classes(model, self._targets[name][net][0][0])
            for net, model in self.networks.items()
        }
        one, two = found["net1"], found["net2"]
        if one is not None and two is not None and one[1] != two[1]:
            raise ValueError(
                f"distill term {name!r}: {type(loss).__name__} compares logits class by class, "
                f"but net1's {one[0]} has {one[1]} classes and net2's {two[0]} has {two[1]}; a "
                "logit term needs two networks over the same classes (set the same num_classes "
                "in both heads, or compare features with a feature loss and a connector instead)"
            )

    @staticmethod
    def _check_logit_shapes(
        name: str,
        loss: nn.Module,
        shapes: dict[str, list[tuple[int, ...]]],
        labels: dict[str, list[str]],
    ) -> None:
        """Logit layers are compared element by element: equal counts and shapes."""
        if getattr(loss, "input_kind", "features") != "logits":
            return
        kind = type(loss).__name__
        one, two = shapes["net1"], shapes["net2"]
        if len(one) != len(two):
            raise ValueError(
                f"distill term {name!r}: {kind} pairs logit layers one to one, but net1 has "
                f"{len(one)} ({labels['net1']}) and net2 {len(two)} ({labels['net2']})"
            )
        for a, b, la, lb in zip(one, two, labels["net1"], labels["net2"], strict=True):
            if a[1:] != b[1:]:
                dims = " x anchors, H, W" if len(a) == 4 else ""
                raise ValueError(
                    f"distill term {name!r}: {kind} compares logits element by element, but "
                    f"net1's {la} gives {tuple(a[1:])} logits per image and net2's {lb} "
                    f"{tuple(b[1:])} (classes{dims}); a logit term needs two heads over the "
                    "same classes (and the same anchors and strides for dense heads)"
                )

    @torch.no_grad()
    def _probe(self, size: tuple[int, int]) -> None:
        """Run both networks on a dummy batch in eval mode, recording the layer shapes."""
        inputs = torch.zeros(2, 3, *size)
        for net, model in self.networks.items():
            was_training = model.training
            model.eval()
            try:
                with self._recorders[net].recording():
                    model(inputs, probe_data_samples(model, 2, *size), mode="tensor")
            finally:
                model.train(was_training)

    # -- optimisation ------------------------------------------------------------------------

    def optim_groups(self) -> dict[str, nn.Module]:
        """What each network's optimizer trains: the network and its side of every term
        (the connectors of the direction that trains it)."""
        return {
            net: nn.ModuleList(
                [model, *(term[net] for term in self.terms.values())]  # type: ignore[index]
            )
            for net, model in self.networks.items()
        }

    @staticmethod
    def _wrappers(optim_wrapper: OptimWrapper | Mapping[str, OptimWrapper]) -> dict[str, Any]:
        if not isinstance(optim_wrapper, (OptimWrapperDict, Mapping)) or set(
            optim_wrapper.keys()
        ) != set(NETWORKS):
            raise ValueError(
                "MutualDistiller trains each network with its own optimizer: optim_wrapper must "
                f"be an OptimWrapperDict with keys {list(NETWORKS)}, got "
                f"{type(optim_wrapper).__name__}. In the config: optim_wrapper=dict("
                "constructor='kd_det.MutualOptimWrapperConstructor', optimizer=dict(...))"
            )
        return {net: optim_wrapper[net] for net in NETWORKS}

    @contextlib.contextmanager
    def optim_context(
        self, optim_wrapper: Mapping[str, OptimWrapper], model: nn.Module | None = None
    ) -> Iterator[None]:
        """Each network's wrapper's ``optim_context`` (autocast, gradient accumulation) for
        ``model``: this distiller (default) or the DDP wrapper around it."""
        wrappers = self._wrappers(optim_wrapper)
        with contextlib.ExitStack() as stack:
            for net in NETWORKS:
                stack.enter_context(wrappers[net].optim_context(model or self))
            yield

    def update_params(
        self,
        losses: Mapping[str, Tensor],
        optim_wrapper: Mapping[str, OptimWrapper],
        model: nn.Module | None = None,
    ) -> dict[str, Tensor]:
        """Sum each network's losses (keys ``<net>.*``) and step its own optimizer.

        The networks' graphs are disjoint (a partner's layers are detached targets), so each
        network's sum reaches only its own parameters. In one process each wrapper runs its own
        ``update_params`` (its backward, loss scaling, accumulation, clipping, step). Under DDP
        (``model`` the wrapper around this distiller) one backward of the two sums gives the
        same gradients and lets DDP all-reduce them in one pass; each wrapper then clips and
        steps its own network. Returns the log variables: ``loss`` (both sums),
        ``<net>.total_loss`` (one network's sum) and every loss by its key.
        """
        wrappers = self._wrappers(optim_wrapper)
        totals: dict[str, Tensor] = {}
        log_vars: dict[str, Tensor] = {}
        for net in NETWORKS:
            own = {k: v for k, v in losses.items() if k.startswith(f"{net}.")}
            totals[net], net_vars = self.parse_losses(own)  # type: ignore[arg-type]
            net_vars[f"{net}.total_loss"] = net_vars.pop("loss")
            log_vars.update(net_vars)
        if model is None or model is self:
            for net in NETWORKS:
                wrappers[net].update_params(totals[net])
        else:
            unfit = [
                net
                for net, w in wrappers.items()
                if type(w) is not OptimWrapper or w._accumulative_counts != 1
            ]
            if unfit:
                raise ValueError(
                    f"MutualDistiller under DDP steps each network after one shared backward "
                    f"pass, which needs plain OptimWrappers without gradient accumulation; "
                    f"the wrappers of {unfit} are "
                    f"{[type(wrappers[n]).__name__ for n in unfit]} with accumulative_counts "
                    f"{[wrappers[n]._accumulative_counts for n in unfit]}. Train mutual "
                    "learning with AMP or accumulation in one process"
                )
            sum(totals.values()).backward()  # type: ignore[union-attr]
            for net in NETWORKS:
                wrappers[net].step()
                wrappers[net].zero_grad()
        return {"loss": sum(log_vars[f"{net}.total_loss"] for net in NETWORKS), **log_vars}

    def train_step(
        self, data: dict | tuple | list, optim_wrapper: OptimWrapperDict
    ) -> dict[str, Tensor]:
        """Preprocess, run both networks and the terms, step each network's optimizer."""
        return self.wrapped_train_step(self, data, optim_wrapper)

    def wrapped_train_step(
        self, model: nn.Module, data: dict | tuple | list, optim_wrapper: OptimWrapperDict
    ) -> dict[str, Tensor]:
        """The training step of ``model``: this distiller, or the DDP wrapper around it
        (``MMDistributedDataParallel.train_step`` comes here through :mod:`kd_det.compat`)."""
        with self.optim_context(optim_wrapper, model):
            data = self.data_preprocessor(data, True)
            losses = model._run_forward(data, mode="loss")  # type: ignore[operator]
        return self.update_params(losses, optim_wrapper, model)

    # -- mmengine BaseModel API --------------------------------------------------------------

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if self.predict_with != "both":
            return self.networks[self.predict_with](inputs, data_samples, mode=mode)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        return {net: model(inputs, data_samples, mode=mode) for net, model in self.networks.items()}

    def loss(self, inputs: Tensor, data_samples: list | None) -> dict[str, Tensor]:
        """Both networks' own losses and their terms, keys prefixed ``net1.`` / ``net2.``."""
        losses: dict[str, Tensor] = {}
        for net, model in self.networks.items():
            with self._recorders[net].recording():
                # through __call__, so that a DDP wrapper around the network syncs its gradients
                own = model(inputs, data_samples, mode="loss")
            losses.update({f"{net}.{key}": value for key, value in own.items()})
        for name, term in self.terms.items():
            layers = {
                net: self._recorders[net].layers(self._targets[name][net]) for net in NETWORKS
            }
            if isinstance(term, MutualTerm):
                for net in NETWORKS:
                    losses[f"{net}.distill.{name}.loss"] = term[net](
                        layers[net], layers[_partner(net)]
                    )
                continue
            for net, values in term(layers).items():  # an IE-DML term: both networks at once
                losses.update({f"{net}.distill.{name}.{k}": v for k, v in values.items()})
        for recorder in self._recorders.values():  # the graph holds what backward needs
            recorder.records, recorder.calls = {}, {}
        return losses

    def predict(self, inputs: Tensor, data_samples: list | None) -> list[BaseDataElement]:
        """Per image, ``BaseDataElement(net1=<net1's prediction>, net2=<net2's>)``."""
        outputs = {}
        for net, model in self.networks.items():
            # mmdet/mmpretrain write predictions into the samples: each network gets a copy
            samples = None if data_samples is None else [s.clone() for s in data_samples]
            outputs[net] = model(inputs, samples, mode="predict")
        return [
            BaseDataElement(**{net: outputs[net][i] for net in NETWORKS})
            for i in range(len(outputs[NETWORKS[0]]))
        ]

    def term(self, name: str) -> MutualTerm:
        """The mutual term called ``name`` (both directions)."""
        if name not in self.terms:
            raise KeyError(f"no distill term {name!r}; terms: {list(self.terms)}")
        return self.terms[name]  # type: ignore[return-value]
