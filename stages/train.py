"""DVC stage `train@ARCH`: train one architecture, resumably; write weights, run info and the per-epoch log.

Usage: python -m stages.train ARCH

The log and the run info are rewritten after every epoch, so `dvc plots show` follows a running
training.
"""
import sys
from pathlib import Path

import pandas as pd
import torch

from src.archive import file_md5
from src.atomic import torch_save, write_json, write_text
from src.cli import PREPARED, run_stage, split_sizes
from src.config import ParamsError, check_limit, load_params
from src.environment import environment
from src.imports import source_digest
from src.models import build_model, count_parameters
from src.pairs import load_pairs
from src.training import fingerprint, fit, setup_run


def main() -> str:
    arch = sys.argv[1] if len(sys.argv) > 1 else ""
    params = load_params()
    if arch not in params.models:
        raise ParamsError(f"unknown architecture {arch!r}; allowed: {', '.join(params.models)}")
    config = params.models[arch]
    sizes = split_sizes()
    n_train = check_limit("data.train_images", params.data.train_images, sizes["train"])
    n_test = check_limit("data.test_images", params.data.test_images, sizes["test"])
    device, train_params = setup_run(config.train, arch)  # validates the device before any data is loaded

    train = load_pairs(PREPARED / "train.pt").head(n_train).to(device)
    test = load_pairs(PREPARED / "test.pt").head(n_test).to(device)
    model = build_model(arch, **config.options).to(device)
    # The checkpoint is reused only by a run with the same params, data, code and torch.
    run_id = fingerprint(
        arch, config.options, train_params, params.data, torch.__version__, torch.get_num_threads(), str(device),
        file_md5(PREPARED / "train.pt"), file_md5(PREPARED / "test.pt"),
        source_digest("stages.train"),  # every project file this stage runs
    )
    info = {
        "arch": arch, "parameters": count_parameters(model), "train_images": n_train,
        "device": str(device), "threads": torch.get_num_threads(),
        # the speed options this run used, after `auto` was resolved for the device
        "precision": train_params.precision, "channels_last": train_params.channels_last,
        "fused_adam": train_params.fused_adam, "crop_dead_taps": train_params.crop_dead_taps,
        "compile": train_params.compile,
        "environment": environment(),
    }

    def write_progress(log: list[dict[str, float]]) -> None:
        write_text(f"plots/curves/{arch}.csv", pd.DataFrame(log).to_csv(index=False))
        write_json(f"models/{arch}.json", {**info, "epochs": len(log)})

    checkpoint = Path(f"checkpoints/{arch}.pt")
    log = fit(model, train, test, train_params, checkpoint, run_id, f"train@{arch}", write_progress)
    write_progress(log)  # also when a resumed run had no epoch left to train
    torch_save(f"models/{arch}.pt", model.state_dict())
    checkpoint.unlink(missing_ok=True)  # only an interrupted run leaves one to resume from
    return f"train@{arch}: {len(log)} epochs, test MSE {log[-1]['test_mse']:.5f}"


if __name__ == "__main__":
    run_stage(main)
