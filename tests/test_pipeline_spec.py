"""dvc.yaml is generated from the one list of architectures and the code, and lists exactly what each stage reads."""
import re
import shutil
from pathlib import Path

import yaml

from src.config import ARCHITECTURES, BASELINES
from src.imports import project_imports, source_digest
from src.models import MODELS
from src.pipeline import render

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def test_dvc_yaml_is_what_the_generator_writes():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert (ROOT / "dvc.yaml").read_text() == render(params), "dvc.yaml is stale: run python -m src.pipeline"


def test_every_list_of_architectures_agrees_with_the_registry():
    archs = list(ARCHITECTURES)
    assert list(MODELS) == archs
    assert list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"]) == archs
    assert list(STAGES["train"]["foreach"]) == list(STAGES["evaluate"]["foreach"]) == archs
    assert STAGES["baseline"]["matrix"]["method"] == list(BASELINES)
    compare = STAGES["compare"]["deps"]
    assert [d for d in compare if d.startswith("models/")] == [f"models/{a}.pt" for a in archs]
    assert [d for d in compare if d.startswith("plots/curves/")] == [f"plots/curves/{a}.csv" for a in archs]
    for plot in DVC_YAML["plots"]:
        (definition,) = plot.values()
        assert list(definition["y"]) == [f"plots/curves/{a}.csv" for a in archs]


def test_every_stage_depends_on_exactly_the_code_it_runs():
    for name, stage in STAGES.items():
        stage = stage.get("do", stage)
        module = re.match(r"python -m (\S+)", stage["cmd"]).group(1)
        code = {d for d in stage["deps"] if d.endswith(".py")}
        assert code == set(project_imports(module)), name


def test_baselines_do_not_depend_on_model_or_training_code():
    code = set(STAGES["baseline"]["deps"])
    assert not code & {"src/models.py", "src/training.py", "src/conv_cropping.py", "src/inference.py"}
    assert "src/figures.py" not in STAGES["train"]["do"]["deps"]


def test_the_import_walk_sees_indirect_imports():
    assert "src/config.py" in project_imports("stages.download")  # via src.cli
    assert "src/conv_cropping.py" in project_imports("stages.train")  # via src.training
    assert "src/pairs.py" in project_imports("stages.train")  # a module the old hand list missed


def test_sr_train_settings_come_from_its_overrides_and_the_rest_from_train():
    items = STAGES["train"]["foreach"]
    assert items["sr"]["lr"] == "models.sr.train.lr" and items["sr"]["batch_size"] == "train.batch_size"
    assert all(items[a]["lr"] == "train.lr" for a in ("fc", "conv", "resnet"))


def test_the_checkpoint_fingerprint_follows_every_file_of_the_walk(tmp_path):
    for folder in ("src", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest("stages.train", tmp_path)
    (tmp_path / "src/figures.py").write_text("# not run by train\n")
    assert source_digest("stages.train", tmp_path) == before
    with open(tmp_path / "src/pairs.py", "a") as f:  # run through stages.train's imports
        f.write("# edited\n")
    assert source_digest("stages.train", tmp_path) != before
