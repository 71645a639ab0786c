"""The short pipeline CI reproduces: the real `dvc` CLI on a temporary git repo and a tiny archive."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from cifar_fixture import write_archive
from src.archive import file_md5

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "stages", "dvc.yaml", "params.yaml", ".gitignore"]
NAMES = ["fc", "conv", "resnet", "sr", "nearest", "bilinear", "bicubic"]
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": "", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def set_params(repo: Path, **values) -> None:
    """set_params(repo, train__lr=0.1, models__sr__train__epochs=2): keys joined by `__`."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for path, value in values.items():
        *groups, key = path.split("__")
        node = params
        for group in groups:
            node = node[group]
        node[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git + DVC repo holding the project, pointed at a tiny archive, after `dvc repro`."""
    base = tmp_path_factory.mktemp("e2e")
    archive = write_archive(base / "tiny.tar.gz")
    repo = base / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy(src, repo / name))
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "ci@example.com")
    sh(repo, "git", "config", "user.name", "CI")
    sh(repo, "dvc", "init", "-q")
    set_params(repo, download__url=str(archive), download__md5=file_md5(archive), train__epochs=2,
               models__sr__train__epochs=2, train__threads=1)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "tiny pipeline")
    repro = sh(repo, "dvc", "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    repo.joinpath("repro.log").write_text(repro.stdout)
    return repo


def test_repro_writes_metrics_plots_and_models(repo):
    log = (repo / "repro.log").read_text()
    assert "train@resnet: 2 epochs" in log and "evaluate@sr:" in log
    keys = None
    for name in NAMES:
        metrics = json.loads((repo / f"metrics/{name}.json").read_text())
        assert keys is None or set(metrics["test"]) == keys  # the same keys for every row
        keys = set(metrics["test"])
        assert (repo / f"plots/samples/{name}.png").stat().st_size > 1000
        assert (repo / f"plots/per_class/{name}.csv").read_text().startswith("class,psnr,bicubic_psnr,gain_db")
    assert keys == {"mse", "psnr", "psnr_per_image", "ssim", "gain_over_bicubic_db"}
    assert (repo / "plots/samples/pairs.png").exists()
    assert "compare: 6 test images x 9 columns, curves of 4 models" in log
    assert (repo / "plots/compare/grid.png").stat().st_size > 10_000
    assert (repo / "plots/compare/curves.png").stat().st_size > 10_000
    for arch in NAMES[:4]:
        assert len((repo / f"plots/curves/{arch}.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_metrics_and_plots_show_every_architecture(repo):
    shown = sh(repo, "dvc", "metrics", "show", "--json").stdout
    for name in NAMES:
        assert f"metrics/{name}.json" in shown
    out = sh(repo, "dvc", "plots", "show", "--json").stdout
    plots = json.loads(out)["data"]
    curves = json.dumps(plots["mse_per_epoch"])
    assert all(f"{arch}.csv::test_mse" in curves for arch in NAMES[:4])  # one shared chart
    assert any("samples/sr.png" in name for name in plots)


def test_exp_run_reruns_only_training_and_evaluation(repo):
    result = sh(repo, "dvc", "exp", "run", "-S", "train.lr=0.01")
    out = result.stdout
    assert "Running stage 'download'" not in out and "Running stage 'prepare'" not in out
    assert "Running stage 'train@fc'" in out and "Running stage 'evaluate@fc'" in out
    assert "Running stage 'baseline@bicubic'" not in out
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert "test.mse" in diff["metrics/fc.json"]
    assert diff["metrics/fc.json"]["test.mse"]["diff"] != 0
    assert "metrics/bicubic.json" not in diff
    shown = sh(repo, "dvc", "exp", "show", "--json").stdout
    assert "0.01" in shown


def test_typo_in_params_stops_the_stage_before_any_work(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("\n  lr: ", "\n  lrr: "))
        result = sh(repo, "dvc", "repro", "train@conv", check=False)
        assert result.returncode != 0
        assert "unknown key train.lrr; allowed keys in train" in result.stderr + result.stdout
        assert "epoch 1" not in result.stdout
    finally:
        (repo / "params.yaml").write_text(params)


def test_failed_download_is_not_recorded(repo):
    lock = (repo / "dvc.lock").read_text()
    env = {**ENV, "CIFAR10_MD5": "0" * 32}
    result = subprocess.run(["dvc", "repro", "-f", "download"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"expected {'0' * 32}, got " in result.stderr
    assert not (repo / "data/raw/cifar-10-python.tar.gz").exists()
    assert [p.name for p in (repo / "data/raw").iterdir() if not p.name.startswith(".gitignore")] == []
    assert (repo / "dvc.lock").read_text() == lock
    sh(repo, "dvc", "repro", "download")  # the next run downloads again and succeeds
    assert (repo / "data/raw/cifar-10-python.tar.gz").exists()
    assert (repo / "dvc.lock").read_text() == lock


def clone(repo: Path, dest: Path, remote: Path) -> Path:
    sh(repo.parent, "git", "clone", "-q", str(repo), str(dest))
    sh(dest, "dvc", "remote", "add", "--local", "-d", "store", str(remote))
    return dest


def test_second_clone_pulls_results_instead_of_rerunning(repo, tmp_path):
    remote = tmp_path / "remote"  # a local directory remote, standing in for S3 or GCS
    sh(repo, "dvc", "remote", "add", "--local", "-d", "store", str(remote))
    sh(repo, "dvc", "push", "--all-commits", "--run-cache")  # HEAD's results, though exp runs changed the workspace

    second = clone(repo, tmp_path / "second", remote)
    sh(second, "dvc", "pull", "--run-cache")
    assert sh(second, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    out = sh(second, "dvc", "repro").stdout
    assert "Running stage" not in out and "Stage 'train@sr' didn't change, skipping" in out
    head = sh(repo, "git", "show", "HEAD:dvc.lock").stdout
    assert (second / "dvc.lock").read_text() == head
    for path in ("models/sr.pt", "data/prepared/train.pt"):
        assert (second / path).stat().st_size > 0


def exp_revs(repo: Path) -> set[str]:
    return set(sh(repo, "git", "for-each-ref", "--format=%(objectname)", "refs/exps").stdout.split())


def test_queued_runs_share_the_cores(repo):
    before = exp_revs(repo)
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "train.threads=0", "-S", "train.lr=0.02,0.03")  # 0 = auto
    sh(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.time() + 600
    while "Success" not in (status := sh(repo, "dvc", "queue", "status").stdout) or re.search(r"Queued|Running", status):
        assert time.time() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status
    infos = [json.loads(sh(repo, "git", "show", f"{rev}:models/fc.json").stdout) for rev in exp_revs(repo) - before]
    assert len(infos) == 2
    cores = len(os.sched_getaffinity(0))
    assert [info["threads"] for info in infos] == [max(1, cores // 2)] * 2


def test_killed_training_resumes_to_the_uninterrupted_result(repo):
    set_params(repo, train__epochs=6)
    ckpt = repo / "checkpoints/resnet.pt"
    assert not ckpt.exists()  # a finished run leaves no checkpoint behind
    proc = subprocess.Popen(["dvc", "repro", "train@resnet"], cwd=repo, env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once the 6-epoch run has saved at least one epoch
        if ckpt.exists() and 0 < len(torch.load(ckpt, weights_only=True)["log"]) < 6:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(torch.load(ckpt, weights_only=True)["log"])
    assert 0 < done < 6
    torch.load(ckpt, weights_only=True)  # the checkpoint survived the kill intact

    resumed = sh(repo, "dvc", "repro", "train@resnet").stdout
    assert f"resuming after epoch {done}" in resumed, resumed
    sh(repo, "dvc", "repro", "evaluate@resnet")
    resumed_weights = torch.load(repo / "models/resnet.pt", weights_only=True)
    resumed_files = {p: (repo / p).read_bytes() for p in ("plots/curves/resnet.csv", "metrics/resnet.json")}

    assert not ckpt.exists()
    sh(repo, "dvc", "repro", "-f", "-s", "train@resnet")
    sh(repo, "dvc", "repro", "-f", "-s", "evaluate@resnet")  # recomputed, not skipped
    fresh_weights = torch.load(repo / "models/resnet.pt", weights_only=True)
    assert all(torch.equal(resumed_weights[k], fresh_weights[k]) for k in fresh_weights)
    assert {p: (repo / p).read_bytes() for p in resumed_files} == resumed_files  # bit-identical
