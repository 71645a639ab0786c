"""dvc.yaml is generated from the architectures' descriptions and the code, and lists exactly what each stage reads."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from sr4x.architectures import ARCHITECTURES
from sr4x.config import MODELS
from sr4x.evaluation import BASELINES
from sr4x.pipeline import render
from sr4x.provenance import project_imports, source_digest

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def test_dvc_yaml_is_what_the_generator_writes():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert (ROOT / "dvc.yaml").read_text() == render(params), "dvc.yaml is stale: run python -m sr4x.pipeline"


def test_every_list_of_architectures_agrees_with_the_registry():
    archs = list(ARCHITECTURES)
    assert list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"]) == archs
    assert list(STAGES["train"]["foreach"]) == archs
    assert list(STAGES["evaluate"]["foreach"]) == [*archs, "sr_gan"] == list(MODELS)
    assert STAGES["baseline"]["matrix"]["method"] == list(BASELINES)
    for stage in ("compare", "perception"):
        models = [d for d in STAGES[stage]["deps"] if d.startswith("models/") and d != "models/judge.pt"]
        assert models == [f"models/{m}.pt" for m in MODELS], stage
    compare = STAGES["compare"]["deps"]
    assert [d for d in compare if d.startswith("plots/curves/")] == [f"plots/curves/{a}.csv" for a in archs]
    mse_plots, (gan_plot,) = DVC_YAML["plots"][:2], DVC_YAML["plots"][2:]
    for plot in mse_plots:
        (definition,) = plot.values()
        assert list(definition["y"]) == [f"plots/curves/{a}.csv" for a in archs]
    assert list(gan_plot["gan_losses_per_epoch"]["y"]) == ["plots/curves/sr_gan.csv"]


def test_sr_gan_is_evaluated_as_an_sr_and_its_samples_read_the_sr_weights_too():
    items = STAGES["evaluate"]["foreach"]
    assert items["sr_gan"] == {**items["sr"], "beside": "models/sr.pt"}
    assert all(items[a]["beside"] == f"models/{a}.pt" for a in ARCHITECTURES)
    assert "${item.beside}" in STAGES["evaluate"]["do"]["deps"]
    assert "models/sr.pt" in STAGES["train_gan"]["deps"]  # sr_gan starts from the trained sr


def test_the_judge_and_the_scores_never_run_the_upscalers_training_code():
    perception = set(STAGES["perception"]["deps"])
    assert not perception & {"src/sr4x/training.py", "src/sr4x/gan.py", "src/sr4x/judge_training.py"}
    assert "src/sr4x/gan.py" not in STAGES["judge"]["deps"]


def test_every_stage_depends_on_exactly_the_code_it_runs():
    for name, stage in STAGES.items():
        stage = stage.get("do", stage)
        module = re.match(r"python -m (\S+)", stage["cmd"]).group(1)
        code = {d for d in stage["deps"] if d.endswith(".py")}
        assert code == set(project_imports(module)), name


def test_each_stage_depends_on_what_it_runs_only():
    baseline, evaluate, train = (set(STAGES[s].get("do", STAGES[s])["deps"]) for s in ("baseline", "evaluate", "train"))
    assert not baseline & {f"src/sr4x/{m}.py" for m in ("models", "training", "conv_cropping", "inference", "archive",
                                                         "devices")}
    assert "src/sr4x/archive.py" not in evaluate | train  # the unpickler reaches download and prepare only
    assert "src/sr4x/training.py" not in evaluate and "src/sr4x/conv_cropping.py" not in evaluate
    assert "src/sr4x/devices.py" in evaluate & train  # the device, and the `auto` table beside it
    assert "src/sr4x/figures.py" not in train
    assert all("src/sr4x/paths.py" in deps for deps in (baseline, evaluate, train))


def test_the_import_walk_sees_indirect_imports():
    assert "src/sr4x/config.py" in project_imports("stages.download")  # via sr4x.stage
    assert "src/sr4x/conv_cropping.py" in project_imports("stages.train")  # via sr4x.training
    assert "src/sr4x/pairs.py" in project_imports("stages.train")  # a module the old hand list missed


def test_sr_train_settings_come_from_its_overrides_and_the_rest_from_train():
    items = STAGES["train"]["foreach"]
    assert items["sr"]["lr"] == "models.sr.train.lr" and items["sr"]["batch_size"] == "train.batch_size"
    assert all(items[a]["lr"] == "train.lr" for a in ("fc", "conv", "resnet"))


def test_the_checkpoint_fingerprint_follows_every_file_of_the_walk(tmp_path):
    for folder in ("src", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest("stages.train", tmp_path)
    (tmp_path / "src/sr4x/figures.py").write_text("# not run by train\n")
    assert source_digest("stages.train", tmp_path) == before
    with open(tmp_path / "src/sr4x/pairs.py", "a") as f:  # run through stages.train's imports
        f.write("# edited\n")
    assert source_digest("stages.train", tmp_path) != before


TOY_MODEL = """

class Toy(nn.Module):
    \"\"\"A toy: nearest-neighbour upsampling times a learned gain.\"\"\"

    def __init__(self, gain: int = 1) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.full((), float(gain)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4) * self.gain
"""


def test_adding_an_architecture_is_one_class_one_entry_and_its_params_block(tmp_path):
    for folder in ("src", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "src/sr4x/models.py", "a") as f:
        f.write(TOY_MODEL)
    registry = (tmp_path / "src/sr4x/architectures.py").read_text()
    entry = '    "toy": Architecture("Toy", {"gain": 1}),\n'
    registry = registry.replace('    "sr": Architecture(', entry + '    "sr": Architecture(')
    (tmp_path / "src/sr4x/architectures.py").write_text(registry)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"]["toy"] = {"gain": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    copy = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}  # the copy's library, not the installed one
    subprocess.run([sys.executable, "-m", "sr4x.pipeline"], cwd=tmp_path, env=copy, check=True)
    generated = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert list(generated["train"]["foreach"]) == ["fc", "conv", "resnet", "toy", "sr"]
    assert generated["evaluate"]["foreach"]["toy"]["option_1"] == "models.toy.gain"
    assert "models/toy.pt" in generated["compare"]["deps"] and "models.toy.gain" in generated["compare"]["params"]
    built = subprocess.run([sys.executable, "-c", "from sr4x.models import build_model; import torch; "
                            "print(build_model('toy', gain=2)(torch.ones(1, 3, 8, 8)).shape)"],
                           cwd=tmp_path, env=copy, capture_output=True, text=True, check=True)
    assert built.stdout.strip() == "torch.Size([1, 3, 32, 32])"


def test_a_folder_source_gets_three_stages_that_read_only_its_keys():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sources"] = {"photos": {"folder": "data/photos", "test_fraction": 0.2, "patch": 128, "stride": 64,
                                    "flat_threshold": 2.0, "skip_bad": False, "crop": 96, "start_from": "sr",
                                    "train": {"epochs": 300, "batch_size": 16}}}
    generated = yaml.safe_load(render(params))["stages"]
    assert set(generated) - set(STAGES) == {"prepare_folder", "train_folder", "evaluate_folder"}
    assert {name: generated[name] for name in STAGES} == STAGES  # CIFAR-10's stages are untouched
    prepare, train, evaluate = (generated[s] for s in ("prepare_folder", "train_folder", "evaluate_folder"))
    assert prepare["foreach"] == {"photos": {"folder": "data/photos"}} and "${item.folder}" in prepare["do"]["deps"]
    item = train["foreach"]["photos"]
    assert item["epochs"] == "sources.photos.train.epochs" and item["batch_size"] == "sources.photos.train.batch_size"
    assert item["lr"] == "models.sr.train.lr" and item["threads"] == "train.threads"  # sr's recipe, then the shared
    assert "models/sr.pt" in evaluate["do"]["deps"]  # the CIFAR-trained sr, scored beside the photo-trained one
    assert "models/sr.pt" in train["do"]["deps"] and "sources.${key}.start_from" in train["do"]["params"]
    for stage in (prepare, train, evaluate):
        keys = [k for k in stage["do"]["params"] if not k.startswith("${item.")]
        assert all(k.startswith(("sources.${key}.", "models.sr.", "evaluate.samples")) for k in keys), keys
