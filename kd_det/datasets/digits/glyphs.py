"""The source digits: scikit-learn's 1,797 real 8×8 handwritten digits and their fixed
train/val pools (train images only use train digits and val images only val digits)."""

from __future__ import annotations

import functools

import numpy as np

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Class names of both sets; COCO category ``id = digit + 1``, ``name = str(digit)``."""
DETECTION_METAINFO: dict[str, tuple[str, ...]] = {"classes": DIGIT_CLASSES}
CLASSIFICATION_METAINFO: dict[str, tuple[str, ...]] = {"classes": DIGIT_CLASSES}

NUM_DIGITS = 1797
VAL_FRACTION = 0.25
"""Share of each class's digits held out for the val pool."""
POOL_SEED = 0
"""The train/val digit pools are fixed (independent of the generation seed)."""

_SET_CODES = {"det": 0, "cls": 1}
_SPLIT_CODES = {"train": 0, "val": 1}


@functools.lru_cache(maxsize=1)
def load_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as float32 glyphs in [0, 1], shape (1797, 8, 8), and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    glyphs = (digits.images / 16.0).astype(np.float32)
    glyphs.setflags(write=False)
    labels = digits.target.astype(np.int64)
    labels.setflags(write=False)
    return glyphs, labels


@functools.lru_cache(maxsize=4)
def digit_pools(val_fraction: float = VAL_FRACTION, seed: int = POOL_SEED) -> dict[str, np.ndarray]:
    """Disjoint train/val pools of digit indices into ``load_glyphs()``, stratified by class.

    Each class's indices are shuffled with ``seed`` and the first ``round(n * val_fraction)``
    go to ``'val'``. Both arrays are sorted; together they hold every index exactly once.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    _, labels = load_glyphs()
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in range(len(DIGIT_CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_val = round(len(idx) * val_fraction)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    pools = {"train": np.sort(np.concatenate(train)), "val": np.sort(np.concatenate(val))}
    for arr in pools.values():
        arr.setflags(write=False)
    return pools


def image_rng(seed: int, kind: str, split: str, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of ``split`` (``'train'``/``'val'``) of set ``kind``
    (``'det'``/``'cls'``): each image has its own, so any image can be redrawn alone."""
    return np.random.default_rng([seed, _SET_CODES[kind], _SPLIT_CODES[split], index])
