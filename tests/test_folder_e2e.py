"""A folder of photos as a data source, end to end: `dvc add`, a block in params.yaml, the generated dvc.yaml,
`dvc repro`, `dvc metrics show`, a photo added, a key changed, a bad file refused; the real `dvc` CLI."""
import json
from pathlib import Path

import pytest
import yaml
from cifar_fixture import write_archive
from photo_fixture import photo, write_bad_file, write_good_folder
from PIL import Image
from test_pipeline_e2e import project_copy, sh

from sr4x.provenance import file_md5

SOURCE = {"folder": "data/photos", "test_fraction": 0.3, "patch": 32, "stride": 16, "flat_threshold": 2.0,
          "skip_bad": False, "crop": 16, "start_from": "sr", "train": {"epochs": 2, "batch_size": 8}}
FOLDER_STAGES = {"prepare_folder@photos", "train_folder@photos", "evaluate_folder@photos"}


def status(repo: Path) -> set[str]:
    return set(json.loads(sh(repo, "dvc", "status", "--json").stdout))


def generate_dvc_yaml(repo: Path) -> None:
    """The documented `python -m sr4x.pipeline`, with the copy's library (it writes beside its own sources)."""
    sh(repo, "env", f"PYTHONPATH={repo / 'src'}", "python", "-m", "sr4x.pipeline")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("folder_e2e")
    archive = write_archive(base / "tiny.tar.gz")
    repo = project_copy(base / "repo")
    write_good_folder(repo / "data/photos")
    sh(repo, "dvc", "add", "-q", "data/photos")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["download"] = {"url": str(archive), "md5": file_md5(archive)}
    params["train"] |= {"epochs": 1, "threads": 1}
    params["models"]["sr"]["train"]["epochs"] = 1
    params["sources"] = {"photos": SOURCE}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    generate_dvc_yaml(repo)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "a folder source")
    (repo / "repro.log").write_text(sh(repo, "dvc", "repro").stdout)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    return repo


def test_repro_prepares_trains_and_scores_the_folder(repo):
    log = (repo / "repro.log").read_text()
    assert "prepare_folder@photos: " in log and "converted {'L': 1, 'P': 1}" in log
    assert "train_folder@photos: 2 epochs" in log and "evaluate_folder@photos: " in log
    shown = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    data = workspace["data"]
    scores = data["metrics/sources/photos/scores.json"]["data"]["test"]
    assert set(scores) == {"images", "bicubic", "cifar_sr", "sr"}
    assert set(scores["sr"]) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}
    prepare = data["metrics/sources/photos/prepare.json"]["data"]["prepare"]
    assert prepare["files"] == 8 and prepare["skipped"] == 0 and prepare["converted"] == {"L": 1, "P": 1}
    assert scores["images"] == prepare["test_images"] > 0
    per_image = (repo / "plots/sources/photos/per_image.csv").read_text().splitlines()
    assert per_image[0] == "image,width,height,model,psnr_y,ssim_y,psnr_rgb,ssim_rgb"
    assert len(per_image) == 1 + 3 * scores["images"]
    assert (repo / "plots/sources/photos/crops.png").stat().st_size > 5000
    assert json.loads((repo / "models/sources/photos/sr.json").read_text())["epochs"] == 2
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.parametrize("key, value, expected", [
    ("crop", 24, {"train_folder@photos"}),
    ("test_fraction", 0.5, {"prepare_folder@photos"}),
    ("start_from", "scratch", {"train_folder@photos"}),
    ("train", {"epochs": 3, "batch_size": 8}, {"train_folder@photos"}),
])
def test_a_sources_key_reaches_only_that_sources_stages(repo, key, value, expected):
    path = repo / "params.yaml"
    original = path.read_text()
    try:
        params = yaml.safe_load(original)
        params["sources"]["photos"][key] = value
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        assert status(repo) == expected
    finally:
        path.write_text(original)


def test_an_added_photo_moves_no_other_and_a_bad_file_is_refused_with_nothing_written(repo):
    before = json.loads((repo / "data/sources/photos/info.json").read_text())
    Image.fromarray(photo(64, 64, 50)).save(repo / "data/photos/added.png")
    sh(repo, "dvc", "add", "-q", "data/photos")
    assert status(repo) == {"prepare_folder@photos"}
    sh(repo, "dvc", "repro")
    after = json.loads((repo / "data/sources/photos/info.json").read_text())
    for split in ("train", "test"):
        assert {e["file"] for e in before[split]} <= {e["file"] for e in after[split]}
    assert after["files"] == 9

    name, reason = write_bad_file(repo / "data/photos", "truncated")
    sh(repo, "dvc", "add", "-q", "data/photos")
    failed = sh(repo, "dvc", "repro", check=False)
    assert failed.returncode != 0
    assert f"  {name}: " in failed.stderr and reason in failed.stderr and "nothing was written" in failed.stderr
    assert not (repo / "data/sources/photos").exists()
    assert not list((repo / "data/sources").glob(".photos.*"))
