"""DVC stage `train_folder@SOURCE`: train `sr` on a folder source's sub-images, resumably, as `train@sr` trains.

Usage: python -m stages.train_folder SOURCE

With `start_from: sr` it starts from the CIFAR-trained weights (models/sr.pt) instead of the seeded
initialisation. Each epoch takes every sub-image once, as a random aligned crop (sources.SOURCE.crop) with one of the
8 flips/rotations when `augment`; the per-epoch test MSE is over the central crop of each held-out image.
"""
import time

from sr4x import paths
from sr4x.config import load_params
from sr4x.models import load_trained
from sr4x.paths import SOURCE_INFO
from sr4x.provenance import file_md5, source_digest
from sr4x.source_data import PatchSet, validation_pairs
from sr4x.stage import run_stage, stage_argument
from sr4x.training import RunFiles, setup_run, train_and_save


def main() -> str:
    started = time.perf_counter()
    params = load_params()
    name = stage_argument("source", params.sources)
    source, data = params.sources[name], paths.source_data(name)
    run = setup_run(source.train, "sr")
    train = PatchSet(data, source.crop, run[0])
    test = validation_pairs(data, source.crop).to(run[0])
    files = RunFiles(paths.source_weights(name), paths.source_run_info(name), paths.source_curves(name),
                     paths.source_checkpoint(name))
    options, start = params.models["sr"].options, None
    # info.json holds every photo's sha256; the code that cut them and the code that trains
    identity = [source, file_md5(data / SOURCE_INFO), source_digest("stages.prepare_folder"),
                source_digest("stages.train_folder")]
    if source.start_from == "sr":  # fine-tune the CIFAR-trained sr: far less to learn from a few photos
        start = load_trained(paths.weights("sr"), "sr", options)[1].state_dict()
        identity.append(file_md5(paths.weights("sr")))
    log = train_and_save(f"train_folder@{name}", "sr", options, source.train, run, train, test, files, identity,
                         started, start)
    return f"train_folder@{name}: {len(log)} epochs on {len(train)} sub-images, test MSE {log[-1]['test_mse']:.5f}"


if __name__ == "__main__":
    run_stage(main)
