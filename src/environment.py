"""The software environment a result was made in, recorded beside it."""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from pathlib import Path

import torch

LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"
KEY_PACKAGES = ("torchvision", "numpy", "pillow")


def environment() -> dict[str, str | None]:
    """Python, torch's build (such as 2.14.1+cu130), the key packages' versions, and requirements.lock's
    sha256 (None without one)."""
    versions = {"torch": torch.__version__}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    lock = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest() if LOCK_FILE.exists() else None
    return {"python": platform.python_version(), **versions, "requirements_lock_sha256": lock}
