"""Benchmark: where an epoch's time goes, measured side by side on this machine. Not a test.

Run from the repository root after `dvc repro` (it reads data/prepared and the raw archive):

    python bench/benchmark.py [--fraction 0.2] [--threads 0]

Prints one table. Each comparison is timed in the same run and reported as a ratio:
- the tutorial's data path (PIL Resize(8) + ToTensor per access, two zipped DataLoaders)
  against ours (index into in-memory uint8 tensors), per 50k-image epoch;
- per architecture, pure model steps (forward, backward, Adam on batches already in memory)
  against our real `train_one_epoch` on the same number of images;
- the prepare work for 60k images, a no-op `dvc repro`, and the peak RSS of a training stage.
Epoch times are measured on `--fraction` of the training split and scaled to 50k images.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.archive import read_archive  # noqa: E402
from src.cli import PREPARED, RAW_ARCHIVE  # noqa: E402
from src.config import ARCHITECTURES, load_params  # noqa: E402
from src.models import build_model  # noqa: E402
from src.pairs import load_pairs, make_pairs, save_pairs, to_float  # noqa: E402
from src.training import make_scheduler, train_one_epoch  # noqa: E402

EPOCH = 50_000


class TutorialImages(Dataset):
    """The tutorial's per-access transform over PIL images (as torchvision's CIFAR10 serves them)."""

    def __init__(self, high: torch.Tensor, transform):
        self.images = [transforms.functional.to_pil_image(im) for im in high]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tutorial_data_epoch(high: torch.Tensor) -> float:
    low_set = TutorialImages(high, transforms.Compose([transforms.Resize(8), transforms.ToTensor()]))
    high_set = TutorialImages(high, transforms.ToTensor())
    loaders = [DataLoader(s, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0))
               for s in (low_set, high_set)]
    return timed(lambda: [None for _ in zip(*loaders)]) * EPOCH / len(high)


def our_data_epoch(pairs) -> float:
    def run():
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
        for idx in order.split(128):
            to_float(pairs.low[idx]), to_float(pairs.high[idx])
    return timed(run) * EPOCH / len(pairs)


def pure_steps(arch: str, options: dict, train, n_images: int) -> float:
    """Forward, backward and optimizer step on batches already in memory as floats."""
    model = build_model(arch, **options)
    if train.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    x, y = torch.rand(train.batch_size, 3, 8, 8), torch.rand(train.batch_size, 3, 32, 32)
    steps = max(1, n_images // train.batch_size)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=train.precision == "bf16"):
            out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    return timed(lambda: [step() for _ in range(steps)]) * EPOCH / (steps * train.batch_size)


def real_epoch(arch: str, options: dict, train, pairs) -> float:
    """Our train stage's epoch function (data path, schedule, logging) on the same images."""
    model = build_model(arch, **options)
    if train.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr)
    sched = make_scheduler(opt, train.schedule, train.lr, 10 * len(pairs))
    gen = torch.Generator().manual_seed(0)
    warm = pairs.head(train.batch_size)
    train_one_epoch(model, opt, sched, warm, train.batch_size, gen, "warm-up", train.precision == "bf16")
    return timed(lambda: train_one_epoch(model, opt, sched, pairs, train.batch_size, gen, "bench",
                                         train.precision == "bf16")) * EPOCH / len(pairs)


def prepare_time() -> float:
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            for name, split in read_archive(RAW_ARCHIVE).items():
                save_pairs(Path(tmp) / f"{name}.pt", make_pairs(split.images, split.labels))
    return timed(run)


def child_peak_rss_gib(arch: str, n_images: int) -> float:
    """Peak RSS of a process that loads the prepared data and trains `arch` on `n_images`, like train@ARCH."""
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from bench.benchmark import rss_child; rss_child(sys.argv[1], int(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, arch, str(n_images)], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def rss_child(arch: str, n_images: int) -> None:
    params = load_params()
    train = params.models[arch].train
    pairs = load_pairs(PREPARED / "train.pt")
    load_pairs(PREPARED / "test.pt")
    real_epoch(arch, params.models[arch].options, train, pairs.head(n_images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the training split timed per epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params()
    pairs = load_pairs(PREPARED / "train.pt")
    subset = pairs.head(int(len(pairs) * args.fraction))
    rows = []

    tutorial, ours = tutorial_data_epoch(subset.high), our_data_epoch(pairs)
    rows.append(("data path per epoch: tutorial / ours", f"{tutorial:.2f} s / {ours:.3f} s", f"{tutorial / ours:.0f}x"))
    for arch in ARCHITECTURES:
        cfg = params.models[arch]
        pure = pure_steps(arch, cfg.options, cfg.train, len(subset))
        real = real_epoch(arch, cfg.options, cfg.train, subset)
        flags = f"{cfg.train.precision}{', channels_last' if cfg.train.channels_last else ''}"
        rows.append((f"{arch} epoch ({flags}): real / pure steps", f"{real:.1f} s / {pure:.1f} s", f"{real / pure:.3f}"))
    rows.append(("prepare, 60k images", f"{prepare_time():.1f} s", ""))
    noop = timed(lambda: subprocess.run(["dvc", "repro"], check=True, capture_output=True))
    rows.append(("no-op dvc repro", f"{noop:.2f} s", ""))
    rows.append(("peak RSS, resnet training process (full split loaded)", f"{child_peak_rss_gib('resnet', 512):.2f} GiB", ""))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fraction {args.fraction}")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>22}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>22}  {ratio}")


if __name__ == "__main__":
    main()
