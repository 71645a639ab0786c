"""The project's own source files a module runs: the walk behind dvc.yaml's code deps and the checkpoint fingerprint."""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("src", "stages")


def project_imports(module: str, root: Path = ROOT) -> list[str]:
    """Sorted paths (relative to `root`) of `module` and every `src`/`stages` module it imports, directly or not."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        path = f"{todo.pop().replace('.', '/')}.py"
        if path in seen or not (root / path).exists():
            continue  # a package's __init__ or a name imported from a module, not a module itself
        seen.add(path)
        for node in ast.walk(ast.parse((root / path).read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                todo.append(node.module)
    return sorted(seen)


def source_digest(module: str, root: Path = ROOT) -> str:
    """sha256 over the paths and contents of `project_imports(module)`: changes with any code the module runs."""
    digest = hashlib.sha256()
    for path in project_imports(module, root):
        digest.update(path.encode() + b"\0" + (root / path).read_bytes() + b"\0")
    return digest.hexdigest()
