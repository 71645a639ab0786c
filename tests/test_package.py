"""The project installs as one package of its own name, and nothing edits the import path."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_install_holds_exactly_one_top_level_package_named_for_the_project():
    assert importlib.metadata.distribution("sr4x").read_text("top_level.txt").split() == ["sr4x"]
    commands = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
                if e.dist and e.dist.name == "sr4x"}
    assert commands == {"sr4x-upscale": "sr4x.upscale:main"}


def test_the_library_imports_from_anywhere_and_src_or_stages_from_nowhere_else(tmp_path):
    def imports(module: str) -> bool:
        return subprocess.run([sys.executable, "-c", f"import {module}"], cwd=tmp_path).returncode == 0

    assert imports("sr4x.upscale")
    assert not imports("src") and not imports("stages")


def test_no_code_edits_the_import_path():
    files = [p for folder in ("src", "stages", "tests", "bench") for p in (ROOT / folder).rglob("*.py")
             if p != Path(__file__)]  # this file names what it looks for
    assert files and not [p for p in files if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()]
