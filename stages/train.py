"""DVC stage `train@ARCH`: train one architecture on CIFAR-10, resumably; write weights, run info and the per-epoch log.

Usage: python -m stages.train ARCH

The run info (`models/ARCH.json`, committed to git) names the machine, the resolved speed options,
the threads, the stage's wall time and the training throughput.
"""
import time

from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.config import load_params
from sr4x.pairs import load_split
from sr4x.provenance import file_md5, source_digest
from sr4x.stage import run_stage, stage_argument
from sr4x.training import RunFiles, setup_run, train_and_save


def main() -> str:
    started = time.perf_counter()
    arch = stage_argument("architecture", ARCHITECTURES)
    params = load_params()
    config = params.models[arch]
    run = setup_run(config.train, arch)  # validates the device before any data is loaded
    train = load_split("train", params.data.train_images).to(run[0])
    test = load_split("test", params.data.test_images).to(run[0])
    files = RunFiles(paths.weights(arch), paths.run_info(arch), paths.curves(arch), paths.checkpoint(arch))
    identity = [params.data, file_md5(paths.prepared_split("train")), file_md5(paths.prepared_split("test")),
                source_digest("stages.train")]  # every project file this stage runs
    log = train_and_save(f"train@{arch}", arch, config.options, config.train, run, train, test, files, identity,
                         started)
    return f"train@{arch}: {len(log)} epochs, test MSE {log[-1]['test_mse']:.5f}"


if __name__ == "__main__":
    run_stage(main)
