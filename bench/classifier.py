"""How accurate a small CIFAR-10 classifier gets on this machine, against its training time. Not a test.

    python bench/classifier.py [--epochs 8] [--widths 64 256 256] [--batch 512] [--lr 0.2] [--precision bf16]
                               [--ema 0.99]

The pipeline's judge (`sr4x.judge`, stage `judge`), trained here with its recipe spelt out so
that each setting can be varied: the network and recipe follow airbench (Jordan 2024,
arXiv:2404.00498): a frozen 2x2 patch-whitening convolution, three conv-pool-BN-GELU groups,
max-pool and a linear head; label smoothing 0.2, Nesterov SGD with a triangular learning-rate
schedule, random flips and 2-pixel translations.
It reads the original 32x32 images of the prepared pairs (`dvc repro` makes them), trains on the
CPU with the given precision (bf16 autocast only where the CPU computes it natively is fast) and
prints per epoch the seconds so far and the test accuracy (with flip test-time augmentation), and at
the end the accuracy with translated views as well.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sr4x import paths
from sr4x.judge import Classifier
from sr4x.judge_training import augment
from sr4x.pairs import load_pairs, to_float


def views(x: torch.Tensor, translate: bool) -> list[torch.Tensor]:
    """Test-time views: the image and its mirror; with `translate`, both also shifted one pixel up-left and
    down-right (reflect padding), as airbench's strongest test-time augmentation."""
    shown = [x, x.flip(-1)]
    if translate:
        padded = [F.pad(v, (1, 1, 1, 1), mode="reflect") for v in shown]
        shown += [p[:, :, d:d + 32, d:d + 32] for p in padded for d in (0, 2)]
    return shown


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, bf16: bool, translate: bool = False,
             batch: int = 1000) -> float:
    """Test accuracy with test-time augmentation: the summed logits of the `views` of each image."""
    model.eval()
    correct = 0
    for x, y in zip(images.split(batch), labels.split(batch), strict=True):
        x = to_float(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = sum(model(v).float() for v in views(x, translate))
        correct += (logits.argmax(1) == y).sum().item()
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--widths", type=int, nargs=3, default=[64, 256, 256])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the triangular schedule")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--train-images", type=int, default=0, help="0: the whole training split")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="judge with an exponential moving average of the weights and BN statistics (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train, test = (load_pairs(paths.prepared_split(s)) for s in ("train", "test"))
    if args.train_images:
        train = train.head(args.train_images)
    model = Classifier(tuple(args.widths)).to(memory_format=torch.channels_last)
    model.init_whitening(to_float(train.high[:5000]))
    bf16 = args.precision == "bf16"
    steps = args.epochs * -(-len(train) // args.batch)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9,
                                nesterov=True, weight_decay=args.weight_decay)
    warmup = max(1, steps // 5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)))
    generator = torch.Generator().manual_seed(args.seed)
    swa = torch.optim.swa_utils
    averaged = (swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(args.ema), use_buffers=True)
                if args.ema else None)
    judged = averaged.module if averaged is not None else model
    print(f"{len(train)} training images, widths {args.widths}, batch {args.batch}, {args.precision}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {torch.get_num_threads()} threads", flush=True)
    seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(train), generator=generator).split(args.batch):
            x = augment(to_float(train.high[idx]), generator).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), train.labels[idx], label_smoothing=0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
        seconds += time.perf_counter() - start
        acc = accuracy(judged, test.high, test.labels, bf16)
        print(f"epoch {epoch}: {seconds:.0f} s of training, loss {loss.item():.3f}, test accuracy {acc:.4f}",
              flush=True)
    print(f"test accuracy with the translated views too: {accuracy(judged, test.high, test.labels, bf16, True):.4f}")


if __name__ == "__main__":
    main()
