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

from sr4x.devices import detect_machine
from sr4x.models import read_weights
from sr4x.provenance import file_md5

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "stages", "dvc.yaml", "params.yaml", ".gitignore", "models/.gitignore"]
NAMES = ["fc", "conv", "resnet", "sr", "sr_gan", "nearest", "bilinear", "bicubic"]  # evaluated, in stage order
POINTS = ["original", "nearest", "bilinear", "bicubic", "fc", "conv", "resnet", "sr", "sr_gan", "interp_0.25",
          "interp_0.5", "interp_0.75"]  # metrics/perception/
KEEP = r"Experiment|train\.lr|metrics/(fc|conv|resnet|sr)\.json:test\.psnr$"  # as in the README
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": "",
       "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


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
    return make_repo(tmp_path_factory.mktemp("e2e"))


def project_copy(repo: Path) -> Path:
    """A fresh git + DVC repo at `repo` holding the project's files (nothing committed yet)."""
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy(src, repo / name))
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "ci@example.com")
    sh(repo, "git", "config", "user.name", "CI")
    sh(repo, "dvc", "init", "-q")
    shutil.copytree(ROOT / ".dvc/plots", repo / ".dvc/plots")  # the plot template
    return repo


def make_repo(base: Path) -> Path:
    """A fresh git + DVC repo holding the project, pointed at a tiny archive, after `dvc repro`."""
    archive = write_archive(base / "tiny.tar.gz")
    repo = project_copy(base / "repo")
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
    assert "compare: 6 test images x 10 columns, curves of 4 models" in log
    assert (repo / "plots/compare/grid.png").stat().st_size > 10_000
    assert (repo / "plots/compare/curves.png").stat().st_size > 10_000
    for arch in NAMES[:5]:
        assert len((repo / f"plots/curves/{arch}.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_repro_trains_the_judge_and_sr_gan_and_scores_every_point(repo):
    log = (repo / "repro.log").read_text()
    assert "judge: 8 epochs" in log and "train_gan: 2 epochs" in log and "perception: 12 points" in log
    judge = json.loads((repo / "metrics/judge.json").read_text())["judge"]
    assert 0 <= judge["test_accuracy"] <= 1 and judge["training_seconds"] > 0
    info = json.loads((repo / "models/judge.json").read_text())
    assert info["test_accuracy"] == judge["test_accuracy"] and info["epochs"] == 8
    gan_log = (repo / "plots/curves/sr_gan.csv").read_text().splitlines()
    assert gan_log[0] == "epoch,l1,adversarial,discriminator,d_real,d_fake,test_mse" and len(gan_log) == 3
    assert read_weights(repo / "models/sr_gan.pt")[:2] == read_weights(repo / "models/sr.pt")[:2]  # an sr
    points = {p.stem: json.loads(p.read_text()) for p in (repo / "metrics/perception").iterdir()}
    assert sorted(points) == sorted(POINTS)
    table = (repo / "plots/perception.csv").read_text().splitlines()
    assert table[0] == "point,accuracy,fid,kid,psnr" and [row.split(",")[0] for row in table[1:]] == [
        p.replace("_", " ") if p.startswith("interp") else p for p in POINTS]
    evaluated = json.loads((repo / "metrics/sr_gan.json").read_text())["test"]["psnr"]
    assert points["sr_gan"]["psnr"] == pytest.approx(evaluated, abs=1e-9)  # the same output as evaluate@sr_gan
    assert (repo / "plots/compare/perception.png").stat().st_size > 10_000
    assert (repo / "plots/samples/sr_gan.png").stat().st_size > (repo / "plots/samples/sr.png").stat().st_size


# (edit, the stages `dvc status` must name): params keys reach exactly the stages that read them,
# code files exactly the stages that run them.
ALL_TRAIN = {f"train@{a}" for a in NAMES[:4]}
ALL_EVALUATE = {f"evaluate@{a}" for a in NAMES[:5]}
ALL_BASELINES = {f"baseline@{m}" for m in NAMES[5:]}
TRAINING = ALL_TRAIN | {"judge", "train_gan"}
SCORING = {"compare", "perception"}
STATUS_TABLE = [
    ({"train__lr": 0.01}, {"train@fc", "train@conv", "train@resnet"}),
    ({"models__sr__train__lr": 0.003}, {"train@sr"}),
    ({"models__sr__width": 32}, {"train@sr", "train_gan", "evaluate@sr", "evaluate@sr_gan"} | SCORING),
    ({"evaluate__samples": 4}, ALL_EVALUATE | ALL_BASELINES | {"compare"}),
    ({"data__test_images": 50}, TRAINING | ALL_EVALUATE | ALL_BASELINES | {"perception"}),
    ({"judge__lr": 0.2}, {"judge"}),
    ({"gan__adversarial_weight": 0.05}, {"train_gan"}),
    ({"gan__interpolation": [0.5]}, {"perception"}),
    ("src/sr4x/conv_cropping.py", TRAINING),  # only training crops dead taps; evaluation runs the plain layers
    ("src/sr4x/gan.py", {"train_gan"}),
    ("src/sr4x/judge.py", {"judge", "perception"}),
    ("src/sr4x/models.py", TRAINING | ALL_EVALUATE | SCORING),
    ("src/sr4x/figures.py", ALL_EVALUATE | ALL_BASELINES | SCORING | {"prepare"}),
    ("src/sr4x/archive.py", {"download", "prepare"}),  # the unpickler: nothing downstream of an unchanged archive
    ("src/sr4x/devices.py", TRAINING | ALL_EVALUATE | SCORING),  # the device (and the `auto` table beside it)
    ("src/sr4x/paths.py", {"download", "prepare"} | TRAINING | ALL_EVALUATE | ALL_BASELINES | SCORING),
]


@pytest.mark.parametrize("edit, expected", STATUS_TABLE, ids=[str(e) for e, _ in STATUS_TABLE])
def test_status_names_exactly_the_stages_an_edit_reaches(repo, edit, expected):
    path = repo / (edit if isinstance(edit, str) else "params.yaml")
    original = path.read_text()
    try:
        if isinstance(edit, str):
            path.write_text(original + "# edited\n")
        else:
            set_params(repo, **edit)
        assert set(json.loads(sh(repo, "dvc", "status", "--json").stdout)) == expected
    finally:
        path.write_text(original)
    assert sh(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_metrics_show_has_a_row_per_model_and_only_metrics_as_columns(repo):
    out = sh(repo, "dvc", "metrics", "show").stdout  # the README's command
    header, *rows = out.strip().splitlines()
    assert header.split() == ["Path", "accuracy", "fid", "inference.consistency_gain_db",
                              "inference.self_ensemble_gain_db", "judge.parameters", "judge.test_accuracy",
                              "judge.training_seconds", "kid", "model.parameters", "psnr", "test.gain_over_bicubic_db",
                              "test.mse", "test.psnr", "test.psnr_per_image", "test.ssim"]
    paths = [row.split()[0] for row in rows]
    assert paths[:9] == [f"metrics/{name}.json" for name in [*NAMES, "judge"]]
    assert sorted(paths[9:]) == sorted(f"metrics/perception/{p}.json" for p in POINTS)
    assert "models/" not in out  # run info is recorded (models/ARCH.json, in git), not a metric
    tracked = sh(repo, "git", "ls-files", "models").stdout.split()
    assert {f"models/{a}.json" for a in NAMES[:4]} <= set(tracked) and "models/sr.pt" not in tracked
    info = json.loads((repo / "models/sr.json").read_text())
    machine = detect_machine(torch.device("cpu"))
    assert info["machine"]["cpu_model"] == machine.cpu_model and info["machine"]["cores"] == machine.cores
    assert info["machine"]["cpu_capability"] == machine.cpu_capability and info["threads"] == 1
    assert info["options"]["precision"] == ("bf16" if machine.cpu_bf16 else "fp32")
    assert info["stage_wall_seconds"] > 0 and info["train_images_per_second"] > 0
    assert info["environment"]["torch"] == torch.__version__


def test_plots_colour_the_architectures_apart(repo):
    plots = json.loads(sh(repo, "dvc", "plots", "show", "--json").stdout)["data"]
    for split in ("test", "train"):
        (plot,) = plots[f"{split}_mse_per_epoch"]
        spec = plot["content"]
        assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["strokeDash"]["field"] == "rev"
        models = {row["filename"].split("/")[-1] for row in spec["data"]["values"]}
        assert models == {f"{a}.csv" for a in NAMES[:4]}
    assert any("samples/sr.png" in name for name in plots)


def test_exp_run_retrains_exactly_the_models_the_change_reaches(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "train.lr=0.01").stdout  # the README's first command
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"train@fc", "train@conv", "train@resnet", "evaluate@fc", "evaluate@conv", "evaluate@resnet",
                   "compare", "perception"}
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)  # workspace against HEAD
    assert diff["metrics/fc.json"]["test.mse"]["diff"] != 0
    assert not {"metrics/sr.json", "metrics/bicubic.json"} & set(diff)
    table = sh(repo, "dvc", "exp", "show", "--md", "--drop", ".*", "--keep", KEEP).stdout
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", *(f"metrics/{a}.json:test.psnr" for a in NAMES[:4]), "train.lr"]
    assert re.search(r"\[[a-z]+-[a-z]+\].*\| 0\.01 +\|", table)  # the experiment's row, with its lr
    out = sh(repo, "dvc", "plots", "diff", "HEAD").stdout  # HEAD against the workspace
    assert "dvc_plots/index.html" in out and (repo / "dvc_plots/index.html").exists()


def test_typo_in_params_stops_the_stage_before_any_work(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("\n  lr: ", "\n  lrr: "))  # a misspelt key
        result = sh(repo, "dvc", "repro", "train@conv", check=False)
        assert result.returncode != 0 and "epoch 1" not in result.stdout
        assert "Parameters 'train.lr' are missing from 'params.yaml'" in result.stderr  # DVC names the key
        (repo / "params.yaml").write_text(params.replace("\n  lr: ", "\n  lrr: 0.1\n  lr: "))  # an extra one
        result = sh(repo, "dvc", "repro", "-f", "train@conv", check=False)
        assert result.returncode != 0 and "epoch 1" not in result.stdout
        assert "unknown key train.lrr; allowed keys in train" in result.stderr  # the stage's own check
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


def test_an_experiment_pushed_from_one_clone_is_pulled_and_compared_in_another(repo, tmp_path):
    """The README's sweep across machines: a bare git repo and a local directory remote stand in for
    GitHub and S3; nothing is rerun on the second machine."""
    origin, store = tmp_path / "origin.git", tmp_path / "store"
    sh(tmp_path, "git", "init", "-q", "--bare", str(origin))
    sh(repo, "git", "push", "-q", str(origin), "HEAD:refs/heads/main")
    sh(origin, "git", "symbolic-ref", "HEAD", "refs/heads/main")
    sh(repo, "dvc", "remote", "add", "--local", "-d", "-f", "sweep", str(store))
    sh(repo, "dvc", "push", "--all-commits")  # the committed data and models
    first = clone(origin, tmp_path / "first", store)
    sh(first, "git", "config", "user.email", "a@example.com")
    sh(first, "git", "config", "user.name", "A")
    sh(first, "dvc", "pull")
    sh(first, "dvc", "exp", "run", "-n", "lr-0.02", "-S", "train.lr=0.02", "-S", "train.epochs=1")
    out = sh(first, "dvc", "exp", "push", "origin", "lr-0.02").stdout
    assert "Pushed experiment lr-0.02 to Git remote 'origin'" in out

    second = clone(origin, tmp_path / "second", store)
    assert "lr-0.02" in sh(second, "dvc", "exp", "pull", "origin", "lr-0.02").stdout
    table = sh(second, "dvc", "exp", "show", "--md", "--drop", ".*", "--keep", KEEP).stdout
    row = next(line for line in table.splitlines() if "[lr-0.02]" in line)
    assert row.rstrip(" |").endswith("0.02")
    diff = json.loads(sh(second, "dvc", "metrics", "diff", "main", "lr-0.02", "--json").stdout)
    assert diff["metrics/fc.json"]["test.mse"]["diff"] != 0 and "metrics/sr.json" not in diff
    sh(second, "dvc", "exp", "apply", "lr-0.02")
    lock = yaml.safe_load((second / "dvc.lock").read_text())
    (model,) = [o for o in lock["stages"]["train@fc"]["outs"] if o["path"] == "models/fc.pt"]
    assert file_md5(second / "models/fc.pt") == model["md5"]  # the experiment's model, from the remote
    assert json.loads((second / "models/fc.json").read_text())["epochs"] == 1


def exp_revs(repo: Path) -> set[str]:
    return set(sh(repo, "git", "for-each-ref", "--format=%(objectname)", "refs/exps").stdout.split())


def test_queued_runs_share_the_cores(repo):
    before = exp_revs(repo)
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "train.threads=0", "-S", "train.lr=0.02,0.03")  # 0 = auto
    sh(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.time() + 600
    while ("Success" not in (status := sh(repo, "dvc", "queue", "status").stdout)
           or re.search(r"Queued|Running", status)):
        assert time.time() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status
    table = sh(repo, "dvc", "exp", "show", "--md").stdout  # one row per experiment, metrics and params
    assert re.search(r"\| 0\.02 ", table) and re.search(r"\| 0\.03 ", table) and "metrics/fc.json:test.mse" in table
    cores = len(os.sched_getaffinity(0))
    for rev in exp_revs(repo) - before:  # the README's next steps: bring one into the workspace, keep it as a branch
        sh(repo, "dvc", "exp", "apply", rev)
        assert json.loads((repo / "models/fc.json").read_text())["threads"] == max(1, cores // 2)
        sh(repo, "dvc", "exp", "branch", rev, f"keep-{rev[:7]}")
        assert sh(repo, "git", "branch", "--list", f"keep-{rev[:7]}").stdout.strip()


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
    resumed_weights = read_weights(repo / "models/resnet.pt")[2]
    resumed_files = {p: (repo / p).read_bytes() for p in ("plots/curves/resnet.csv", "metrics/resnet.json")}

    assert not ckpt.exists()
    sh(repo, "dvc", "repro", "-f", "-s", "train@resnet")
    sh(repo, "dvc", "repro", "-f", "-s", "evaluate@resnet")  # recomputed, not skipped
    fresh_weights = read_weights(repo / "models/resnet.pt")[2]
    assert all(torch.equal(resumed_weights[k], fresh_weights[k]) for k in fresh_weights)
    assert {p: (repo / p).read_bytes() for p in resumed_files} == resumed_files  # bit-identical


def test_ci_short_pipeline_runs_in_a_fresh_clone_and_leaves_it_as_it_was(repo, tmp_path):
    """`.ci/short-pipeline` as CI runs it: a fresh clone (no DVC cache of the committed results), the archive
    through CIFAR10_URL, two short experiments; exit code 0, both files, the workspace unchanged."""
    shutil.copytree(ROOT / ".ci", repo / ".ci")
    sh(repo, "git", "add", ".ci")
    sh(repo, "git", "commit", "-qm", "ci")
    fresh = tmp_path / "fresh"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(fresh))
    sh(fresh, "git", "config", "user.email", "ci@example.com")
    sh(fresh, "git", "config", "user.name", "CI")
    archive = repo.parent / "tiny.tar.gz"
    env = {**ENV, "CIFAR10_URL": str(archive), "CIFAR10_MD5": file_md5(archive),
           "CI_SHORT_PARAMS": "data.train_images=100 data.test_images=50 train.epochs=1 models.sr.train.epochs=1"}
    result = subprocess.run(["bash", ".ci/short-pipeline", "HEAD~1", "out"], cwd=fresh, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    diff = (fresh / "out/metrics-diff.md").read_text()
    assert "| Path " in diff and "metrics/sr.json" in diff and "test.mse" in diff
    assert (fresh / "out/grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (fresh / "out/grid.png").stat().st_size > 10_000
    status = sh(fresh, "git", "status", "--porcelain", "--untracked-files=no").stdout
    assert status == "" and sh(fresh, "git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() != "HEAD"
