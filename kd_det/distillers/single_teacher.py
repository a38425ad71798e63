"""A student trained against one frozen teacher through mmengine's normal Runner."""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.model.utils import detect_anomalous_params
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from kd_det.capture import FeatureRecorder, Target, resolve_layers
from kd_det.distillers.models import build_model, load_teacher_weights, probe_data_samples
from kd_det.distillers.term import DistillTerm
from kd_det.registry import MODELS

TERM_KEYS = ("student", "teacher", "loss", "mapper", "connector", "align", "capture")
REQUIRED_KEYS = ("student", "teacher", "loss")
TEACHER_DTYPES = {None: None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NONFINITE_MODES = ("raise", "skip")
#: MessageHub runtime info holding the number of iterations skipped so far (saved in checkpoints,
#: so a resumed run goes on counting)
SKIPPED_INFO = "distill.nonfinite_skipped"
#: the logged scalar (``train/<key>``): 1 for a skipped iteration, 0 otherwise
SKIPPED_SCALAR = "nonfinite_skipped"
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


class NonFiniteError(FloatingPointError):
    """A loss or a recorded feature holds NaN or inf (the distiller's ``nonfinite='raise'``)."""


class LayerMismatchError(RuntimeError):
    """A model recorded other layers in a training step than the construction probe did."""


def describe_tensor(t: Tensor) -> str:
    """Shape, dtype, counts of NaN / +inf / -inf and min, max, mean of the finite values."""
    x = t.detach().float()
    finite = torch.isfinite(x)
    n_finite = int(finite.sum())
    text = (
        f"shape {list(t.shape)} {str(t.dtype).removeprefix('torch.')}: "
        f"{int(torch.isnan(x).sum())} NaN, {int(torch.isposinf(x).sum())} +inf, "
        f"{int(torch.isneginf(x).sum())} -inf of {x.numel()}"
    )
    if n_finite:
        values = x[finite]
        text += (
            f"; finite values min {values.min().item():.4g} max {values.max().item():.4g} "
            f"mean {values.mean().item():.4g}"
        )
    return text


def _loss_tensors(losses: Mapping[str, Any]) -> Iterator[tuple[str, Tensor]]:
    """``(key, tensor)`` of a loss dict whose values are tensors or lists of tensors."""
    for key, value in losses.items():
        if isinstance(value, Tensor):
            yield key, value
        elif isinstance(value, (list, tuple)):
            for n, item in enumerate(value):
                if isinstance(item, Tensor):
                    yield f"{key}[{n}]", item


def _finite_sums(tensors: Sequence[Tensor]) -> Tensor:
    """One float32 sum per tensor, stacked: NaN/inf anywhere in a tensor makes its sum
    non-finite (a sum can also overflow with finite values)."""
    return torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors])


def _world_size() -> int:
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_world_size()
    return 1


def _any_rank(flag: Tensor) -> Tensor:
    """``flag`` (a 0-d bool tensor) or-ed over the processes of a distributed run."""
    if _world_size() == 1:
        return flag
    value = flag.to(torch.int32)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return value.bool()


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
        nonfinite: what a training step does when a loss (a distill term's or the student's
            own) or a recorded feature (student or teacher) holds NaN or inf: ``'raise'``
            (default) stops with :class:`NonFiniteError` naming the term, the layer, the
            iteration and min/max/mean of the tensors involved; ``'skip'`` logs the same
            diagnostic as a warning and skips the iteration (no backward, no optimizer step,
            the parameters unchanged; with gradient accumulation the gradients gathered so far
            in the window are dropped too), logging ``nonfinite_skipped`` (1 for a skipped
            iteration, 0 otherwise) and the running count. Under DDP every process takes the
            same decision. The check is one sum per recorded tensor and one host sync per step.

    Every training step also checks that the student and the teacher recorded as many tensors
    per layer as the probe at construction did (the teacher's forward is cut after the last
    layer the probe saw, so a model that runs differently on real data would otherwise pair the
    wrong layers), and :meth:`train_step` releases the recorded features once the loss is
    computed. A deep copy (mmengine's ``EMAHook`` makes one) shares the frozen teacher instead
    of copying it.
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
        nonfinite: str = "raise",
        init_cfg: dict | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        if data_preprocessor is not None:
            raise ValueError(
                "SingleTeacherDistiller uses the student's data_preprocessor; set it in the "
                "student model instead of on the distiller"
            )
        if teacher_dtype not in TEACHER_DTYPES:
            names = [k for k in TEACHER_DTYPES if k is not None]
            close = difflib.get_close_matches(str(teacher_dtype), names, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"teacher_dtype must be one of {list(TEACHER_DTYPES)}, got {teacher_dtype!r}{hint}"
            )
        if predict_with not in ("student", "teacher"):
            raise ValueError(f"predict_with must be 'student' or 'teacher', got {predict_with!r}")
        size_ok = isinstance(probe_size, (tuple, list)) and len(probe_size) == 2
        if not (size_ok and all(type(v) is int and v > 0 for v in probe_size)):
            raise ValueError(
                "probe_size must be (H, W), two positive ints (the size of the dummy batch that "
                f"checks the layers at construction; the training image size is best), got "
                f"{probe_size!r}"
            )
        if nonfinite not in NONFINITE_MODES:
            raise ValueError(
                f"nonfinite must be one of {list(NONFINITE_MODES)}, got {nonfinite!r}: 'raise' "
                "stops at a NaN/inf loss or feature, 'skip' skips that iteration and counts it"
            )
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
        self._owns_teacher = True  # False in deep copies, which share the teacher
        self.teacher_dtype = TEACHER_DTYPES[teacher_dtype]
        self.predict_with = predict_with
        self.nonfinite = nonfinite
        self._skip_step = False  # set by loss() when nonfinite='skip' found NaN/inf
        self._loss_calls = 0
        self._step_iter: int | None = None  # the Runner's iter during train_step
        self._in_train_step = False  # loss() runs inside wrapped_train_step, which can skip
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
            capture = spec.get("capture", "output")
            if capture not in ("output", "input"):
                close = difflib.get_close_matches(str(capture), ("output", "input"), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"distill term {name!r}: capture must be 'output' or 'input', got "
                    f"{capture!r}{hint}"
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
            try:
                s_paths = resolve_layers(self.student, spec["student"], "student")
                t_paths = resolve_layers(self.teacher, spec["teacher"], "teacher")
            except ValueError as err:
                raise ValueError(f"distill term {name!r}: {err}") from None
            self._targets[name] = (
                [(p, capture) for p in s_paths],
                [(p, capture) for p in t_paths],
            )
        # the teacher targets each term is the last to read
        last_user = {t: name for name, (_, t_t) in self._targets.items() for t in t_t}
        self._teacher_last_use: dict[str, list[Target]] = {
            name: [t for t, user in last_user.items() if user == name] for name in self._targets
        }
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
        self._check_probe_recorded()
        self._teacher_recorder.set_stop_after_last()
        self._probe_size = size
        self._probe_counts = {
            "student": self._student_recorder.counts(),
            "teacher": self._teacher_recorder.counts(),
        }

    def _check_probe_recorded(self) -> None:
        """Every layer a term names must have run in the probe's forward pass."""
        for side, (role, model, recorder) in enumerate(
            (
                ("student", self.student, self._student_recorder),
                ("teacher", self.teacher, self._teacher_recorder),
            )
        ):
            for name, targets in self._targets.items():
                silent = [
                    path
                    for path, capture in targets[side]
                    if (path, capture) not in recorder.records
                ]
                if silent:
                    raise ValueError(
                        f"distill term {name!r}: {role} layer(s) {silent} exist in "
                        f"{type(model).__name__} but did not run in its forward pass "
                        "(mode='tensor') on the probe batch, so nothing can be recorded from "
                        "them: a module the forward never calls, or calls as module.forward(x) "
                        "(which skips hooks; RetinaNet runs bbox_head so), records nothing. Name "
                        "a module the forward calls, such as one of its sub-modules"
                    )

    # -- mmengine BaseModel API --------------------------------------------------------------

    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        model = self.teacher if self.predict_with == "teacher" else self.student
        return model(inputs, data_samples, mode=mode)

    def loss(self, inputs: Tensor, data_samples: list | None) -> dict[str, Tensor]:
        """The student's losses plus one ``distill.<name>.loss`` per term.

        Checks that both models recorded the layers the probe predicted and that no loss or
        recorded feature is NaN/inf (see ``nonfinite``). A teacher feature is dropped after the
        last term that reads it (once it and that term's loss are finite); the student's
        features stay in the recorder until :meth:`release_features` (which
        :meth:`train_step` calls) or the next step; on an error all are released at once.
        """
        self._loss_calls += 1
        self._skip_step = False
        try:
            self.teacher_forward(inputs, data_samples)
            with self._student_recorder.recording():
                losses = dict(self.student.loss(inputs, data_samples))
            if self.terms:
                self._check_recorded_layers()
            releasing = True
            for name, term in self.terms.items():
                s_targets, t_targets = self._targets[name]
                value = term(
                    self._student_recorder.layers(s_targets),
                    self._teacher_recorder.layers(t_targets),
                )
                losses[f"distill.{name}.loss"] = value
                releasing = releasing and self._release_teacher_after(name, value)
            self._check_finite(losses)
        except BaseException:
            self.release_features()
            raise
        return losses

    def _release_teacher_after(self, name: str, value: Tensor) -> bool:
        """Drop the teacher features no term after ``name`` needs, once they and the term's
        loss ``value`` are known to be finite (then :meth:`_check_finite` has nothing to say
        of them), so that a step holds each teacher map only until its last term. Returns
        False, releasing nothing, when one is NaN/inf: every feature then stays for the
        message. One host sync per term off the CPU."""
        targets = self._teacher_last_use[name]
        tensors = [t for target in targets for t in self._teacher_recorder.records.get(target, ())]
        if not bool(torch.isfinite(_finite_sums([value, *tensors])).all()):
            return False
        self._teacher_recorder.release(targets)
        return True

    def release_features(self) -> None:
        """Drop the student and teacher features recorded by the last step."""
        self._student_recorder.clear()
        self._teacher_recorder.clear()

    # -- checks of a training step -----------------------------------------------------------

    def _iteration(self) -> str:
        """``'iteration N'`` as mmengine's log numbers it (the Runner's ``iter`` + 1) inside
        :meth:`train_step`, else ``'loss() call N'`` counting this distiller's loss calls."""
        if self._step_iter is not None:
            return f"iteration {self._step_iter + 1}"
        return f"loss() call {self._loss_calls}"

    def _check_recorded_layers(self) -> None:
        """Raise :class:`LayerMismatchError` if a model recorded another number of tensors for a
        layer than the construction probe did."""
        for role, recorder in (
            ("student", self._student_recorder),
            ("teacher", self._teacher_recorder),
        ):
            expected = self._probe_counts[role]
            got = recorder.counts()
            if got == expected:
                continue
            target = next(t for t in recorder.targets if got[t] != expected[t])
            path, capture = target
            terms = [
                n
                for n, (s_t, t_t) in self._targets.items()
                if target in (s_t if role == "student" else t_t)
            ]
            layer = path if capture == "output" else f"{path} (input)"
            if role == "teacher":
                stop_path, stop_call = (
                    self._teacher_recorder.stop_after[0][0],
                    self._teacher_recorder.stop_after[1],
                )
                why = (
                    f"The teacher's forward is cut after call {stop_call} of {stop_path!r}, the "
                    "last recorded event of the probe; with these inputs it ran differently "
                    "(layers in another order or another number of calls), so the features "
                    "would be paired wrongly. "
                )
            else:
                why = "The student ran differently in training than in the probe. "
            raise LayerMismatchError(
                f"distill term {terms[0]!r}: {role} layer {layer!r} recorded {got[target]} "
                f"tensor(s) at {self._iteration()}, the probe at construction "
                f"recorded {expected[target]} (one per call and tuple element). "
                + why
                + "Name a layer that runs the same way for every input, or set the distiller's "
                f"probe_size (now {self._probe_size}) to the training image size."
            )

    def _recorded_tensors(self) -> list[tuple[str, Target, int, Tensor]]:
        """``(role, target, index, tensor)`` of every recorded feature."""
        return [
            (role, target, k, tensor)
            for role, recorder in (
                ("student", self._student_recorder),
                ("teacher", self._teacher_recorder),
            )
            for target in recorder.targets
            for k, tensor in enumerate(recorder.records.get(target, ()))
        ]

    def _describe_feature(self, role: str, target: Target, index: int) -> str:
        recorder = self._student_recorder if role == "student" else self._teacher_recorder
        label = recorder.labels([target])[index]
        side = 0 if role == "student" else 1
        terms = [name for name, pair in self._targets.items() if target in pair[side]]
        return f"{role} layer {label} (term {', '.join(map(repr, terms))})"

    def _check_finite(self, losses: dict[str, Any]) -> None:
        """Raise or mark the step skipped (``nonfinite``) if a loss or feature is NaN/inf.

        One float32 sum per tensor (NaN/inf anywhere makes the sum non-finite), stacked, one
        host sync; only when a sum is not finite are the tensors examined one by one (a sum can
        also overflow with finite values, which is then not reported).
        """
        features = self._recorded_tensors()
        loss_items = list(_loss_tensors(losses))
        tensors = [f[-1] for f in features] + [t for _, t in loss_items]
        if not tensors:
            return
        sums = _finite_sums(tensors)
        if not bool(_any_rank(~torch.isfinite(sums).all())):
            return
        bad_features = [
            (self._describe_feature(role, target, k), t)
            for role, target, k, t in features
            if not bool(torch.isfinite(t).all())
        ]
        bad_losses = [(k, t) for k, t in loss_items if not bool(torch.isfinite(t).all())]
        local = bool(bad_features or bad_losses)
        if not bool(_any_rank(torch.tensor(local, device=sums.device))):
            return  # an overflowing sum of finite values
        message = self._nonfinite_message(bad_features, bad_losses)
        causes = (
            "a learning rate or loss_weight too high, an fp16 teacher overflowing "
            "(teacher_dtype='bf16' has fp32's range), a corrupt teacher checkpoint."
        )
        if self.nonfinite == "raise":
            raise NonFiniteError(
                message + " Set the distiller's nonfinite='skip' to skip such iterations "
                "instead (each is logged and counted), or look for the cause: " + causes
            )
        if not self._in_train_step:  # nothing here could drop the update: never train on it
            raise NonFiniteError(
                message + " nonfinite='skip' skips an iteration only in the distiller's "
                "train_step (mmengine's Runner, also under DDP); this loss() was called outside "
                "it. Possible causes: " + causes
            )
        self._skip_step = True
        hub = MessageHub.get_current_instance()
        count = int(hub.get_info(SKIPPED_INFO, 0)) + 1
        hub.update_info(SKIPPED_INFO, count)
        print_log(
            message + f" Iteration skipped (nonfinite='skip'): no optimizer step; {count} "
            f"iteration(s) skipped so far.",
            logger="current",
            level=logging.WARNING,
        )

    def _nonfinite_message(
        self, bad_features: list[tuple[str, Tensor]], bad_losses: list[tuple[str, Tensor]]
    ) -> str:
        where = self._iteration()
        if _world_size() > 1:
            where += f", rank {torch_dist.get_rank()}"
        if not bad_features and not bad_losses:
            return (
                f"NaN/inf at {where} in another process of the distributed run (its log names "
                "them)."
            )
        lines = [f"NaN/inf at {where}:"]
        for description, tensor in bad_features:
            lines.append(f"  {description}: {describe_tensor(tensor)}")
        for key, tensor in bad_losses:
            name = (
                key.removeprefix("distill.").removesuffix(".loss")
                if key.startswith("distill.")
                else None
            )
            owner = f"distill term {name!r} loss" if name in self.terms else f"student loss {key!r}"
            lines.append(f"  {owner} = {tensor.detach().float().mean().item()}")
            if name in self.terms and not bad_features:
                lines.extend(self._term_inputs(name))
        return "\n".join(lines)

    def _term_inputs(self, name: str) -> list[str]:
        """The features and non-finite connector parameters of term ``name``, one per line."""
        s_targets, t_targets = self._targets[name]
        lines = []
        for role, recorder, targets in (
            ("student", self._student_recorder, s_targets),
            ("teacher", self._teacher_recorder, t_targets),
        ):
            for label, tensor in zip(
                recorder.labels(targets), recorder.layers(targets), strict=True
            ):
                lines.append(f"    {role} layer {label}: {describe_tensor(tensor)}")
        for pname, param in self.terms[name].named_parameters():
            if not bool(torch.isfinite(param).all()):
                lines.append(f"    connector parameter {pname}: {describe_tensor(param)}")
        return lines

    # -- training step -----------------------------------------------------------------------

    def train_step(
        self, data: dict | tuple | list, optim_wrapper: OptimWrapper
    ) -> dict[str, Tensor]:
        """mmengine's ``BaseModel.train_step`` (preprocess, loss, parse, update) that skips the
        update of a step with NaN/inf under ``nonfinite='skip'`` and releases the recorded
        features once the loss is computed."""
        return self.wrapped_train_step(self, data, optim_wrapper)

    def wrapped_train_step(
        self, model: nn.Module, data: dict | tuple | list, optim_wrapper: OptimWrapper
    ) -> dict[str, Tensor]:
        """The training step of ``model``: this distiller, or the DDP wrapper around it
        (``MMDistributedDataParallel.train_step`` comes here through :mod:`kd_det.compat`)."""
        it = MessageHub.get_current_instance().get_info("iter")
        self._step_iter = None if it is None else int(it)
        self._in_train_step = True
        try:
            with optim_wrapper.optim_context(model):
                data = self.data_preprocessor(data, True)
                losses = model._run_forward(data, mode="loss")  # type: ignore[operator]
        finally:
            self._step_iter, self._in_train_step = None, False
            self.release_features()  # autograd keeps what backward needs
        if self._skip_step:
            self._skip_step = False
            del losses
            if model is not self:
                # DDP's forward left its reducer waiting for a gradient of every parameter: a
                # zero loss on the parameters themselves (not through the NaN activations) lets
                # every process finish it, and the zero gradients are dropped below.
                zero = sum(p.sum() for p in self.parameters() if p.requires_grad)
                (zero * 0.0).backward()  # type: ignore[union-attr]
            optim_wrapper.zero_grad()
            return {SKIPPED_SCALAR: torch.tensor(1.0)}
        parsed, log_vars = self.parse_losses(losses)  # type: ignore[arg-type]
        optim_wrapper.update_params(parsed)
        if getattr(model, "detect_anomalous_params", False):
            detect_anomalous_params(parsed, model=model)
        if self.nonfinite == "skip":
            log_vars[SKIPPED_SCALAR] = torch.tensor(0.0)
        return log_vars

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
        # .to()/.cuda()/.half() reach the teacher although it is not a registered sub-module
        # (not from a deep copy, which shares the teacher with the original).
        super()._apply(fn, recurse)
        if getattr(self, "_owns_teacher", True):
            self.teacher._apply(fn, recurse)
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SingleTeacherDistiller:
        """A copy of the student, the terms and their connectors that shares the frozen teacher
        (and its recorder) with this distiller: mmengine's ``EMAHook`` deep-copies the model
        it averages, and the teacher is neither averaged nor trained. The copy's student
        records into a recorder of its own; ``.to()`` on the copy leaves the teacher alone."""
        memo[id(self.teacher)] = self.teacher
        memo[id(self._teacher_recorder)] = self._teacher_recorder
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        new.__dict__["_owns_teacher"] = False
        return new

    def term(self, name: str) -> DistillTerm:
        """The distill term called ``name``."""
        if name not in self.terms:
            raise KeyError(f"no distill term {name!r}; terms: {list(self.terms)}")
        return self.terms[name]
