"""dvc.yaml lists, for every stage, all the project code its command imports: otherwise an edit
to a helper module would leave stale results that `dvc status` calls up to date."""
import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def project_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Files of `src`/`stages` modules that `module` imports, directly or through each other."""
    seen = set() if seen is None else seen
    path = f"{module.replace('.', '/')}.py"
    if path in seen or not (ROOT / path).exists():
        return seen
    seen.add(path)
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            if name.split(".")[0] in ("src", "stages"):
                project_imports(name, seen)
    return seen


def test_every_stage_depends_on_all_the_code_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages
    for name, stage in stages.items():
        module = re.match(r"python -m (\S+)", stage["cmd"]).group(1)
        missing = project_imports(module) - set(stage["deps"])
        assert not missing, f"stage {name} imports {sorted(missing)} but does not list them in deps"


def test_the_import_walk_sees_indirect_imports():
    assert "src/config.py" in project_imports("stages.download")  # via src.cli
    assert "src/pairs.py" in project_imports("stages.compare")  # direct, and via src.training
