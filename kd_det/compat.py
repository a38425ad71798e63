"""Fixes that make mmengine 0.10.7 / mmdet 3.3.0 run on current PyTorch, safely and on CPUs.

Importing kd_det (``custom_imports=dict(imports=['kd_det'])`` or any kd_det tool) applies three:

* **Checkpoints load without running code.** torch >= 2.6 loads with ``weights_only=True``,
  which refuses what every mmengine Runner checkpoint holds (its ``message_hub`` pickles
  mmengine's ``HistoryBuffer`` with numpy arrays). kd_det's loader for local files keeps
  ``weights_only=True`` and allows, for the duration of that one load, exactly the extra types
  Runner and OpenMMLab model-zoo checkpoints hold (:data:`CHECKPOINT_GLOBALS`): numpy arrays,
  dtypes and scalars, ``HistoryBuffer``, and a ``getattr`` restricted to the four statistics
  methods a ``HistoryBuffer`` pickles. Anything else is refused with an error naming the file,
  the refused global and the opt-in: a file the user trusts is listed in the environment
  variable ``KD_DET_TRUST_CHECKPOINTS`` (paths separated by ``os.pathsep``) and only those files
  are unpickled fully. mmengine's remote loaders (``https://``, ``open-mmlab://``,
  ``torchvision://`` ...) load under the same allow-list.
* **Multi-process training on CPUs.** ``torchrun ... --launcher pytorch`` without a GPU: mmengine
  calls ``torch.cuda.set_device`` and hands DDP ``device_ids`` for a CPU model, both of which
  fail. Without CUDA the process group is initialised without ``set_device`` (``nccl``, which
  needs GPUs, becomes ``gloo``) and DDP wraps CPU models with ``device_ids=None``; with CUDA
  mmengine's own code runs unchanged.
  DDP's ``train_step`` defers to the wrapped model's ``wrapped_train_step`` when it has one
  (kd_det's distillers: their step may skip an update whose loss is NaN/inf).
* **Checkpoints are never half-written, and a killed run resumes.** The Runner's
  ``save_checkpoint`` writes a local file to a temporary name beside it, syncs it and renames it
  over the target, so a crash, a ``SIGKILL`` or a full disk leaves the previous checkpoint
  intact (a temporary file a killed process left is removed when that name is saved again).
  ``CheckpointHook`` saves the new checkpoint *before* it deletes the one ``max_keep_ckpts``
  retires (mmengine deletes first: a kill in between left no checkpoint to resume from) and
  writes ``last_checkpoint`` atomically; ``--resume`` without a path (``find_latest_checkpoint``)
  falls back to the newest ``*.pth`` in the work dir when ``last_checkpoint`` is missing, empty
  or names a file that is gone.
"""

from __future__ import annotations

import functools
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import mmengine.dist.utils as mmengine_dist_utils
import mmengine.runner as mmengine_runner
import mmengine.runner.checkpoint as mmengine_checkpoint
import mmengine.runner.runner as mmengine_runner_module
import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = "KD_DET_TRUST_CHECKPOINTS"
"""Environment variable listing checkpoint files (``os.pathsep``-separated) the user trusts
enough to unpickle fully; every other file loads with ``weights_only=True``."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: missing, corrupt, or not a checkpoint."""


class UntrustedCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint that needs a global outside kd_det's allow-list to unpickle."""


def _original(function: Callable) -> Callable:
    """mmengine's own function even when this module is imported a second time (reload)."""
    return getattr(function, "_kd_det_original", function)


# ------------------------------------------------------------------------------------------
# Safe checkpoint loading
# ------------------------------------------------------------------------------------------

HISTORY_BUFFER_METHODS = ("min", "max", "current", "mean")


def history_buffer_method(owner: Any, name: str) -> Callable:
    """The ``builtins.getattr`` a pickled :class:`HistoryBuffer` asks for, restricted to it.

    Python pickles ``HistoryBuffer.mean`` (kept in the buffer's ``statistics_methods``) as
    ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would reach any attribute of any
    allowed object (the start of a gadget chain); this one returns only the four default
    statistics methods of ``HistoryBuffer`` and refuses everything else.
    """
    if owner not in (HistoryBuffer, _CheckpointHistoryBuffer) or name not in HISTORY_BUFFER_METHODS:
        raise pickle.UnpicklingError(
            f"getattr({getattr(owner, '__qualname__', type(owner).__name__)}, {name!r}) is not "
            f"allowed in a checkpoint (only HistoryBuffer.{{{', '.join(HISTORY_BUFFER_METHODS)}}})"
        )
    return getattr(HistoryBuffer, name)


class _CheckpointHistoryBuffer(HistoryBuffer):
    """What a pickled ``HistoryBuffer`` is rebuilt as: the state is checked, then the object
    becomes a plain :class:`HistoryBuffer`.

    ``HistoryBuffer.__setstate__`` merges the pickled ``statistics_methods`` into the class-wide
    registry; a crafted file could put any allowed callable there under ``'mean'``. Only the
    four default methods themselves are accepted.
    """

    def __setstate__(self, state: dict) -> None:
        methods = state.pop("statistics_methods", {})
        for name, method in methods.items():
            if name not in HISTORY_BUFFER_METHODS or method is not getattr(HistoryBuffer, name):
                raise pickle.UnpicklingError(
                    f"HistoryBuffer statistics method {name!r} = {method!r} is not allowed in a "
                    f"checkpoint (only HistoryBuffer.{{{', '.join(HISTORY_BUFFER_METHODS)}}})"
                )
        self.__class__ = HistoryBuffer
        HistoryBuffer.__setstate__(self, state)


def _numpy_globals() -> list[tuple[Any, str]]:
    """numpy's array, dtype and scalar reconstruction, under the names numpy 1.x and 2.x pickle."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    entries: list[tuple[Any, str]] = [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
        entries.append((multiarray.scalar, f"{module}.scalar"))
    # the class of each dtype instance (numpy.dtypes.Float64DType ...), which BUILD restores
    for value in vars(getattr(np, "dtypes", object)).values():
        if isinstance(value, type) and issubclass(value, np.dtype):
            entries.append((value, f"numpy.dtypes.{value.__name__}"))
    return entries


CHECKPOINT_GLOBALS: list[tuple[Any, str]] = [
    *_numpy_globals(),
    (_CheckpointHistoryBuffer, "mmengine.logging.history_buffer.HistoryBuffer"),
    (history_buffer_method, "builtins.getattr"),
]
"""What a checkpoint may hold beyond torch's own ``weights_only`` types (tensors, ``OrderedDict``,
plain containers, numbers, strings): ``(object, pickled name)`` pairs."""


@contextmanager
def allow_checkpoint_types() -> Iterator[None]:
    """Allow :data:`CHECKPOINT_GLOBALS` in ``weights_only`` loads inside this block only.

    Entries the process had already allowed (``torch.serialization.add_safe_globals``) stay.
    """
    present = set(torch.serialization.get_safe_globals())
    added = [entry for entry in CHECKPOINT_GLOBALS if entry not in present]
    with torch.serialization.safe_globals(added):
        yield


def trusted_checkpoints() -> set[str]:
    """Real paths of the files listed in ``$KD_DET_TRUST_CHECKPOINTS``."""
    listed = os.environ.get(TRUST_ENV, "")
    return {osp.realpath(osp.expanduser(p)) for p in listed.split(os.pathsep) if p.strip()}


def _refused_globals(path: str, error: BaseException) -> list[str]:
    """The globals of ``path`` outside the allow-list (static scan), else those the error names."""
    names: set[str] = set()
    with suppress(Exception), allow_checkpoint_types():
        names.update(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    if not names:  # legacy (non-zip) files, blocked modules, a refused getattr
        names.update(re.findall(r"GLOBAL ([\w.]+)", str(error)))
        names.update(re.findall(r"(getattr\([^)]*\)) is not allowed", str(error)))
    names.update(re.findall(r"HistoryBuffer statistics method '\w+'", str(error)))
    return sorted(names)


def _reason(error: BaseException) -> str:
    """The informative sentence of a torch.load error (torch wraps it in long explanations)."""
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*(.*)", text)
    lines = (match.group(1) if match else text).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(error).__name__}: {first}" if len(first) < 8 else first


def _opt_in_hint(path: str) -> str:
    return (
        "If you trust this file, opt in for it alone: "
        f"{TRUST_ENV}={path} (several files separated by {os.pathsep!r}) in the environment of "
        "the command that loads it. That unpickles it fully, which runs any code its author put "
        "in it. Or load it once where you trust it and re-save only its tensors (state_dict)."
    )


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
PICKLE_MAGIC = b"\x80"  # the legacy format starts with a pickle (protocol 2+)


def _load_error(path: str, error: BaseException) -> CheckpointError:
    """One clear error for a failed ``weights_only`` load of ``path``."""
    refused = _refused_globals(path, error)
    if refused:
        return UntrustedCheckpointError(
            f"kd_det refused to load checkpoint {path!r}: unpickling it needs "
            f"{', '.join(refused)}, which is not among the types checkpoints hold (tensors, "
            "containers, numbers, strings, numpy arrays, mmengine's HistoryBuffer). "
            + _opt_in_hint(path)
        )
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return CheckpointError(f"checkpoint {path!r} is an empty file")
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        return CheckpointError(
            f"{path!r} is not a PyTorch checkpoint (a file written by torch.save): it starts "
            f"with {head!r}"
        )
    weights_only_refusal = isinstance(error, pickle.UnpicklingError) and (
        "Weights only load failed" in str(error)
    )
    if weights_only_refusal and zipfile.is_zipfile(path):  # a complete file doing something odd
        return UntrustedCheckpointError(
            f"kd_det refused to load checkpoint {path!r}: {_reason(error)}. " + _opt_in_hint(path)
        )
    return CheckpointError(f"checkpoint {path!r} is corrupt or truncated: {_reason(error)}")


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint file with ``weights_only=True`` and kd_det's allow-list.

    Full unpickling only for files listed in ``$KD_DET_TRUST_CHECKPOINTS``. Raises
    ``FileNotFoundError`` for a missing file, :class:`UntrustedCheckpointError` for a file that
    needs a global outside :data:`CHECKPOINT_GLOBALS` (naming it and how to opt in) and
    :class:`CheckpointError` for a corrupt file or one that is not a checkpoint.
    """
    path = osp.abspath(osp.expanduser(str(filename)))
    if not osp.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if osp.realpath(path) in trusted_checkpoints():
        return torch.load(path, map_location=map_location, weights_only=False)
    with allow_checkpoint_types():
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except (MemoryError, FileNotFoundError, PermissionError):
            raise
        except Exception as error:  # whatever a malformed pickle or zip raises inside torch
            raise _load_error(path, error) from None


def _allow_listed(loader: Callable) -> Callable:
    """An mmengine remote loader (it calls ``torch.load`` with torch's default
    ``weights_only=True``) run with kd_det's allow-list, its refusals explained."""
    if getattr(loader, "_kd_det_allow_listed", False):
        return loader

    @functools.wraps(loader)
    def load(filename: str, *args: Any, **kwargs: Any) -> Any:
        with allow_checkpoint_types():
            try:
                return loader(filename, *args, **kwargs)
            except pickle.UnpicklingError as error:
                raise UntrustedCheckpointError(
                    f"kd_det refused to load checkpoint {filename!r}: {_reason(error)}. If you "
                    "trust it, download it and load the local file with "
                    f"{TRUST_ENV}=/path/to/file (that unpickles it fully, which runs any code "
                    "its author put in it)."
                ) from None

    load._kd_det_allow_listed = True  # type: ignore[attr-defined]
    return load


REMOTE_LOADERS = {
    ("http://", "https://"): mmengine_checkpoint.load_from_http,
    ("openmmlab://", "open-mmlab://"): mmengine_checkpoint.load_from_openmmlab,
    ("torchvision://", "modelzoo://"): mmengine_checkpoint.load_from_torchvision,
    ("mmcls://",): mmengine_checkpoint.load_from_mmcls,
    ("pavi://",): mmengine_checkpoint.load_from_pavi,
    (r"(\S+\:)?s3://", r"(\S+\:)?petrel://"): mmengine_checkpoint.load_from_ceph,
}


def install_checkpoint_loaders() -> None:
    """Register :func:`load_local_checkpoint` for local paths and allow-listed remote loaders."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
    for prefixes, loader in REMOTE_LOADERS.items():
        CheckpointLoader.register_scheme(
            prefixes=list(prefixes), loader=_allow_listed(loader), force=True
        )


# ------------------------------------------------------------------------------------------
# Multi-process training without CUDA
# ------------------------------------------------------------------------------------------

_mmengine_init_dist_pytorch = _original(mmengine_dist_utils._init_dist_pytorch)
_mmddp_init = _original(MMDistributedDataParallel.__init__)


def init_dist_pytorch(backend: str, init_backend: str = "torch", **kwargs: Any) -> None:
    """mmengine's ``torchrun`` initialisation, without ``torch.cuda.set_device`` on a machine
    with no accelerator (there it raises); ``nccl`` needs GPUs, so ``gloo`` is used instead."""
    accelerator = (
        torch.cuda.is_available() or is_mlu_available() or is_npu_available() or is_musa_available()
    )
    if accelerator or init_backend != "torch":
        _mmengine_init_dist_pytorch(backend, init_backend=init_backend, **kwargs)
        return
    if backend == "nccl":
        print_log(
            "no CUDA device: the process group uses the gloo backend instead of nccl",
            logger="current",
            level=logging.WARNING,
        )
        backend = "gloo"
    torch_dist.init_process_group(backend=backend, **kwargs)


def _mmddp_init_cpu_aware(
    self: MMDistributedDataParallel,
    module: torch.nn.Module,
    detect_anomalous_params: bool = False,
    **kwargs: Any,
) -> None:
    """``MMDistributedDataParallel.__init__`` with ``device_ids=None`` for a CPU module (DDP
    accepts ``device_ids`` only for a module on one accelerator; the Runner always passes
    ``[LOCAL_RANK]``)."""
    devices = {p.device.type for p in module.parameters()}
    if kwargs.get("device_ids") is not None and devices <= {"cpu"}:
        kwargs["device_ids"] = None
        kwargs.pop("output_device", None)
    _mmddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)


_mmddp_train_step = _original(MMDistributedDataParallel.train_step)


def _mmddp_train_step_delegating(
    self: MMDistributedDataParallel, data: Any, optim_wrapper: Any
) -> dict[str, torch.Tensor]:
    """``MMDistributedDataParallel.train_step``, or the wrapped model's
    ``wrapped_train_step(ddp, data, optim_wrapper)`` when it defines one (kd_det's distillers
    do: their step may skip the update of an iteration whose loss is NaN/inf, which under DDP
    needs the wrapper, and releases the recorded features)."""
    step = getattr(self.module, "wrapped_train_step", None)
    if step is None:
        return _mmddp_train_step(self, data, optim_wrapper)
    return step(self, data, optim_wrapper)


init_dist_pytorch._kd_det_original = _mmengine_init_dist_pytorch  # type: ignore[attr-defined]
_mmddp_init_cpu_aware._kd_det_original = _mmddp_init  # type: ignore[attr-defined]
_mmddp_train_step_delegating._kd_det_original = _mmddp_train_step  # type: ignore[attr-defined]


def install_distributed_fixes() -> None:
    """Route mmengine's ``torchrun`` initialisation and its DDP wrapper through the above."""
    mmengine_dist_utils._init_dist_pytorch = init_dist_pytorch
    MMDistributedDataParallel.__init__ = _mmddp_init_cpu_aware  # type: ignore[method-assign]
    MMDistributedDataParallel.train_step = _mmddp_train_step_delegating  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------
# Atomic checkpoint saving
# ------------------------------------------------------------------------------------------

_mmengine_save_checkpoint = _original(mmengine_checkpoint.save_checkpoint)
_mmengine_find_latest_checkpoint = _original(mmengine_checkpoint.find_latest_checkpoint)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale_temporaries(path: str) -> None:
    """Remove ``.<name>.tmp<pid>`` files of ``path`` that a killed process left behind (its pid
    is no longer running, or is this process's own)."""
    folder, name = osp.split(path)
    prefix = f".{name}.tmp"
    with suppress(OSError):
        for entry in os.listdir(folder):
            pid = entry[len(prefix) :]
            stale = entry.startswith(prefix) and pid.isdigit()
            if stale and (int(pid) == os.getpid() or not _process_alive(int(pid))):
                with suppress(OSError):
                    os.unlink(osp.join(folder, entry))


def _fsync_folder(folder: str) -> None:
    with suppress(OSError):  # make a rename durable where the OS allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(file)`` on ``.<name>.tmp<pid>`` beside ``path``, sync it and rename it over
    ``path``; on any failure the temporary file is removed and ``path`` is untouched."""
    path = osp.abspath(path)
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = osp.join(folder, f".{osp.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_torch_save(obj: Any, filename: str) -> None:
    """``torch.save(obj, filename)`` that never leaves a partial ``filename``.

    Writes ``.<name>.tmp<pid>`` in the same folder, flushes it to disk and renames it over
    ``filename`` (atomic on POSIX and Windows); on any failure the temporary file is removed and
    an existing ``filename`` is untouched. A temporary file of the same name left by a process
    that was killed (``SIGKILL`` cannot be caught) is removed first.
    """
    _atomic_write(filename, lambda f: torch.save(obj, f))


def save_checkpoint(
    checkpoint: dict,
    filename: str,
    file_client_args: dict | None = None,
    backend_args: dict | None = None,
) -> None:
    """mmengine's ``save_checkpoint``; a plain local path is written by
    :func:`atomic_torch_save`, other back-ends (``s3://``, ``pavi://`` ...) as mmengine does."""
    if file_client_args is None and backend_args is None and "://" not in str(filename):
        atomic_torch_save(checkpoint, str(filename))
    else:
        _mmengine_save_checkpoint(
            checkpoint, filename, file_client_args=file_client_args, backend_args=backend_args
        )


save_checkpoint._kd_det_original = _mmengine_save_checkpoint  # type: ignore[attr-defined]


def _save_checkpoint_with_step(self: CheckpointHook, runner: Any, step: int, meta: dict) -> None:
    """mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step`` in a crash-safe order:
    save the new checkpoint, point ``last_checkpoint`` at it (atomically), and only then delete
    the checkpoint that ``max_keep_ckpts`` retires. (mmengine deletes it first and rewrites
    ``last_checkpoint`` in place: a kill in between left no checkpoint, or an empty pointer.)"""
    retired = None
    if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            retired = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

    ckpt_filename = self.filename_tmpl.format(step)
    self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
    runner.message_hub.update_info("last_ckpt", self.last_ckpt)
    runner.save_checkpoint(
        self.out_dir,
        ckpt_filename,
        self.file_client_args,
        save_optimizer=self.save_optimizer,
        save_param_scheduler=self.save_param_scheduler,
        meta=meta,
        by_epoch=self.by_epoch,
        backend_args=self.backend_args,
        **self.args,
    )
    if not is_main_process():  # model-parallel strategies save on every rank; rank 0 points
        return
    last_ckpt = str(self.last_ckpt)
    _atomic_write(osp.join(runner.work_dir, "last_checkpoint"), lambda f: f.write(last_ckpt), "w")
    if retired is not None:
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(retired))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
            self.file_backend.rmtree(path)


def find_latest_checkpoint(path: str) -> str | None:
    """The checkpoint ``--resume`` (``resume=True`` without ``load_from``) continues from:
    what ``<path>/last_checkpoint`` names, as mmengine reads it; if that file is missing or
    empty, or names a local file that does not exist, the newest ``*.pth`` in ``path`` (by
    modification time), or ``None`` when there is none."""
    named = _mmengine_find_latest_checkpoint(path)
    if named and ("://" in named or osp.isfile(named)):
        return named
    candidates = [
        osp.join(path, entry)
        for entry in (os.listdir(path) if osp.isdir(path) else [])
        if entry.endswith(".pth")
        and not entry.startswith(".")
        and osp.isfile(osp.join(path, entry))
    ]
    newest = max(candidates, key=osp.getmtime, default=None)
    state = f"names {named!r}, which does not exist" if named else "is missing or empty"
    print_log(
        f"{osp.join(path, 'last_checkpoint')} {state}; "
        + (f"resuming from the newest checkpoint, {newest}" if newest else "no checkpoint found"),
        logger="current",
        level=logging.WARNING,
    )
    return newest


_save_checkpoint_with_step._kd_det_original = _original(  # type: ignore[attr-defined]
    CheckpointHook._save_checkpoint_with_step
)
find_latest_checkpoint._kd_det_original = _mmengine_find_latest_checkpoint  # type: ignore[attr-defined]


def install_atomic_save() -> None:
    """Replace ``save_checkpoint`` where the Runner, CheckpointHook and strategies find it, the
    hook's checkpoint rotation and the Runner's ``find_latest_checkpoint``."""
    for module in (mmengine_checkpoint, mmengine_runner, mmengine_runner_module):
        module.save_checkpoint = save_checkpoint
        module.find_latest_checkpoint = find_latest_checkpoint
    CheckpointHook._save_checkpoint_with_step = _save_checkpoint_with_step  # type: ignore[method-assign]


def install() -> None:
    """Apply every fix of this module (idempotent)."""
    install_checkpoint_loaders()
    install_distributed_fixes()
    install_atomic_save()


install()
