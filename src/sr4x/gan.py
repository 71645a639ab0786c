"""sr_gan: `sr` fine-tuned adversarially, as ESRGAN and Real-ESRGAN fine-tune their PSNR-trained networks.

The generator starts from the trained `sr` weights; a small spectral-norm PatchGAN judges 32x32 images
(one real/fake logit per 8x8 patch position). The generator's loss is `pixel_weight` x L1 plus
`adversarial_weight` x the vanilla (non-saturating) GAN loss, Real-ESRGAN's 1.0 and 0.1; no perceptual
loss, as none is available offline that is not the judge's. Adam (betas 0.9, 0.99) for both networks, and
an exponential moving average of the generator's weights, which is the model saved. Deterministic and
resumable like every training here: both networks, both optimizers and the EMA are in the checkpoint.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sr4x.config import GanParams
from sr4x.pairs import Pairs
from sr4x.training import evaluate_mse, resumable_epochs

BETAS = (0.9, 0.99)  # ESRGAN's and Real-ESRGAN's Adam betas


class PatchDiscriminator(nn.Module):
    """A spectral-norm PatchGAN for 32x32 images: two stride-2 stages to 8x8, one logit per position."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(3, width, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 16x16
            spectral_norm(nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 8x8
            spectral_norm(nn.Conv2d(4 * width, 4 * width, 3, padding=1)), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GanTraining:
    """The two networks, their optimizers and the generator's EMA: one `step` at a time."""

    def __init__(self, generator: nn.Module, params: GanParams, bf16: bool, channels_last: bool,
                 fused_adam: bool) -> None:
        self.params, self.bf16 = params, bf16
        self.generator = generator
        self.discriminator = PatchDiscriminator(params.discriminator_width).to(next(generator.parameters()).device)
        if channels_last:
            for net in (self.generator, self.discriminator):
                net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(generator).eval().requires_grad_(False)
        self.opt_g, self.opt_d = (torch.optim.Adam(net.parameters(), lr=params.lr, betas=BETAS, fused=fused_adam)
                                  for net in (self.generator, self.discriminator))

    def stateful(self) -> dict[str, object]:
        """What a checkpoint must hold to resume exactly."""
        return {"net_g": self.generator, "net_d": self.discriminator, "net_g_ema": self.ema,
                "optimizer_g": self.opt_g, "optimizer_d": self.opt_d}  # BasicSR's names

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.discriminator(images).float()

    def step(self, low: torch.Tensor, high: torch.Tensor) -> dict[str, float]:
        """One generator step, the EMA update, then one discriminator step; returns the batch's losses."""
        p = self.params
        self.generator.train(), self.discriminator.train()
        with torch.autocast(low.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            fake = self.generator(low).float()
        self.discriminator.requires_grad_(False)  # the generator's step leaves D's gradients alone
        fake_logits = self._logits(fake)
        l1 = F.l1_loss(fake, high)
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        self.opt_g.zero_grad(set_to_none=True)
        (p.pixel_weight * l1 + p.adversarial_weight * adversarial).backward()
        self.opt_g.step()
        with torch.no_grad():
            for e, g in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
                e.lerp_(g, 1 - p.ema)
        self.discriminator.requires_grad_(True)
        real_logits, fake_logits = self._logits(high), self._logits(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        losses = {"l1": l1, "adversarial": adversarial, "discriminator": d_loss,
                  "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}
        return {key: value.detach() for key, value in losses.items()}


def train_gan(generator: nn.Module, train: Pairs, test: Pairs, params: GanParams, options, checkpoint: Path,
              run_fingerprint: str, on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
              ) -> tuple[nn.Module, list[dict[str, float]]]:
    """Fine-tune `generator` (the trained sr, on `train`'s device); returns its EMA and the per-epoch log.

    Each epoch draws `params.epoch_images` training pairs afresh (all when 0); the log has the mean of each
    loss, the discriminator's mean probability on real and on generated images, and the EMA's test MSE.
    """
    torch.manual_seed(params.seed)
    gan = GanTraining(generator, params, options.bf16, options.channels_last, options.fused_adam)
    shuffle = torch.Generator().manual_seed(params.seed)
    per_epoch = min(params.epoch_images or len(train), len(train))

    def run_epoch(epoch: int) -> dict[str, float]:
        batches = torch.randperm(len(train), generator=shuffle)[:per_epoch].to(train.device).split(params.batch_size)
        sums: dict[str, torch.Tensor] = {}
        for idx in batches:
            for key, value in gan.step(*train.batch(idx)).items():
                sums[key] = sums.get(key, 0) + value * len(idx)
        row = {"epoch": epoch, **{key: value.item() / per_epoch for key, value in sums.items()},
               "test_mse": evaluate_mse(gan.ema, test, params.batch_size, options.bf16)}
        print(f"sr_gan epoch {epoch}/{params.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                                  if k != "epoch"), flush=True)
        return row

    log = resumable_epochs(params.epochs, run_epoch, gan.stateful(), shuffle, checkpoint, run_fingerprint, "sr_gan",
                           on_epoch)
    return gan.ema, log
