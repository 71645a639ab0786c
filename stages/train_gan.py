"""DVC stage `train_gan`: fine-tune the trained `sr` adversarially into `sr_gan` (docs/gan.md), resumably; write
its weights (the generator's EMA), run info and per-epoch losses.

Usage: python -m stages.train_gan
"""
import dataclasses
import time

import pandas as pd
import torch

from sr4x import paths
from sr4x.atomic import write_json, write_text
from sr4x.config import GAN_MODEL, load_params
from sr4x.gan import train_gan
from sr4x.models import load_trained, save_weights
from sr4x.pairs import load_split
from sr4x.provenance import environment, file_md5, fingerprint, source_digest
from sr4x.stage import run_stage
from sr4x.training import setup_run


def main() -> str:
    started = time.perf_counter()
    params = load_params()
    config = params.models["sr"]
    device, machine, options = setup_run(config.train, "sr")  # sr's device and speed options
    _, generator = load_trained(paths.weights("sr"), "sr", config.options)
    train = load_split("train", params.data.train_images).to(device)
    test = load_split("test", params.data.test_images).to(device)
    training = dataclasses.replace(params.gan, interpolation=())  # what trains sr_gan: not the scored alphas
    run_id = fingerprint(training, params.data, config.options, options.values(), torch.__version__,
                         torch.get_num_threads(), str(device), file_md5(paths.weights("sr")),
                         file_md5(paths.prepared_split("train")), file_md5(paths.prepared_split("test")),
                         source_digest("stages.train_gan"))
    info = {"arch": "sr", "starts_from": str(paths.weights("sr")), "machine": dataclasses.asdict(machine),
            "threads": torch.get_num_threads(), "options": options.values(), "environment": environment()}
    trained = []  # the epochs this process trained (a resumed run skips the earlier ones)

    def write_progress(log):
        trained.append(len(log))
        write_text(paths.curves(GAN_MODEL), pd.DataFrame(log).to_csv(index=False))
        write_json(paths.run_info(GAN_MODEL), {**info, "epochs": len(log)})

    fit_start = time.perf_counter()
    ema, log = train_gan(generator.to(device), train, test, params.gan, options, paths.checkpoint(GAN_MODEL), run_id,
                         write_progress)
    fit_seconds = time.perf_counter() - fit_start
    write_text(paths.curves(GAN_MODEL), pd.DataFrame(log).to_csv(index=False))
    save_weights(paths.weights(GAN_MODEL), "sr", config.options, ema)
    per_epoch = min(params.gan.epoch_images or len(train), len(train))
    write_json(paths.run_info(GAN_MODEL), {
        **info, "epochs": len(log), "images_per_epoch": per_epoch,
        "stage_wall_seconds": round(time.perf_counter() - started, 1),
        "train_images_per_second": round(per_epoch * len(trained) / fit_seconds, 1) if trained else None,
    })
    paths.checkpoint(GAN_MODEL).unlink(missing_ok=True)
    last = log[-1]
    return (f"train_gan: {len(log)} epochs, L1 {last['l1']:.4f}, adversarial {last['adversarial']:.3f}, "
            f"discriminator {last['discriminator']:.3f}, EMA test MSE {last['test_mse']:.5f}")


if __name__ == "__main__":
    run_stage(main)
