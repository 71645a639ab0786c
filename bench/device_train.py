"""A short training of every architecture on one device, in images per second. Not a test.

    python bench/device_train.py [--device cuda] [--images 20000] [--epochs 3]
                                 [--variants "" precision=fp32 "channels_last=false,crop_dead_taps=false"]

It trains through the train stage's own functions (setup_run, prepare_model, compiled,
train_one_epoch, evaluate_mse) with each architecture's params.yaml settings, except the device and the epochs,
once per variant: train params set on top of those ("" = as params.yaml). On CUDA,
precision=bf16 is automatic mixed precision (bfloat16 autocast for the forward pass, fp32
weights and loss). A variant the train stage refuses on this device (bf16 with channels_last
on CUDA) is reported as refused and skipped. The pairs stay on the device, as in train@ARCH. It reads
the prepared pairs if `dvc repro` made them, else it builds pairs with the prepare stage's own
code from random smooth images (printed as "synthetic": only the speeds mean anything then).
Epoch 1 includes warm-up (CUDA context, kernel selection); the best later epoch is reported too.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from timing import timed

from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.config import TrainParams, load_params
from sr4x.devices import SpeedOptions, detect_machine, resolve_device
from sr4x.errors import ParamsError
from sr4x.models import build_model
from sr4x.pairs import Pairs, load_pairs, make_pairs, to_float
from sr4x.training import compiled, evaluate_mse, make_scheduler, prepare_model, setup_run, train_one_epoch


def synthetic_pairs(n: int, seed: int) -> Pairs:
    """Pairs from random smooth 32x32 images (bicubic upsamples of 8x8 noise, plus some grain)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bicubic", align_corners=False)
    images = (base + 0.05 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1).mul(255).round().to(torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return make_pairs(images.permute(0, 2, 3, 1).numpy(), labels.numpy().astype(np.int64))


def train_variant(arch: str, options: dict, run: TrainParams, speed: SpeedOptions, device: torch.device,
                  train: Pairs, test: Pairs):
    """Seconds of each epoch, seconds of the fp32 evaluation pass, and the final test MSE."""
    data, held_out = train.to(device), test.to(device)
    model = build_model(arch, **options).to(device)
    optimizer = prepare_model(model, speed, run.lr, to_float(data.low[:1]))
    runner = compiled(model, speed, device.type)
    steps = run.epochs * -(-len(data) // run.batch_size)
    scheduler = make_scheduler(optimizer, run.schedule, run.lr, steps)
    generator = torch.Generator().manual_seed(run.seed)
    epochs = [timed(device, lambda: train_one_epoch(
        runner, optimizer, scheduler, data, run.batch_size, generator, f"{arch} epoch",
        bf16=speed.bf16, augment=run.augment))[0] for _ in range(run.epochs)]
    evaluation, mse = timed(device, lambda: evaluate_mse(model, held_out, 1000))  # fp32, as the evaluate stage
    return epochs, evaluation, mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="train.device value: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--images", type=int, default=20_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["", "precision=bf16,channels_last=false"],
                        help='train params to set, as "key=value,key=value" ("" = as params.yaml)')
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args()
    params = load_params()
    resolve_device(args.device)  # a missing device stops here, before any work
    if paths.prepared_split("train").exists() and paths.prepared_split("test").exists():
        source = "prepared"
        train = load_pairs(paths.prepared_split("train")).head(args.images)
        test = load_pairs(paths.prepared_split("test"))
    else:
        source, train, test = "synthetic", synthetic_pairs(args.images, 0), synthetic_pairs(2_000, 1)

    rows = []
    for arch in args.archs:
        cfg = params.models[arch]
        for variant in args.variants:
            changes = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in variant.split(",") if item)}
            run = dataclasses.replace(cfg.train, **{"device": args.device, "epochs": args.epochs, **changes})
            label = variant or "params.yaml"
            try:
                device, _, speed = setup_run(run, arch)
            except ParamsError as err:
                print(f"{arch} {label}: refused: {err}", flush=True)
                continue
            epochs, evaluation, mse = train_variant(arch, cfg.options, run, speed, device, train, test)
            later = min(epochs[1:]) if len(epochs) > 1 else epochs[0]
            rows.append((arch, label, len(train) / epochs[0], len(train) / later, len(test) / evaluation, mse))
            print(f"{arch} {label}: epochs {', '.join(f'{t:.2f}' for t in epochs)} s", flush=True)

    device = resolve_device(args.device)  # what "auto" picked
    name = detect_machine(device).describe()
    print(f"\n{name}, torch {torch.__version__}, {source} pairs: {len(train)} training images, {len(test)} test images")
    width = max([len(row[1]) for row in rows] + [len("variant")])
    print(f"{'arch':<7} {'variant':<{width}} {'train img/s, epoch 1':>21} {'best later epoch':>17} "
          f"{'eval img/s':>11} {'test MSE':>9}")
    for arch, variant, first, best, evaluation, mse in rows:
        print(f"{arch:<7} {variant:<{width}} {first:>21.0f} {best:>17.0f} {evaluation:>11.0f} {mse:>9.5f}")


if __name__ == "__main__":
    main()
