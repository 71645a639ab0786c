"""The project's own source files a module runs: the walk behind dvc.yaml's code deps and the source digest."""
from __future__ import annotations

import ast
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
                # `from src import paths` names a module; `from src.x import f` a name in one (skipped above)
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return sorted(seen)
