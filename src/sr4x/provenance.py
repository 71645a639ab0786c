"""Provenance: the project files a module runs (dvc.yaml's code deps), file and source digests, run fingerprints,
and the environment a result was made in."""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository: src/sr4x/provenance.py
PACKAGES = {"sr4x": "src/sr4x", "stages": "stages"}  # project packages -> their folders
LOCK_FILE = ROOT / "requirements.lock"
KEY_PACKAGES = ("torchvision", "numpy", "pillow")


def module_path(module: str) -> str | None:
    """The file of a project module, relative to the repository root; None for any other module."""
    package, _, rest = module.partition(".")
    if package not in PACKAGES or not rest:
        return None
    return f"{PACKAGES[package]}/{rest.replace('.', '/')}.py"


def project_imports(module: str, root: Path = ROOT) -> list[str]:
    """Sorted paths (relative to `root`) of `module` and every project module it imports, directly or not."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        path = module_path(todo.pop())
        if path is None or path in seen or not (root / path).exists():
            continue  # a package's __init__ or a name imported from a module, not a module itself
        seen.add(path)
        for node in ast.walk(ast.parse((root / path).read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from sr4x import paths` names a module; `from sr4x.x import f` a name in one (skipped above)
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return sorted(seen)


def file_md5(path: str | os.PathLike) -> str:
    """The hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_digest(module: str, root: Path = ROOT) -> str:
    """sha256 over the paths and contents of `project_imports(module)`: changes with any code the module runs."""
    digest = hashlib.sha256()
    for path in project_imports(module, root):
        digest.update(path.encode() + b"\0" + (root / path).read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (params, versions, data digests)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
