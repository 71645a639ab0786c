"""A folder of images turned into super-resolution data: every file checked, split by image, cut into sub-images.

- Files: every file under the folder, in path order; names starting with "." are ignored. A symbolic
  link must point inside the folder. Identical files are used once (the first path).
- Split: by the sha256 of each file's contents, so adding or removing a photo never moves another
  between the splits, and identical contents always land together.
- Pairs: each image is cropped at its bottom and right to a multiple of SCALE, and its input made by
  `degradation.downscale`, the function that makes the CIFAR-10 pairs: models and baselines see one protocol.
- Training images are cut into `patch`-pixel sub-images every `stride` pixels (the last row and
  column reach the image's edges; BasicSR's extract_subimages), each with its aligned input; those
  whose pixel standard deviation is below `flat_threshold` are dropped. Held-out images stay whole.

The files (named in `paths.py`): info.json (what was used, converted, dropped and skipped, and the
split); train/hr-NNNNN.npy and train/lr-NNNNN.npy, shards of SHARD_SIZE uint8 (n, 3, s, s) sub-images
and their inputs; test/hr/NNNN.png and test/lr/NNNN.png, each held-out image and its input. Memory
holds one decoded image and one shard of sub-images, whatever the folder's size, and no torch.
"""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from sr4x.architectures import SCALE
from sr4x.atomic import atomic_dir, write_json
from sr4x.config import SourceParams
from sr4x.degradation import downscale
from sr4x.errors import ProjectError
from sr4x.paths import SHARD_SIZE, SOURCE_INFO, source_shard, source_test_image
from sr4x.photos import BadImage, read_photo


class SourceError(ProjectError):
    """A folder source that cannot be prepared: names every file at fault and why."""


class ShardWriter:
    """Collects (hr, lr) CHW uint8 sub-images and writes them out SHARD_SIZE at a time."""

    def __init__(self, root: Path, patch: int) -> None:
        (root / "train").mkdir(parents=True, exist_ok=True)
        self.root, self.count, self.shards = root, 0, []
        self.hr = np.empty((SHARD_SIZE, 3, patch, patch), dtype=np.uint8)
        self.lr = np.empty((SHARD_SIZE, 3, patch // SCALE, patch // SCALE), dtype=np.uint8)

    def add(self, hr: np.ndarray, lr: np.ndarray) -> None:
        self.hr[self.count], self.lr[self.count] = hr, lr
        self.count += 1
        if self.count == SHARD_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.count:
            for half, buffer in (("hr", self.hr), ("lr", self.lr)):
                np.save(source_shard(self.root, half, len(self.shards)), buffer[:self.count])
            self.shards.append(self.count)
            self.count = 0


def write_test_image(root: Path, index: int, hr: np.ndarray, lr: np.ndarray) -> None:
    """A held-out image (HWC uint8) and its low-resolution input, as PNG."""
    for half, image in (("hr", hr), ("lr", lr)):
        path = source_test_image(root, half, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def list_files(folder: Path) -> list[Path]:
    """Every file under `folder` (links included), sorted by path, skipping names that start with "."."""
    found = (p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def held_out(digest: str, test_fraction: float) -> bool:
    """Whether an image with this content hash is in the test split (a fixed function of the hash alone)."""
    return int(digest[:16], 16) / 2**64 < test_fraction


def positions(length: int, patch: int, stride: int) -> list[int]:
    """Sub-image offsets along one axis: every `stride`, plus one that ends at the edge."""
    starts = list(range(0, length - patch + 1, stride))
    return starts + [length - patch] if starts[-1] != length - patch else starts


DVC_CACHE = Path(".dvc/cache")  # where DVC's symlink checkouts (cache.type symlink) point


def outside_link(path: Path, folder: Path) -> str | None:
    """Why `path` may not be read: a symbolic link (or one in its path) that leads out of `folder` (or DVC's cache),
    or nowhere."""
    target = path.resolve()
    if not any(target.is_relative_to(root.resolve()) for root in (folder, DVC_CACHE)):
        return f"a symbolic link to {target}, outside the folder"
    return None if target.exists() else f"a symbolic link to {target}, which does not exist"


def prepare_folder(name: str, source: SourceParams, target: Path) -> dict[str, Any]:
    """Check, split and cut every image of `source.folder` into the folder `target`, with its info.json; return
    that summary.

    Every file is checked in one pass. Unless `source.skip_bad`, any bad file stops it with one message naming
    every bad file and why. The output is built beside `target` and replaces it only on success: a failed
    prepare writes nothing.
    """
    with atomic_dir(target) as out:
        info = _prepare_into(name, source, out)
        write_json(out / SOURCE_INFO, info)
    return info


def _prepare_into(name: str, source: SourceParams, out: Path) -> dict[str, Any]:
    folder = Path(source.folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: no such folder (sources.{name}.folder); put your images there and "
                          f"`dvc add {folder}`")
    files = list_files(folder)
    if not files:
        raise SourceError(f"{folder}: the folder has no files (names starting with '.' are ignored)")
    shards = ShardWriter(out, source.patch)
    seen: dict[str, str] = {}
    bad, duplicates, train, test = [], [], [], []
    converted: Counter[str] = Counter()
    flat = 0
    for path in tqdm(files, desc=f"prepare_folder@{name}", unit="image", disable=None):
        file = str(path.relative_to(folder))
        try:
            problem = outside_link(path, folder)
            if problem:
                raise BadImage(problem)
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                duplicates.append({"file": file, "same_as": seen[digest]})
                continue
            rgb, mode = read_photo(io.BytesIO(data))
            height, width = (n - n % SCALE for n in rgb.shape[:2])
            if min(height, width) < source.patch:
                raise BadImage(f"{rgb.shape[1]}x{rgb.shape[0]} pixels, smaller than one {source.patch}x{source.patch} "
                               f"patch (sources.{name}.patch)")
        except BadImage as err:
            bad.append({"file": file, "reason": str(err)})
            continue
        seen[digest] = file
        if mode:
            converted[mode] += 1
        high = rgb[:height, :width]
        low = downscale(high)
        entry = {"file": file, "sha256": digest, "width": width, "height": height, "converted_from": mode}
        if held_out(digest, source.test_fraction):
            write_test_image(out, len(test), high, low)
            test.append(entry)
            continue
        kept = 0
        for top in positions(height, source.patch, source.stride):
            for left in positions(width, source.patch, source.stride):
                patch = high[top:top + source.patch, left:left + source.patch]
                if patch.std() < source.flat_threshold:
                    flat += 1
                    continue
                small = low[top // SCALE:(top + source.patch) // SCALE, left // SCALE:(left + source.patch) // SCALE]
                shards.add(patch.transpose(2, 0, 1), small.transpose(2, 0, 1))
                kept += 1
        train.append({**entry, "patches": kept})
    shards.flush()
    if bad and not source.skip_bad:
        listing = "\n".join(f"  {b['file']}: {b['reason']}" for b in bad)
        raise SourceError(f"{folder}: {len(bad)} of {len(files)} files cannot be used; nothing was written "
                          f"(sources.{name}.skip_bad: true skips them):\n{listing}")
    for split, entries in (("train", train), ("test", test)):
        if not entries:
            raise SourceError(f"{folder}: no usable image in the {split} split ({len(train)} train, {len(test)} test "
                              f"of {len(files)} files); add images or change sources.{name}.test_fraction")
    if not sum(shards.shards):
        raise SourceError(f"{folder}: every training sub-image is near-flat (sources.{name}.flat_threshold)")
    return {
        "source": name, "folder": str(folder), "files": len(files),
        "degradation": "sr4x.degradation.downscale: PIL bilinear with antialiasing (torchvision Resize), 1/4 size",
        "train_images": len(train), "test_images": len(test), "train_patches": sum(shards.shards),
        "flat_patches_dropped": flat, "shards": shards.shards, "converted": dict(sorted(converted.items())),
        "skipped": bad, "duplicates": duplicates, "train": train, "test": test,
    }
