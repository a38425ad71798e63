"""Multi-process training on CPUs: ``torchrun --nproc-per-node 2 tools/train.py CFG --launcher
pytorch`` with the gloo backend, through kd_det's compat layer (no setting, no config key)."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kd_det.cli import close_process_group
from kd_det.compat import load_local_checkpoint
from tests.conftest import REPO, det_data_overrides, read_scalars, short_schedule, write_config
from tests.distill_helpers import make_runner

# records, on every rank and iteration, what the test checks: the wrapper DDP built, the
# parameters it reduces, the images of the rank's batch and the rank's own losses
PROBE = """
import json
import os

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DDPProbe(Hook):
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        record = dict(
            iter=runner.iter,
            rank=get_rank(),
            world_size=get_world_size(),
            wrapper=type(runner.model).__name__,
            device_ids=getattr(runner.model, 'device_ids', None),
            find_unused=getattr(runner.model, 'find_unused_parameters', None),
            reduced=[n for n, p in model.named_parameters() if p.requires_grad],
            teacher_grads=[n for n, p in model.teacher.named_parameters() if p.grad is not None],
            img_ids=[s.img_id for s in data_batch['data_samples']],
            losses={k: float(torch.as_tensor(v).detach()) for k, v in outputs.items()})
        path = os.path.join(self.out_dir, f'rank{record["rank"]}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\\n')
"""


# the two fixes in isolation: mmengine's torchrun initialisation asked for nccl on a machine
# without CUDA, and its DDP wrapper given device_ids for a CPU module, as the Runner does
WRAP_SCRIPT = """
import os

import torch
from mmengine.dist import get_rank, init_dist
from mmengine.model import MMDistributedDataParallel

import kd_det  # noqa: F401
from kd_det.cli import close_process_group

init_dist('pytorch', backend='nccl')
assert torch.distributed.get_backend() == 'gloo', torch.distributed.get_backend()
rank = get_rank()
torch.manual_seed(rank)  # different weights per rank: DDP must broadcast rank 0's
model = torch.nn.Linear(3, 1)
ddp = MMDistributedDataParallel(
    module=model, device_ids=[int(os.environ['LOCAL_RANK'])], broadcast_buffers=False)
assert ddp.device_ids is None
torch.manual_seed(0)
assert torch.equal(model.weight.detach(), torch.nn.Linear(3, 1).weight.detach())
ddp(torch.full((1, 3), float(rank + 1))).sum().backward()
# d(w . x + b)/dw = x, averaged over the ranks' inputs 1 and 2
assert torch.equal(model.weight.grad, torch.full((1, 3), 1.5)), model.weight.grad
print(f'rank {rank} ok', flush=True)
# as tools/train.py ends: the DDP wrapper, which holds the group, goes first
del ddp
close_process_group()
assert not torch.distributed.is_initialized()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path: Path, digits_root: Path, batch_size: int) -> Path:
    """The SRD digits config, made comparable between 2 x 2 and 1 x 4 images: student BN in
    eval mode and no BN in the connector (batch statistics of 2 images are not those of 4), an
    MSE feature loss and the mean-normalised sigmoid KD (both a mean over images, so the mean of
    the ranks' values is the value on the whole batch); no shuffling; a probe hook; validation
    also dumps its predictions (rank 0 writes what all ranks gathered)."""
    probe_dir = tmp_path / f"probe_b{batch_size}"
    probe_dir.mkdir()
    body = det_data_overrides(digits_root, batch_size=batch_size) + short_schedule(epochs=1)
    body += f"""
custom_imports = dict(imports=['kd_det', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='DDPProbe', out_dir={str(probe_dir)!r})]
train_dataloader['dataset']['indices'] = 8
train_dataloader['sampler'] = dict(shuffle=False)
model = dict(
    teacher_ckpt=None,
    student=dict(backbone=dict(norm_eval=True)),
    distill=dict(fpn=dict(connector=dict(norm=None),
                          loss=dict(_delete_=True, type='MSEFeatureLoss', loss_weight=2.0))))
val_evaluator = [dict(type='CocoMetric', ann_file=_data_root + 'annotations/val.json', metric='bbox'),
                 dict(type='DumpResults', out_file_path={str(tmp_path / "preds.pkl")!r})]
train_cfg = dict(max_epochs=1, val_interval=1)
"""
    return write_config(
        tmp_path / f"srd_b{batch_size}.py", ["srd/srd_retinanet-w32-w8_fpn_24e_digits.py"], body
    )


def _torchrun(*args: str, env: dict[str, str], timeout: int = 900) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(_free_port()), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return log


def _env(*paths: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([*map(str, paths), str(REPO), os.environ.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
    )


def test_torchrun_init_and_ddp_wrap_on_cpu(tmp_path: Path) -> None:
    script = tmp_path / "wrap.py"
    script.write_text(WRAP_SCRIPT)
    log = _torchrun(str(script), env=_env(), timeout=300)
    assert "rank 0 ok" in log and "rank 1 ok" in log
    assert "gloo backend instead of nccl" in log


def test_close_process_group_destroys_the_group_of_a_finished_run(tmp_path: Path) -> None:
    """tools/train.py and tools/test.py end with it: the group a torchrun run opened is
    destroyed once the Runner and its DDP wrapper are gone; without a group it does nothing."""
    close_process_group()  # a single-process run: nothing to close, no error
    torch.distributed.init_process_group(
        "gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1
    )
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 1))
        ddp(torch.ones(1, 2)).sum().backward()
        del ddp
        close_process_group()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_cpu_processes_train_like_one(
    tmp_path: Path, digits_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ddp_probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ddp_cfg = _config(tmp_path, digits_root, batch_size=2)
    work = tmp_path / "work"
    log = _torchrun("tools/train.py", str(ddp_cfg), "--launcher", "pytorch", "--work-dir", str(work),
                    env=_env(tmp_path))  # fmt: skip
    assert "find_unused_parameters" not in log and "unused parameters" not in log

    # two ranks, each with its own half of every global batch, wrapped for CPU by kd_det
    ranks = {r: _read_jsonl(tmp_path / "probe_b2" / f"rank{r}.jsonl") for r in (0, 1)}
    assert [len(rows) for rows in ranks.values()] == [2, 2]  # 8 images, 2 x 2 per iteration
    for rows in ranks.values():
        for row in rows:
            assert row["world_size"] == 2 and row["wrapper"] == "MMDistributedDataParallel"
            assert row["device_ids"] is None and row["find_unused"] is False
            # DDP reduces the parameters that require grad: the student's and the
            # connectors', never the teacher's, and the teacher never receives a gradient
            assert row["reduced"] and not [n for n in row["reduced"] if n.startswith("teacher.")]
            assert any(".connectors." in n for n in row["reduced"])
            assert row["teacher_grads"] == []
            assert {"distill.fpn.loss", "distill.cls.loss"} <= set(row["losses"])
    first = [ranks[r][0]["img_ids"] for r in (0, 1)]
    assert not set(first[0]) & set(first[1]) and sorted(first[0] + first[1]) == [1, 2, 3, 4]
    logged = [s for s in read_scalars(work) if "distill.fpn.loss" in s]
    assert logged and all("distill.cls.loss" in s for s in logged)

    # validation gathered every rank's predictions: all 16 validation images, once each
    preds = pickle.loads((tmp_path / "preds.pkl").read_bytes())
    assert sorted(p["img_id"] for p in preds) == list(range(1, 17))

    # one checkpoint (rank 0 writes it), nothing half-written, no teacher inside
    assert sorted(p.name for p in work.iterdir() if p.suffix == ".pth") == ["epoch_1.pth"]
    assert not [p.name for p in work.iterdir() if ".tmp" in p.name]
    ckpt = load_local_checkpoint(str(work / "epoch_1.pth"))
    assert not [k for k in ckpt["state_dict"] if k.startswith("teacher.")]

    # the same first iteration in one process on the global batch of 4: the distill terms
    # (means over images) equal the mean of the ranks' values; the detector's own losses are
    # normalised by the positives of each process's batch, so they are not compared
    single = make_runner(_config(tmp_path, digits_root, batch_size=4), tmp_path / "single",
                         train_cfg=dict(max_epochs=1, val_interval=9))  # fmt: skip
    single.train()
    reference = _read_jsonl(tmp_path / "probe_b4" / "rank0.jsonl")[0]
    assert sorted(reference["img_ids"]) == [1, 2, 3, 4]
    for key in ("distill.fpn.loss", "distill.cls.loss"):
        ranks_mean = (ranks[0][0]["losses"][key] + ranks[1][0]["losses"][key]) / 2
        assert ranks_mean == pytest.approx(reference["losses"][key], rel=1e-4), key

    # a single process resumes the two-process checkpoint and trains on
    resume_probe = tmp_path / "probe_resume"
    resume_probe.mkdir()
    resumed = make_runner(ddp_cfg, work, resume=True, load_from=str(work / "epoch_1.pth"),
                          train_cfg=dict(max_epochs=2, val_interval=9),
                          custom_hooks=[dict(type="DDPProbe", out_dir=str(resume_probe))])  # fmt: skip
    resumed.train()
    rows = _read_jsonl(resume_probe / "rank0.jsonl")
    assert rows[0]["iter"] == 2 and rows[0]["world_size"] == 1 and len(rows) == 4
    assert (work / "epoch_2.pth").is_file()
