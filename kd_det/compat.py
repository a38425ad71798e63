"""Fixes that make mmengine 0.10.7 / mmdet 3.3.0 run on current PyTorch.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine's local-file checkpoint
loader does not say otherwise, so every checkpoint the Runner saved (it pickles a
``message_hub``) failed to load: ``--resume``, ``load_from``, ``tools/test.py CKPT`` and teacher
checkpoints. Importing kd_det registers a local-file loader that passes
``weights_only=False``. That unpickles arbitrary objects, which is what mmengine did on the
torch versions it was written for: load only checkpoints you trust.
"""

from __future__ import annotations

import os.path as osp
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint file written by ``torch.save`` (trusted file, full unpickling)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename!r} does not exist")
    return torch.load(filename, map_location=map_location, weights_only=False)


def install() -> None:
    """Register :func:`load_local_checkpoint` as mmengine's loader for plain local paths."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)


install()
