"""Does `sr` gain from ending its training on upright images? A trial, not a test.

Run from the repository root after `dvc repro` (it reads data/prepared):

    python bench/sr_ending.py --switch-after 13 flips none

Trains the committed `sr` exactly as train@sr does (models.sr in params.yaml, dihedral flips and
rotations) up to epoch `--switch-after`, then finishes the same OneCycle schedule once per
ending, each from that same state:
- `dihedral`: unchanged, reproduces the committed run;
- `flips`: horizontal flips only (the test images are upright, some mirrored);
- `none`: no augmentation.
Prints each ending's test MSE plain, averaged over the 2 horizontal flips, and averaged over
all 8 flips/rotations (the pipeline's `evaluate.self_ensemble`).
"""
from __future__ import annotations

import argparse
import copy
import time
from unittest import mock

import torch

import sr4x.training as training
from sr4x import paths
from sr4x.config import load_params
from sr4x.evaluation import interpolate, psnr
from sr4x.inference import predict, self_ensemble
from sr4x.models import build_model
from sr4x.pairs import load_pairs, to_float


def flips(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random horizontal flip of a batch of inputs and targets alike."""
    (flip,) = torch.randint(0, 2, (1,), generator=generator).tolist()
    return (low.flip(-1), high.flip(-1)) if flip else (low, high)


def unchanged(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return low, high


ENDINGS = {"dihedral": training.dihedral, "flips": flips, "none": unchanged}


def flip_ensemble(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x) + model(x.flip(-1)).flip(-1)) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switch-after", type=int, default=13, help="epochs trained with dihedral augmentation")
    parser.add_argument("--train-images", type=int, default=0, help="first N training pairs; 0 = all")
    parser.add_argument("endings", nargs="+", choices=list(ENDINGS))
    args = parser.parse_args()
    config = load_params().models["sr"]
    params = config.train
    if not 0 < args.switch_after < params.epochs:
        parser.error(f"--switch-after must be between 1 and {params.epochs - 1} (models.sr.train.epochs - 1)")
    train, test = load_pairs(paths.prepared_split("train")), load_pairs(paths.prepared_split("test"))
    train = train.head(args.train_images or len(train))
    target = to_float(test.high)
    bicubic = psnr(torch.nn.functional.mse_loss(interpolate(test.low, "bicubic"), target).item())

    # The same construction, order of RNG draws and optimiser as train@sr's `fit`.
    _, _, speed = training.setup_run(params, "sr")
    model = build_model("sr", **config.options)
    optimizer = training.prepare_model(model, speed, params.lr, to_float(train.low[:1]))
    steps = params.epochs * -(-len(train) // params.batch_size)
    scheduler = training.make_scheduler(optimizer, params.schedule, params.lr, steps)
    generator = torch.Generator().manual_seed(params.seed)

    def epochs(first: int, last: int, ending: str) -> None:
        with mock.patch.object(training, "dihedral", ENDINGS[ending]):
            for epoch in range(first, last + 1):
                start = time.perf_counter()
                train_mse = training.train_one_epoch(model, optimizer, scheduler, train, params.batch_size, generator,
                                                     f"{ending} {epoch}", bf16=speed.bf16, augment=True)
                test_mse = training.evaluate_mse(model, test, 1000)
                print(f"{ending} epoch {epoch}: train MSE {train_mse:.5f}, test MSE {test_mse:.6f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)

    epochs(1, args.switch_after, "dihedral")
    state = copy.deepcopy([model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), generator.get_state()])
    rows = []
    for ending in args.endings:
        model.load_state_dict(state[0]), optimizer.load_state_dict(state[1])
        scheduler.load_state_dict(state[2]), generator.set_state(state[3])
        epochs(args.switch_after + 1, params.epochs, ending)
        mses = [torch.nn.functional.mse_loss(predict(model, test.low, 500, run), target).item()
                for run in (None, flip_ensemble, self_ensemble)]
        rows.append(f"| {ending} | " + " | ".join(f"{m:.6f} ({psnr(m) - bicubic:+.3f} dB)" for m in mses) + " |")
    epochs_run = f"{args.switch_after + 1}-{params.epochs}"
    print(f"\n| epochs {epochs_run} | plain | 2 flips averaged | 8 flips/rotations averaged |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
