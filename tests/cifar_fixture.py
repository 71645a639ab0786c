"""Tiny archives in the official CIFAR-10 python layout, built in-process for the tests."""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

PREFIX = "cifar-10-batches-py"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def smooth_images(n: int, seed: int) -> np.ndarray:
    """`n` random but smooth 32x32 RGB images as rows of 3072 uint8 (CHW order), like CIFAR's."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 3, 4, 4))
    images = coarse.repeat(8, axis=2).repeat(8, axis=3) + rng.normal(0, 8, size=(n, 3, 32, 32))
    return images.clip(0, 255).astype(np.uint8).reshape(n, 3072)


def batch_bytes(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way the official files are laid out (dict with bytes keys)."""
    return pickle.dumps({b"batch_label": b"tiny", b"data": data, b"labels": labels,
                         b"filenames": [b"x.png"] * len(labels)}, protocol=3)


def add_member(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def write_archive(path: Path, per_batch: int = 40, n_test: int = 100, seed: int = 0,
                  members: dict[str, bytes] | None = None) -> Path:
    """Write a tiny CIFAR-format .tar.gz: 5 train batches of `per_batch` images and a test batch.

    `members` replaces or adds members by name (relative to the archive root) for fault tests.
    """
    rng = np.random.default_rng(seed)
    blobs: dict[str, bytes] = {}
    for i, n in enumerate([per_batch] * 5 + [n_test]):
        name = f"{PREFIX}/data_batch_{i + 1}" if i < 5 else f"{PREFIX}/test_batch"
        blobs[name] = batch_bytes(smooth_images(n, seed * 10 + i), rng.integers(0, 10, n).tolist())
    blobs[f"{PREFIX}/batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in CLASSES]}, protocol=3)
    blobs.update(members or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            add_member(tar, name, blob)
    return path
