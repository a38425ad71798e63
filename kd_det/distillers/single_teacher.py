"""A student trained against one frozen teacher through mmengine's normal Runner."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from kd_det.capture import FeatureRecorder, Target, resolve_layers
from kd_det.distillers.models import build_model, load_teacher_weights, probe_data_samples
from kd_det.distillers.term import DistillTerm
from kd_det.registry import MODELS

TERM_KEYS = ("student", "teacher", "loss", "mapper", "connector", "align", "capture")
REQUIRED_KEYS = ("student", "teacher", "loss")
TEACHER_DTYPES = {None: None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# the string connectors of the list form, for the message that shows their registry form
_LEGACY_PROJECTORS = {"identity": None, "linear": "LinearProjector", "mlp": "MLPProjector"}
_LEGACY_NORMS = {
    "none": None,
    "batchnorm": "AffineFreeBN",
    "layernorm": "ChannelLayerNorm",
    "l2": "ChannelL2Norm",
}


def _py(value: Any) -> str:
    """``value`` written as config source: ``dict(k=v, ...)`` for dicts, ``[...]`` for lists."""
    if isinstance(value, Mapping):
        return "dict(" + ", ".join(f"{k}={_py(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    return repr(value)


def _legacy_connector(connector: Any) -> Any:
    """The registry form of a list-era ``connector=dict(projector='linear', norm='batchnorm')``."""
    if not isinstance(connector, Mapping) or "type" in connector:
        return connector
    projector = _LEGACY_PROJECTORS.get(connector.get("projector", "identity"))
    norm = _LEGACY_NORMS.get(connector.get("norm", "none"))
    if projector is None and norm is None:
        return None
    new: dict[str, Any] = dict(type="ProjectNorm")
    if projector is not None:
        new["projector"] = dict(type=projector)
        if projector == "MLPProjector":
            new["projector"]["hidden_channels"] = connector.get("hidden_channels")
    if norm is not None:
        new["norm"] = dict(type=norm)
    return new


def _dict_form(terms: Sequence[Any]) -> str:
    """The ``distill=dict(...)`` equivalent of a list of ``dict(name=..., ...)`` terms."""
    lines = []
    for n, term in enumerate(terms):
        term = dict(term) if isinstance(term, Mapping) else {}
        name = term.pop("name", f"term{n}")
        if "connector" in term:
            term["connector"] = _legacy_connector(term["connector"])
            if term["connector"] is None:
                del term["connector"]
        lines.append(f"    {name}={_py(term)},")
    return "distill=dict(\n" + "\n".join(lines) + "\n)"


@MODELS.register_module()
class SingleTeacherDistiller(BaseModel):
    """Wraps a student (any mmdet detector or mmpretrain classifier) and a frozen teacher.

    * ``mode='loss'`` returns the student's own losses plus ``distill.<name>.loss`` per term.
    * ``mode='predict'`` and ``mode='tensor'`` go to the student unchanged (or to the teacher
      when ``predict_with='teacher'``), so every evaluator, hook and visualiser works as
      without distillation. The student's data preprocessor is the distiller's.
    * The teacher is frozen: in eval mode whatever ``train()`` is called, run under
      ``no_grad``, not a registered sub-module (so never in ``parameters()``, the optimizer,
      DDP or the checkpoint), and cut short after the deepest layer a term needs.

    Args:
        student: model dict, or ``dict(cfg_path='mmdet::…'|'mmpretrain::…'|file, **overrides)``.
        teacher: the same for the teacher.
        distill: the terms, a dict keyed by term name (the loss is logged as
            ``distill.<name>.loss``); each term is ``dict(student, teacher, loss, mapper=None,
            connector=None, align='resize', capture='output')``, ``student``/``teacher`` module
            paths or lists of them (``*`` matches one path component). A term set to ``None``
            is skipped, so a config that inherits another removes a term with
            ``distill=dict(cls=None)``.
        teacher_ckpt: checkpoint of the teacher (``None`` keeps its initial weights, logged).
        teacher_strict: refuse missing/unexpected checkpoint keys (shape mismatches always).
        teacher_dtype: ``'bf16'``/``'fp16'`` run the teacher under autocast.
        probe_size: ``(H, W)`` of the dummy batch used at construction to check layer shapes.
        predict_with: ``'student'`` (default) or ``'teacher'``.
    """

    def __init__(
        self,
        student: dict | nn.Module,
        teacher: dict | nn.Module,
        distill: Mapping[str, Mapping[str, Any] | None],
        teacher_ckpt: str | None = None,
        teacher_strict: bool = True,
        teacher_dtype: str | None = None,
        probe_size: tuple[int, int] = (128, 128),
        predict_with: str = "student",
        init_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        if data_preprocessor is not None:
            raise ValueError(
                "SingleTeacherDistiller uses the student's data_preprocessor; set it in the "
                "student model instead of on the distiller"
            )
        if teacher_dtype not in TEACHER_DTYPES:
            raise ValueError(f"teacher_dtype must be one of {list(TEACHER_DTYPES)}")
        if predict_with not in ("student", "teacher"):
            raise ValueError("predict_with must be 'student' or 'teacher'")
        student_model = build_model(student, "student")
        super().__init__(data_preprocessor=student_model.data_preprocessor, init_cfg=init_cfg)
        self.student = student_model
        teacher_model = build_model(teacher, "teacher")
        if teacher_ckpt is None:
            print_log("teacher_ckpt is None: the teacher keeps its initial weights", "current")
            teacher_model.init_weights()
        else:
            load_teacher_weights(teacher_model, teacher_ckpt, strict=teacher_strict)
        teacher_model.requires_grad_(False).eval()
        # Not a registered sub-module: kept out of parameters(), state_dict() and DDP.
        object.__setattr__(self, "teacher", teacher_model)
        self.teacher_dtype = TEACHER_DTYPES[teacher_dtype]
        self.predict_with = predict_with
        self.terms = nn.ModuleDict()
        self._build_terms(self._term_specs(distill), tuple(probe_size))

    # -- construction ------------------------------------------------------------------------

    @staticmethod
    def _term_specs(distill: Any) -> dict[str, dict[str, Any]]:
        """Check the ``distill`` dict; return its terms by name, ``None`` ones left out."""
        if isinstance(distill, Sequence) and not isinstance(distill, str):
            raise ValueError(
                "distill is a dict keyed by term name, not a list (the name is the key, so a "
                "config that inherits this one can override one field of one term). Write:\n"
                + _dict_form(distill)
            )
        if not isinstance(distill, Mapping):
            raise ValueError(
                f"distill must be a dict keyed by term name, got {type(distill).__name__}"
            )
        specs: dict[str, dict[str, Any]] = {}
        for name, spec in distill.items():
            if spec is None:
                continue
            reserved = not isinstance(name, str) or not name or "." in name
            if reserved or hasattr(nn.ModuleDict, name):
                raise ValueError(
                    f"distill term name {name!r} cannot be used: a name is a non-empty string "
                    "without '.' and not an attribute of nn.ModuleDict (such as 'keys', 'items')"
                )
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"distill term {name!r} must be a dict (or None to skip it), got "
                    f"{type(spec).__name__} {spec!r}"
                )
            missing = [k for k in REQUIRED_KEYS if k not in spec]
            unknown = [k for k in spec if k not in TERM_KEYS]
            if missing or unknown:
                hints = []
                for key in unknown:
                    if key == "name":
                        hints.append("'name': the term's name is its key in distill")
                    elif close := difflib.get_close_matches(key, TERM_KEYS, n=1):
                        hints.append(f"{key!r}: did you mean {close[0]!r}?")
                raise ValueError(
                    f"distill term {name!r}: missing keys {missing}, unknown keys {unknown}"
                    + (f" ({'; '.join(hints)})" if hints else "")
                    + f"; valid keys: {list(TERM_KEYS)}"
                )
            connector = spec.get("connector")
            if isinstance(connector, Mapping) and "type" not in connector:
                raise ValueError(
                    f"distill term {name!r}: connector {dict(connector)!r} has no 'type'; "
                    "connectors come from kd_det's registry, e.g. "
                    f"connector={_py(_legacy_connector(connector))}"
                )
            specs[name] = dict(spec)
        return specs

    def _build_terms(self, specs: dict[str, dict[str, Any]], probe_size: tuple[int, int]) -> None:
        self._targets: dict[str, tuple[list[Target], list[Target]]] = {}
        for name, spec in specs.items():
            capture = spec.get("capture", "output")
            self._targets[name] = (
                [(p, capture) for p in resolve_layers(self.student, spec["student"], "student")],
                [(p, capture) for p in resolve_layers(self.teacher, spec["teacher"], "teacher")],
            )
        student_targets = [t for s_t, _ in self._targets.values() for t in s_t]
        teacher_targets = [t for _, t_t in self._targets.values() for t in t_t]
        self._student_recorder = FeatureRecorder(self.student, student_targets)
        self._teacher_recorder = FeatureRecorder(self.teacher, teacher_targets)
        if not specs:
            return
        self._probe(probe_size)
        for name, spec in specs.items():
            s_targets, t_targets = self._targets[name]
            s_layers = self._student_recorder.layers(s_targets)
            t_layers = self._teacher_recorder.layers(t_targets)
            self.terms[name] = DistillTerm(
                name,
                student_labels=self._student_recorder.labels(s_targets),
                teacher_labels=self._teacher_recorder.labels(t_targets),
                student_shapes=[tuple(t.shape) for t in s_layers],
                teacher_shapes=[tuple(t.shape) for t in t_layers],
                loss=spec["loss"],
                mapper=spec.get("mapper"),
                connector=spec.get("connector"),
                align=spec.get("align", "resize"),
            )

    @torch.no_grad()
    def _probe(self, size: tuple[int, int]) -> None:
        """Run both models on a dummy batch: records the layer shapes and where the teacher
        may stop (after the last event of a full pass)."""
        inputs = torch.zeros(2, 3, *size)
        was_training = self.student.training
        self.student.eval()
        try:
            with self._student_recorder.recording():
                self.student(inputs, probe_data_samples(self.student, 2, *size), mode="tensor")
        finally:
            self.student.train(was_training)
        with self._teacher_recorder.recording():
            self.teacher(inputs, probe_data_samples(self.teacher, 2, *size), mode="tensor")
        self._teacher_recorder.set_stop_after_last()

    # -- mmengine BaseModel API --------------------------------------------------------------

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        model = self.teacher if self.predict_with == "teacher" else self.student
        return model(inputs, data_samples, mode=mode)

    def loss(self, inputs: Tensor, data_samples: list | None) -> dict[str, Tensor]:
        """The student's losses plus one ``distill.<name>.loss`` per term."""
        self.teacher_forward(inputs, data_samples)
        with self._student_recorder.recording():
            losses = dict(self.student.loss(inputs, data_samples))
        for name, term in self.terms.items():
            s_targets, t_targets = self._targets[name]
            losses[f"distill.{name}.loss"] = term(
                self._student_recorder.layers(s_targets), self._teacher_recorder.layers(t_targets)
            )
        return losses

    @torch.no_grad()
    def teacher_forward(self, inputs: Tensor, data_samples: list | None) -> None:
        """Run the teacher as far as the deepest layer a term needs, recording its layers."""
        if not self.terms:
            return
        autocast = (
            torch.autocast(inputs.device.type, dtype=self.teacher_dtype)
            if self.teacher_dtype is not None
            else nullcontext()
        )
        with autocast, self._teacher_recorder.recording(stop=True):
            self.teacher(inputs, data_samples, mode="tensor")

    def train(self, mode: bool = True) -> SingleTeacherDistiller:
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        # .to()/.cuda()/.half() reach the teacher although it is not a registered sub-module.
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def term(self, name: str) -> DistillTerm:
        """The distill term called ``name``."""
        if name not in self.terms:
            raise KeyError(f"no distill term {name!r}; terms: {list(self.terms)}")
        return self.terms[name]
