"""Measure what distillation costs per training iteration, beside its lower bound.

Three modes run on the same preprocessed batches, interleaved round by round so that drift
and background load touch all of them alike:

* ``student``: the student trained alone — ``student.loss`` + ``parse_losses`` + backward +
  optimizer step, with an optimizer wrapper (the config's ``optim_wrapper``) over the
  student's parameters only.
* ``distill``: the distiller's ``train_step`` minus data preprocessing — ``distiller.loss``
  (teacher forward, student forward, distill terms), the recorded features released as
  ``train_step`` releases them, ``parse_losses`` + backward + step, with an optimizer wrapper
  over all the distiller's parameters (student and connectors).
* ``bound``: the lower bound of any distiller — ``distiller.teacher_forward`` (teacher run
  under ``no_grad`` only as far as the deepest layer a term needs), its recorded maps
  released at once, followed by the ``student`` step. No teacher map is held through the
  student's step, so the bound is never charged for memory the distillation step frees.

With ``split=True`` two more modes (:data:`SPLIT_MODES`) place the step's excess over the bound
within the step itself, where a term need not cost what it costs timed alone
(:func:`measure_terms`: its inputs there are still in cache):

* ``terms_off``: the ``distill`` step with every term's loss a zero without a graph
  (:func:`terms_cut`): the recording, the checks, the release of features, the longer loss
  dict and the optimizer over the connectors still run, the terms do not;
* ``terms_no_grad``: the ``distill`` step with every term run under ``no_grad``: the terms'
  values, and nothing done for their gradient (the fused losses then skip the gradient they
  otherwise compute in their forward sweep).

So ``terms_off`` over ``bound`` is the distiller's machinery, ``terms_no_grad`` over
``terms_off`` the terms' values and ``distill`` over ``terms_no_grad`` what their gradients
cost, each round by round (:func:`split_excess`).

A mutual-learning model (:class:`~kd_det.distillers.MutualDistiller`) has four modes instead
(:data:`MUTUAL_MODES`):

* ``net1`` / ``net2``: one network trained alone — its ``loss`` + ``parse_losses`` + backward +
  step, with its own optimizer wrapper (the config's settings for that network);
* ``mutual``: the mutual step minus data preprocessing — both networks' losses and the mutual
  terms, each network's backward and step by its own optimizer (the config's
  ``OptimWrapperDict``);
* ``bound``: its lower bound, each network's own step: the ``net1`` step followed by the
  ``net2`` step.

All modes share one distiller (its ``student`` is the ``student`` mode's model), so every
optimizer step of one mode changes the weights the others use next; that is immaterial for
time and memory, which do not depend on the weights' values.

Peak memory is measured per mode by :func:`measure_memory`, meant to run in a fresh process
that runs only that mode (``tools/benchmark.py --only MODE``): on CUDA the peak of
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on CPU the process's
peak resident set size during the steps (see :class:`MemoryResult`), which needs a process
of its own because memory one mode frees stays resident for the next.

This module measures; ``tools/benchmark.py`` runs it from the command line and formats the
report (the table and the verdict on a target ratio).
"""

from __future__ import annotations

import copy
import gc
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.runner import Runner
from torch import Tensor, nn

from kd_det.apis import build_model_from_cfg
from kd_det.distillers.optim import NETWORKS, network_optim_wrapper_cfg

MODES = ("student", "distill", "bound")
MUTUAL_MODES = ("net1", "net2", "mutual", "bound")
#: the distillation step with its terms cut back (``build_steps(..., split=True)``)
SPLIT_MODES = ("terms_off", "terms_no_grad")
MIB = 1024.0 * 1024.0

Batch = dict[str, Any]
Step = Callable[[Batch], None]


class SplitUnavailable(ValueError):
    """``split`` was asked of a model whose excess cannot be split by term."""


# -- configuration and construction ----------------------------------------------------------


def load_config(
    path: str,
    cfg_options: dict[str, Any] | None = None,
    batch_size: int | None = None,
    data_root: str | None = None,
) -> Config:
    """The config at ``path`` with ``cfg_options`` merged, the train batch size and the train
    dataset's ``data_root`` optionally overridden."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in ("model", "train_dataloader", "optim_wrapper"):
        if key not in cfg:
            raise ValueError(f"config {path!r} has no {key!r}; a distillation config needs one")
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        cfg.train_dataloader.batch_size = batch_size
    if data_root is not None:
        dataset = cfg.train_dataloader.dataset
        while "data_root" not in dataset and "dataset" in dataset:  # dataset wrappers
            dataset = dataset.dataset
        dataset.data_root = data_root
    return cfg


def is_mutual(model: nn.Module) -> bool:
    """Whether ``model`` trains two networks together (a mutual distiller)."""
    return hasattr(model, "optim_groups") and all(
        isinstance(getattr(model, net, None), nn.Module) for net in NETWORKS
    )


def modes_of(model: nn.Module) -> tuple[str, ...]:
    """The benchmark's modes for ``model``: :data:`MUTUAL_MODES` or :data:`MODES`."""
    return MUTUAL_MODES if is_mutual(model) else MODES


def build_distiller(cfg: Config, device: str | torch.device = "cpu") -> nn.Module:
    """Build ``cfg.model`` (:func:`kd_det.apis.build_model_from_cfg`) on ``device``, in
    training mode. It must be a distiller with ``student`` and ``teacher_forward``, or a
    mutual distiller with ``net1``, ``net2`` and ``optim_groups``."""
    model = build_model_from_cfg(cfg)
    single = hasattr(model, "teacher_forward") and isinstance(
        getattr(model, "student", None), nn.Module
    )
    if not (single or is_mutual(model)):
        raise ValueError(
            f"the config's model is a {type(model).__name__}; the benchmark needs a distiller "
            "with `student` and `teacher_forward` (e.g. kd_det.SingleTeacherDistiller) or a "
            "mutual distiller (kd_det.MutualDistiller)"
        )
    return model.to(device).train()


def _cycle(loader: Any) -> Iterator[Any]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the train dataloader yields no batches; check the data root")


def preprocessed_batches(distiller: nn.Module, dataloader_cfg: Any, count: int) -> list[Batch]:
    """``count`` batches from the train dataloader (cycled if it is shorter), each run once
    through the distiller's data preprocessor (``training=True``) onto its device."""
    if count < 1:
        raise ValueError(f"need at least one batch, got count={count}")
    loader = Runner.build_dataloader(copy.deepcopy(dataloader_cfg), seed=0)
    batches: list[Batch] = []
    with torch.no_grad():
        for raw, _ in zip(_cycle(loader), range(count), strict=False):
            data = distiller.data_preprocessor(raw, True)
            batches.append(dict(inputs=data["inputs"], data_samples=data["data_samples"]))
    return batches


def build_steps(
    distiller: nn.Module, optim_wrapper_cfg: Any, split: bool = False
) -> dict[str, Step]:
    """One training-step callable per mode (see the module docstring); with ``split``, also
    the :data:`SPLIT_MODES` of a distiller with terms."""
    if is_mutual(distiller):
        if split:
            raise SplitUnavailable(
                f"split: the excess of a {type(distiller).__name__} cannot be split by term; "
                "split applies to a single-teacher distiller (kd_det.SingleTeacherDistiller)"
            )
        return build_mutual_steps(distiller, optim_wrapper_cfg)
    if split and not getattr(distiller, "terms", None):
        raise SplitUnavailable(
            f"split: the {type(distiller).__name__} has no distill terms to cut back; give the "
            "config a `distill` term or leave split off"
        )
    student: nn.Module = distiller.student
    student_optim: OptimWrapper = build_optim_wrapper(student, copy.deepcopy(optim_wrapper_cfg))
    distill_optim: OptimWrapper = build_optim_wrapper(distiller, copy.deepcopy(optim_wrapper_cfg))

    def student_step(batch: Batch) -> None:
        with student_optim.optim_context(student):
            losses = student.loss(batch["inputs"], batch["data_samples"])
        loss, _ = student.parse_losses(losses)
        student_optim.update_params(loss)

    def distill_step(batch: Batch) -> None:
        with distill_optim.optim_context(distiller):
            try:
                losses = distiller.loss(batch["inputs"], batch["data_samples"])
            finally:
                distiller.release_features()  # as train_step does, before the backward
        loss, _ = distiller.parse_losses(losses)
        distill_optim.update_params(loss)

    def bound_step(batch: Batch) -> None:
        with student_optim.optim_context(student):
            distiller.teacher_forward(batch["inputs"], batch["data_samples"])
        distiller.release_features()  # no teacher map is held through the student's step
        student_step(batch)

    steps = dict(student=student_step, distill=distill_step, bound=bound_step)
    if split:
        for mode, how in zip(SPLIT_MODES, ("off", "no_grad"), strict=True):
            steps[mode] = _cut_step(distiller, distill_step, how)
    return steps


def _cut_step(distiller: nn.Module, step: Step, how: str) -> Step:
    def cut_step(batch: Batch) -> None:
        with terms_cut(distiller, how):
            step(batch)

    return cut_step


@contextmanager
def terms_cut(distiller: nn.Module, how: str) -> Iterator[None]:
    """Cut every distill term of ``distiller`` back while the block runs.

    ``how='off'``: a term's loss is a float32 zero without a graph; its connectors and loss do
    not run. ``how='no_grad'``: a term runs under ``no_grad``, so its value is computed and
    nothing is done for its gradient. Everything around the terms runs as usual. Each term
    gets its own forward back on exit.
    """
    if how not in ("off", "no_grad"):
        raise ValueError(f"terms_cut: how must be 'off' or 'no_grad', got {how!r}")
    terms: list[nn.Module] = list(distiller.terms.values())
    for term in terms:
        if "forward" in vars(term):
            raise RuntimeError(f"terms_cut: the term {term.name!r} is already cut back")
        term.forward = _cut_forward(term, how)  # the instance's attribute shadows the method
    try:
        yield
    finally:
        for term in terms:
            del term.forward


def _cut_forward(term: nn.Module, how: str) -> Callable[[list[Tensor], list[Tensor]], Tensor]:
    forward = type(term).forward

    def cut(student_layers: list[Tensor], teacher_layers: list[Tensor]) -> Tensor:
        if how == "off":
            return student_layers[0].new_zeros((), dtype=torch.float32)
        with torch.no_grad():
            return forward(term, student_layers, teacher_layers)

    return cut


def build_mutual_steps(model: nn.Module, optim_wrapper_cfg: Any) -> dict[str, Step]:
    """The steps of :data:`MUTUAL_MODES` (see the module docstring)."""
    alone = {
        net: build_optim_wrapper(
            getattr(model, net), network_optim_wrapper_cfg(optim_wrapper_cfg, net)
        )
        for net in NETWORKS
    }
    together = build_optim_wrapper(model, copy.deepcopy(optim_wrapper_cfg))

    def network_step(net: str) -> Step:
        network: nn.Module = getattr(model, net)

        def step(batch: Batch) -> None:
            with alone[net].optim_context(network):
                losses = network.loss(batch["inputs"], batch["data_samples"])
            loss, _ = network.parse_losses(losses)
            alone[net].update_params(loss)

        return step

    steps = {net: network_step(net) for net in NETWORKS}

    def mutual_step(batch: Batch) -> None:
        with model.optim_context(together):
            losses = model.loss(batch["inputs"], batch["data_samples"])
        model.update_params(losses, together)

    def bound_step(batch: Batch) -> None:
        for net in NETWORKS:
            steps[net](batch)

    return dict(**steps, mutual=mutual_step, bound=bound_step)


# -- timing ----------------------------------------------------------------------------------


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels on a CUDA ``device`` (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timings:
    """Per-iteration times (ms) by mode: wall-clock, and CPU time of this process (all its
    threads), which on a shared CPU is less disturbed by other processes than wall time."""

    wall_ms: dict[str, list[float]]
    cpu_ms: dict[str, list[float]]


#: called after every round with (rounds done, rounds in all, the measured times so far)
Progress = Callable[[int, int, Timings], None]


def time_interleaved(
    steps: dict[str, Step],
    batches: Sequence[Batch],
    warmup: int,
    iters: int,
    device: str | torch.device,
    progress: Progress | None = None,
) -> Timings:
    """Times of ``iters`` rounds after ``warmup`` rounds; every round runs each mode once on
    the same batch, the order rotating by one each round (a b c, b c a, c a b, …) so that no
    mode always runs first or right after another. CUDA is synchronised before each clock read.
    ``progress`` is called after every round (see :class:`RoundReporter`).
    """
    if warmup < 0 or iters < 1:
        raise ValueError(f"need warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    if not batches:
        raise ValueError("need at least one batch")
    modes = list(steps)
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(warmup + iters):
        batch = batches[r % len(batches)]
        k = r % len(modes)
        for mode in modes[k:] + modes[:k]:
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[mode](batch)
            synchronize(device)
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            if r >= warmup:
                wall[mode].append(elapsed * 1e3)
                cpu[mode].append(elapsed_cpu * 1e3)
        if progress is not None:
            progress(r + 1, warmup + iters, Timings(wall, cpu))
    return Timings(wall, cpu)


class RoundReporter:
    """A :data:`Progress` that prints how far the timing is, at most every ``every_s`` seconds
    and after the last round: the rounds done, the step over its bound so far (median of the
    per-round ratios) and the time left at the pace so far::

        round 7/17: b/c so far 1.031 (median of 6 rounds), 6.1 min elapsed, about 8.7 min left

    Warm-up rounds count in the total and have no ratio yet.

    Args:
        cpu_time: compare in CPU time (``Timings.cpu_ms``) rather than wall time.
        every_s: least time between two lines.
        write: where a line goes (default: ``sys.stderr``, flushed).
        clock: seconds, monotonic (``time.monotonic``).
    """

    def __init__(
        self,
        cpu_time: bool,
        every_s: float = 10.0,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cpu_time, self.every_s = cpu_time, every_s
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock
        self.start = self.last = clock()

    def __call__(self, done: int, total: int, timings: Timings) -> None:
        now = self.clock()
        if done < total and now - self.last < self.every_s:
            return
        self.last = now
        line = f"round {done}/{total}"
        times = timings.cpu_ms if self.cpu_time else timings.wall_ms
        mode = step_mode(times)
        step = times.get(mode, [])
        if step:
            ratio = np.median(np.asarray(step) / np.asarray(times["bound"]))
            label = "c/d" if mode == "mutual" else "b/c"
            rounds = f"{len(step)} round" + ("s" if len(step) > 1 else "")
            line += f": {label} so far {ratio:.3f} (median of {rounds})"
        else:
            line += " (warm-up)"
        elapsed = now - self.start
        line += f", {_minutes(elapsed)} elapsed"
        if done < total:
            line += f", about {_minutes(elapsed / done * (total - done))} left"
        self.write(line)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# -- memory ----------------------------------------------------------------------------------


@dataclass
class MemoryResult:
    """Peak memory of one mode, measured in a process that ran only that mode.

    ``kind`` says what ``peak_mb`` is:

    * ``'cuda_max_memory_allocated'``: GPU tensor memory, ``torch.cuda.max_memory_allocated``
      after ``reset_peak_memory_stats`` just before the first step;
    * ``'cpu_peak_rss'``: the process's peak resident set size during the steps (Linux
      ``VmHWM``, reset through ``/proc/self/clear_refs`` just before the first step); it counts
      the whole process: Python, the libraries, both models, the batches;
    * ``'cpu_max_rss'`` (fallback where the peak cannot be reset): ``ru_maxrss`` over the
      process's life, construction included; ``peak_before_steps_mb`` is its value before the
      steps, and ``baseline_mb``/``step_mb`` are unknown.

    ``baseline_mb`` is what was in use just before the first step (models on the device, the
    preprocessed batches); ``step_mb = peak_mb - baseline_mb`` is what the training steps
    added on top: activations, gradients, optimizer state, teacher features.

    ``tensor_step_mb`` (CPU): the most tensor memory the steps held at once over what was
    allocated before them, from the torch profiler's allocation events in a second run of the
    same steps. It counts tensors only, exactly, where RSS also counts what the allocator
    keeps after a free, so it is the CPU's counterpart of the CUDA ``step_mb``.
    """

    kind: str
    steps: int
    peak_mb: float
    baseline_mb: float | None
    step_mb: float | None
    peak_before_steps_mb: float | None = None
    tensor_step_mb: float | None = None


def _proc_status_bytes(key: str) -> int | None:
    """``VmRSS``/``VmHWM`` of this process from /proc (Linux), in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) via /proc/self/clear_refs (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _run_steps(step: Step, batches: Sequence[Batch], steps: int) -> None:
    """Call ``step`` ``steps`` times, cycling through ``batches``."""
    for i in range(steps):
        step(batches[i % len(batches)])


def cpu_tensor_peak(step: Step, batches: Sequence[Batch], steps: int) -> float | None:
    """The most bytes of CPU tensors that ``steps`` calls of ``step`` held at once, over what
    was allocated before them: the running sum of the torch profiler's allocation and free
    events. A free of a tensor allocated before profiling is not an event, so nothing an
    earlier step left behind may be freed in the first one (release it before; what stays
    allocated throughout, such as optimizer state, is not counted). None where this torch's
    profiler does not report allocation events."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        _run_steps(step, batches, steps)
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        return None
    sizes = [
        e.nbytes()
        for e in results.events()
        if e.name() == "[memory]" and str(e.device_type()) == "DeviceType.CPU"
    ]
    return float(np.max(np.cumsum(sizes), initial=0)) if sizes else None


def measure_memory(
    step: Step,
    batches: Sequence[Batch],
    steps: int,
    device: str,
) -> MemoryResult:
    """Run ``step`` ``steps`` times (cycling ``batches``) and report its peak memory. Meant
    for a process that runs only this mode: memory freed by one mode stays resident (the
    allocator keeps it), so modes measured in one process would blur into each other. The
    steps of :func:`build_steps` leave no recorded feature behind, so the CPU tensor count,
    whose profiler cannot see the freeing of older tensors, starts from a clean slate."""
    if steps < 1:
        raise ValueError(f"need at least one step to measure memory, got {steps}")
    gc.collect()
    if torch.device(device).type == "cuda":
        synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _run_steps(step, batches, steps)
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return MemoryResult(
            "cuda_max_memory_allocated", steps, peak / MIB, baseline / MIB, (peak - baseline) / MIB
        )
    baseline_rss = _proc_status_bytes("VmRSS")
    if baseline_rss is not None and _reset_peak_rss():
        _run_steps(step, batches, steps)
        peak = _proc_status_bytes("VmHWM")
        assert peak is not None
        gc.collect()
        tensors = cpu_tensor_peak(step, batches, steps)
        return MemoryResult(
            "cpu_peak_rss",
            steps,
            peak / MIB,
            baseline_rss / MIB,
            (peak - baseline_rss) / MIB,
            tensor_step_mb=None if tensors is None else tensors / MIB,
        )
    # No resettable peak (not Linux): the lifetime high-water mark, which includes the build.
    before = _max_rss_bytes()
    _run_steps(step, batches, steps)
    peak = _max_rss_bytes()
    return MemoryResult("cpu_max_rss", steps, peak / MIB, None, None, before / MIB)


# -- results ---------------------------------------------------------------------------------


@dataclass
class ModeResult:
    """Per-iteration times of one mode (ms): wall-clock median and quartiles, and the median
    of the process's CPU time."""

    mode: str
    times_ms: list[float]
    median_ms: float
    q1_ms: float
    q3_ms: float
    iqr_ms: float
    cpu_times_ms: list[float] = field(default_factory=list)
    cpu_median_ms: float | None = None
    memory: MemoryResult | None = None

    @classmethod
    def from_times(
        cls, mode: str, times_ms: Sequence[float], cpu_times_ms: Sequence[float] = ()
    ) -> ModeResult:
        """Summarise ``times_ms`` (linear-interpolated quartiles) and ``cpu_times_ms``."""
        if not times_ms:
            raise ValueError(f"mode {mode!r} has no measured iterations")
        q1, median, q3 = (float(v) for v in np.percentile(times_ms, [25, 50, 75]))
        cpu_median = float(np.median(cpu_times_ms)) if len(cpu_times_ms) else None
        return cls(
            mode,
            list(times_ms),
            median,
            q1,
            q3,
            q3 - q1,
            list(cpu_times_ms),
            cpu_median,
        )


def ratios_of(medians: dict[str, float]) -> dict[str, float]:
    """b/a, b/c and c/a of per-mode medians (keys ``student``, ``distill``, ``bound``); for
    the mutual modes, the mutual step over its bound and over each network alone, and the
    bound over the sum of the two networks' steps (1 up to measurement noise)."""
    if "mutual" in medians:
        one, two, mutual, bound = (medians[m] for m in MUTUAL_MODES)
        return {
            "mutual/bound": mutual / bound,
            "mutual/net1": mutual / one,
            "mutual/net2": mutual / two,
            "bound/(net1+net2)": bound / (one + two),
        }
    a, b, c = (medians[m] for m in MODES)
    return {"distill/student": b / a, "distill/bound": b / c, "bound/student": c / a}


def step_mode(modes: Any) -> str:
    """The mode a target applies to among ``modes`` (names): the mutual step or the
    distillation step."""
    return "mutual" if "mutual" in modes else "distill"


def key_ratio(ratios: dict[str, float]) -> str:
    """The ratio a target applies to: the step over its lower bound."""
    return "mutual/bound" if "mutual/bound" in ratios else "distill/bound"


def paired_ratio_interval(
    num: Sequence[float],
    den: Sequence[float],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(median, low, high)`` of the per-round ratios ``num[i] / den[i]``, with a
    percentile-bootstrap interval at ``level`` of that median.

    Round ``i`` ran both modes on the same batch one right after the other, so a costly batch
    or a slow spell of the machine weighs on both and cancels in their ratio; a ratio of two
    medians keeps both sources of spread. The interval says how far the run pins the ratio
    down: a target is shown met only when ``high`` is below it.
    """
    if len(num) != len(den) or not len(num):
        raise ValueError(f"need equally many rounds of both modes, got {len(num)} and {len(den)}")
    ratios = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(ratios), (resamples, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(np.median(ratios)), float(low), float(high)


@dataclass
class BenchmarkResult:
    """Everything one benchmark run measured: per-mode times (and memory, when measured) and
    the ratios of their medians, wall-clock and CPU time."""

    config: str
    device: str
    batch_size: int
    warmup: int
    iters: int
    threads: int
    teacher_ckpt: str | None
    modes: dict[str, ModeResult]
    # the instruction set torch's CPU kernels were picked for ("AVX512", "AVX2", ...): the same
    # op can cost several times more on one than on another (log1p: 10 ns against 1.4 ns an
    # element on AVX-512 against AVX2, torch 2.14), so CPU figures compare only within one
    cpu_capability: str | None = None
    # the kernel's share of this process's CPU time over the timing (Linux: page faults, above
    # all of the large tensors glibc maps and unmaps at every step); None where unknown
    system_share: float | None = None
    ratios: dict[str, float] = field(init=False)
    cpu_ratios: dict[str, float] | None = field(init=False)
    # the step over its bound round by round (CPU time on CPU, wall time elsewhere): median
    # and 95 % bootstrap interval (paired_ratio_interval)
    paired: tuple[float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.ratios = ratios_of({m: r.median_ms for m, r in self.modes.items()})
        cpu = {m: r.cpu_median_ms for m, r in self.modes.items()}
        self.cpu_ratios = None if None in cpu.values() else ratios_of(cpu)  # type: ignore[arg-type]
        self.paired = paired_ratio_interval(
            self.compared_times(step_mode(self.modes)), self.compared_times("bound")
        )

    @property
    def cpu_time(self) -> bool:
        """Whether modes compare in the process's CPU time (on CPU, when it was recorded) rather
        than wall time."""
        return self.cpu_ratios is not None and torch.device(self.device).type == "cpu"

    def compared_times(self, mode: str) -> list[float]:
        """The per-round times (ms) of ``mode`` that modes compare in: CPU time where
        :attr:`cpu_time`, wall time otherwise."""
        m = self.modes[mode]
        return m.cpu_times_ms if self.cpu_time else m.times_ms

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


#: the parts of the step's excess that the split modes tell apart: (name, the mode with the
#: part, the mode without it)
SPLIT_PARTS = (
    ("machinery", "terms_off", "bound"),
    ("terms' values", "terms_no_grad", "terms_off"),
    ("terms' gradients", "distill", "terms_no_grad"),
)


@dataclass
class SplitPart:
    """One part of the distillation step's excess over its bound, measured within the step
    (:data:`SPLIT_PARTS`): mode ``num`` over mode ``den`` round by round, both on the same
    batch (CPU time on CPU), as the median ratio and its 95 % interval
    (:func:`paired_ratio_interval`), and the median of the per-round differences in ms."""

    name: str
    num: str
    den: str
    ratio: float
    low: float
    high: float
    ms: float


def split_excess(result: BenchmarkResult) -> list[SplitPart]:
    """The parts of :data:`SPLIT_PARTS` from a run timed with the :data:`SPLIT_MODES`; empty
    for a run without them."""
    if not set(SPLIT_MODES) <= set(result.modes):
        return []
    parts = []
    for name, num, den in SPLIT_PARTS:
        a, b = result.compared_times(num), result.compared_times(den)
        ratio, low, high = paired_ratio_interval(a, b)
        ms = float(np.median(np.subtract(a, b)))
        parts.append(SplitPart(name, num, den, ratio, low, high, ms))
    return parts


# -- whole runs ------------------------------------------------------------------------------


def prepare(cfg: Config, device: str, num_batches: int, seed: int) -> tuple[nn.Module, list[Batch]]:
    """The distiller of ``cfg`` (weights from ``seed``) and ``num_batches`` preprocessed batches."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use 'cpu'")
    torch.manual_seed(seed)
    distiller = build_distiller(cfg, device)
    return distiller, preprocessed_batches(distiller, cfg.train_dataloader, num_batches)


def time_modes(
    distiller: nn.Module,
    batches: list[Batch],
    cfg: Config,
    config_path: str,
    device: str,
    warmup: int,
    iters: int,
    progress: Progress | None = None,
    split: bool = False,
) -> BenchmarkResult:
    """Time the distiller's modes side by side (:func:`time_interleaved`) on ``batches``; with
    ``split``, the :data:`SPLIT_MODES` too."""
    steps = build_steps(distiller, cfg.optim_wrapper, split)
    before = os.times()
    times = time_interleaved(steps, batches, warmup, iters, device, progress)
    after = os.times()
    system, user = after.system - before.system, after.user - before.user
    modes = {m: ModeResult.from_times(m, times.wall_ms[m], times.cpu_ms[m]) for m in steps}
    return BenchmarkResult(
        config=config_path,
        device=device,
        batch_size=int(batches[0]["inputs"].shape[0]),
        warmup=warmup,
        iters=iters,
        threads=torch.get_num_threads(),
        teacher_ckpt=cfg.model.get("teacher_ckpt"),
        modes=modes,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        system_share=system / (system + user) if system + user > 0 else None,
    )


def run_timing(
    cfg: Config,
    config_path: str,
    device: str = "cpu",
    warmup: int = 5,
    iters: int = 20,
    seed: int = 0,
) -> BenchmarkResult:
    """Build the distiller of ``cfg``, take ``warmup + iters`` batches and time the three
    modes side by side (:func:`time_interleaved`). Memory is left to :func:`run_memory`."""
    distiller, batches = prepare(cfg, device, warmup + iters, seed)
    return time_modes(distiller, batches, cfg, config_path, device, warmup, iters)


def run_memory(
    cfg: Config, mode: str, device: str = "cpu", steps: int = 3, seed: int = 0
) -> MemoryResult:
    """Peak memory of ``mode`` alone (:func:`measure_memory`); call it in a fresh process."""
    if mode not in MODES + MUTUAL_MODES:
        raise ValueError(
            f"unknown mode {mode!r}; valid modes: {list(dict.fromkeys(MODES + MUTUAL_MODES))}"
        )
    distiller, batches = prepare(cfg, device, steps, seed)
    if mode not in modes_of(distiller):
        raise ValueError(
            f"mode {mode!r} does not apply to a {type(distiller).__name__}; its modes: "
            f"{list(modes_of(distiller))}"
        )
    step = build_steps(distiller, cfg.optim_wrapper)[mode]
    return measure_memory(step, batches, steps, device)


# -- per-term cost ---------------------------------------------------------------------------


@dataclass
class TermCost:
    """What one distill term costs per step, timed alone on the features of a real step.

    ``forward_ms``/``backward_ms``: medians of the connectors + loss forward and of the
    backward from the term's loss to the student features and the connector parameters (CPU
    time of the process on CPU, synchronised wall time on CUDA). ``step_share``: ``total_ms``
    over the distillation step's median; ``excess_share``: over the step's excess above the
    bound (b − c), when that is positive.
    """

    name: str
    reps: int
    forward_ms: float
    backward_ms: float
    total_ms: float
    step_share: float | None = None
    excess_share: float | None = None


def _clock(device: str) -> float:
    """CPU time of the process on CPU (steadier on a shared machine), wall time on CUDA."""
    synchronize(device)
    return time.process_time() if torch.device(device).type == "cpu" else time.perf_counter()


def measure_terms(
    distiller: nn.Module, batch: dict[str, Any], reps: int, device: str
) -> dict[str, TermCost]:
    """Time every distill term's forward and backward alone, ``reps`` times after one warm-up.

    The terms' inputs are the features one call of ``distiller.loss`` recorded on ``batch``
    (caught by a forward pre-hook on each term); the student features are detached leaves that
    require a gradient, so the backward stops there, as the term's share of the step's backward
    does. The connectors' gradients are dropped after each repetition.
    """
    terms: dict[str, nn.Module] = dict(getattr(distiller, "terms", {}) or {})
    if reps < 1 or not terms:
        return {}
    inputs: dict[str, tuple[list[Tensor], list[Tensor]]] = {}
    handles = [
        term.register_forward_pre_hook(
            lambda _m, args, name=name: inputs.__setitem__(name, (args[0], args[1]))
        )
        for name, term in terms.items()
    ]
    try:
        with torch.no_grad():
            distiller.loss(batch["inputs"], batch["data_samples"])
    finally:
        for handle in handles:
            handle.remove()
        release = getattr(distiller, "release_features", None)
        if callable(release):
            release()
    costs: dict[str, TermCost] = {}
    for name, term in terms.items():
        student = [f.detach().requires_grad_(f.is_floating_point()) for f in inputs[name][0]]
        teacher = [f.detach() for f in inputs[name][1]]
        forward, backward = [], []
        for rep in range(reps + 1):
            start = _clock(device)
            loss = term(student, teacher)
            mid = _clock(device)
            if loss.requires_grad:
                loss.backward()
            end = _clock(device)
            for t in student + list(term.parameters()):
                t.grad = None
            if rep:  # the first is a warm-up
                forward.append((mid - start) * 1e3)
                backward.append((end - mid) * 1e3)
        f_ms, b_ms = float(np.median(forward)), float(np.median(backward))
        costs[name] = TermCost(name, reps, f_ms, b_ms, f_ms + b_ms)
    return costs


def add_shares(costs: dict[str, TermCost], result: BenchmarkResult) -> None:
    """Fill each cost's share of the distillation step and of its excess over the bound."""
    modes = result.modes
    if "distill" not in modes or "bound" not in modes:
        return

    def median(mode: str) -> float:
        m = modes[mode]
        return m.cpu_median_ms if result.cpu_time and m.cpu_median_ms is not None else m.median_ms

    step, excess = median("distill"), median("distill") - median("bound")
    for cost in costs.values():
        cost.step_share = cost.total_ms / step if step > 0 else None
        cost.excess_share = cost.total_ms / excess if excess > 0 else None


def run_timing_with_terms(
    cfg: Any,
    config_path: str,
    device: str = "cpu",
    warmup: int = 5,
    iters: int = 20,
    seed: int = 0,
    term_reps: int = 10,
    progress: Progress | None = None,
    split: bool = False,
) -> tuple[BenchmarkResult, dict[str, TermCost]]:
    """:func:`run_timing` followed, in the same process and on the same
    distiller, by :func:`measure_terms` (skipped for ``term_reps=0`` and for distillers
    without ``terms`` of a single teacher). ``progress`` follows the timing's rounds; ``split``
    adds the :data:`SPLIT_MODES` to them."""
    distiller, batches = prepare(cfg, device, warmup + iters, seed)
    result = time_modes(
        distiller, batches, cfg, config_path, device, warmup, iters, progress, split
    )
    costs = (
        measure_terms(distiller, batches[0], term_reps, device) if "distill" in result.modes else {}
    )
    add_shares(costs, result)
    return result, costs
