"""Every file the pipeline reads and writes, relative to the repository root (torch-free).

Functions take a name so that `pipeline.py` can pass DVC's `${key}` and get the templated path.
"""
from __future__ import annotations

from pathlib import Path

RAW_ARCHIVE = Path("data/raw/cifar-10-python.tar.gz")
PREPARED = Path("data/prepared")
PREPARED_INFO = PREPARED / "info.json"  # the number of pairs per split, and the class names
CHECKPOINTS = Path("checkpoints")
PAIRS_FIGURE = Path("plots/samples/pairs.png")
GRID = Path("plots/compare/grid.png")
CURVES_FIGURE = Path("plots/compare/curves.png")
JUDGE = "judge"  # the classifier that grades upscaled images: models/judge.pt, models/judge.json, ...
JUDGE_METRICS = Path("metrics/judge.json")  # its test accuracy and training time
PERCEPTION_METRICS = Path("metrics/perception")  # one file per point: PSNR, the judge's accuracy, FID and KID
PERCEPTION_TABLE = Path("plots/perception.csv")  # the same, one row per point
PERCEPTION_FIGURE = Path("plots/compare/perception.png")  # PSNR against KID, one labelled point each


def prepared_split(split: str) -> Path:
    """The paired tensors of one split ("train" or "test")."""
    return PREPARED / f"{split}.pt"


def weights(arch: str) -> Path:
    """A trained model's weights (self-describing: architecture, options and tensors)."""
    return Path(f"models/{arch}.pt")


def run_info(arch: str) -> Path:
    """What trained the model: machine, resolved options, threads, wall time (committed to git)."""
    return Path(f"models/{arch}.json")


def checkpoint(arch: str) -> Path:
    """The resumable state of an interrupted training."""
    return CHECKPOINTS / f"{arch}.pt"


def curves(arch: str) -> Path:
    """Train and test MSE per epoch."""
    return Path(f"plots/curves/{arch}.csv")


def metrics(name: str) -> Path:
    """The test metrics of a model or baseline."""
    return Path(f"metrics/{name}.json")


def per_class(name: str) -> Path:
    """PSNR per class against bicubic."""
    return Path(f"plots/per_class/{name}.csv")


def samples(name: str) -> Path:
    """A figure of test images: input, original and this model's or baseline's output."""
    return Path(f"plots/samples/{name}.png")


# A folder source NAME (params.yaml sources.NAME): its prepared data, `sr` trained on it, and its scores.
def source_data(source: str) -> Path:
    """The prepared folder source: training sub-image shards, held-out images and info.json."""
    return Path(f"data/sources/{source}")


def source_weights(source: str) -> Path:
    return Path(f"models/sources/{source}/sr.pt")


def source_run_info(source: str) -> Path:
    return Path(f"models/sources/{source}/sr.json")


def source_checkpoint(source: str) -> Path:
    return CHECKPOINTS / f"sources/{source}/sr.pt"


def source_curves(source: str) -> Path:
    return Path(f"plots/sources/{source}/curves.csv")


def source_prepare_metrics(source: str) -> Path:
    """Counts of images, sub-images, conversions and skipped files."""
    return Path(f"metrics/sources/{source}/prepare.json")


def source_metrics(source: str) -> Path:
    """Mean PSNR and SSIM (Y and RGB) over the held-out images of each model and bicubic."""
    return Path(f"metrics/sources/{source}/scores.json")


def source_per_image(source: str) -> Path:
    return Path(f"plots/sources/{source}/per_image.csv")


def source_crops(source: str) -> Path:
    return Path(f"plots/sources/{source}/crops.png")


# Inside a prepared source (written by folder_source.py, read by source_data.py).
SOURCE_INFO = "info.json"  # what was used, converted, dropped and skipped, and the split
SHARD_SIZE = 256  # training sub-images per shard file


def source_shard(root: Path, half: str, index: int) -> Path:
    """Shard `index` of the training sub-images: uint8 (n, 3, s, s), `half` "hr" or their inputs "lr"."""
    return root / "train" / f"{half}-{index:05d}.npy"


def source_test_image(root: Path, half: str, index: int) -> Path:
    """Held-out image `index` whole (cropped to a multiple of the scale), "hr", or its input, "lr", as PNG."""
    return root / "test" / half / f"{index:04d}.png"
