"""Training the judge (judge.py) on the original training images, with airbench's recipe: random flips and
2-pixel translations, label smoothing, Nesterov SGD with a triangular learning-rate schedule, whitening
initialised from the images' patch statistics. Deterministic and resumable like every training here.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from sr4x.config import JudgeParams
from sr4x.judge import Classifier
from sr4x.pairs import Pairs, to_float
from sr4x.training import resumable_epochs

WHITENING_IMAGES = 5000  # images whose 2x2 patch covariance sets the whitening filters


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random horizontal flip per image and one random translation of up to 2 pixels (reflect padding) per batch."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dy, dx = torch.randint(0, 5, (2,), generator=generator).tolist()  # one shift per batch: a view, no gather
    return padded[:, :, dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def train_judge(train: Pairs, params: JudgeParams, bf16: bool, checkpoint: Path, run_fingerprint: str,
                on_epoch: Callable[[list[dict[str, float]]], None] | None = None) -> tuple[Classifier, list[dict]]:
    """The judge trained on `train`'s original images (on their device), and its per-epoch log."""
    torch.manual_seed(params.seed)
    device = train.device
    judge = Classifier(params.widths).to(device, memory_format=torch.channels_last)
    judge.init_whitening(to_float(train.high[:WHITENING_IMAGES]))
    steps_per_epoch = -(-len(train) // params.batch_size)
    steps = params.epochs * steps_per_epoch
    optimizer = torch.optim.SGD([p for p in judge.parameters() if p.requires_grad], lr=params.lr, momentum=0.9,
                                nesterov=True, weight_decay=params.weight_decay)
    warmup = max(1, steps // 5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))
    generator = torch.Generator().manual_seed(params.seed)

    def run_epoch(epoch: int) -> dict[str, float]:
        judge.train()
        losses = torch.empty(steps_per_epoch, device=device)
        correct = torch.zeros((), device=device)
        for i, idx in enumerate(torch.randperm(len(train), generator=generator).split(params.batch_size)):
            idx = idx.to(device)
            x = augment(to_float(train.high[idx]), generator).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = judge(x).float()
            loss = F.cross_entropy(logits, train.labels[idx], label_smoothing=params.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses[i] = loss.detach()
            correct += (logits.argmax(1) == train.labels[idx]).sum()
        row = {"epoch": epoch, "train_loss": losses.mean().item(), "train_accuracy": correct.item() / len(train)}
        print(f"judge epoch {epoch}/{params.epochs}: loss {row['train_loss']:.4f}, "
              f"accuracy on the augmented training batches {row['train_accuracy']:.4f}", flush=True)
        return row

    stateful = {"model": judge, "optimizer": optimizer, "scheduler": scheduler}
    log = resumable_epochs(params.epochs, run_epoch, stateful, generator, checkpoint, run_fingerprint, "judge",
                           on_epoch)
    return judge.eval(), log
