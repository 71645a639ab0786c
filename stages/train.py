"""DVC stage `train@ARCH`: train one architecture, resumably; write weights, run info and the per-epoch log.

Usage: python -m stages.train ARCH

The log and the run info are rewritten after every epoch, so `dvc plots show` follows a running
training. The run info (`models/ARCH.json`, committed to git) names the machine, the resolved
speed options, the threads, the stage's wall time and the training throughput.
"""
import dataclasses
import time

import pandas as pd
import torch

from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.atomic import write_json, write_text
from sr4x.config import load_params
from sr4x.models import build_model, count_parameters, save_weights
from sr4x.pairs import load_split
from sr4x.provenance import environment, file_md5, fingerprint, source_digest
from sr4x.stage import run_stage, stage_argument
from sr4x.training import fit, setup_run


def main() -> str:
    start = time.perf_counter()
    arch = stage_argument("architecture", ARCHITECTURES)
    params = load_params()
    config = params.models[arch]
    device, machine, options = setup_run(config.train, arch)  # validates the device before any data is loaded
    train = load_split("train", params.data.train_images).to(device)
    test = load_split("test", params.data.test_images).to(device)
    model = build_model(arch, **config.options).to(device)
    # The checkpoint is reused only by a run with the same params, options, data, code and torch.
    run_id = fingerprint(
        arch, config.options, config.train, options.values(), params.data, torch.__version__, torch.get_num_threads(),
        str(device), file_md5(paths.prepared_split("train")), file_md5(paths.prepared_split("test")),
        source_digest("stages.train"),  # every project file this stage runs
    )
    info = {
        "arch": arch, "parameters": count_parameters(model), "train_images": len(train),
        "machine": dataclasses.asdict(machine), "threads": torch.get_num_threads(),
        "options": options.values(),  # the speed options this run used, after `auto` was resolved
        "environment": environment(),
    }
    trained = []  # the epochs this process trained (a resumed run skips the earlier ones)

    def write_progress(log: list[dict[str, float]]) -> None:
        trained.append(len(log))
        write_text(paths.curves(arch), pd.DataFrame(log).to_csv(index=False))
        write_json(paths.run_info(arch), {**info, "epochs": len(log)})

    fit_start = time.perf_counter()
    log = fit(model, train, test, config.train, options, paths.checkpoint(arch), run_id, f"train@{arch}",
              write_progress)
    fit_seconds = time.perf_counter() - fit_start
    write_text(paths.curves(arch), pd.DataFrame(log).to_csv(index=False))  # also when no epoch was left to train
    save_weights(paths.weights(arch), arch, config.options, model)
    write_json(paths.run_info(arch), {
        **info, "epochs": len(log), "stage_wall_seconds": round(time.perf_counter() - start, 1),
        # over the epochs this process ran, their per-epoch test pass and checkpoint included
        "train_images_per_second": round(len(train) * len(trained) / fit_seconds, 1) if trained else None,
    })
    paths.checkpoint(arch).unlink(missing_ok=True)  # only an interrupted run leaves one to resume from
    return f"train@{arch}: {len(log)} epochs, test MSE {log[-1]['test_mse']:.5f}"


if __name__ == "__main__":
    run_stage(main)
