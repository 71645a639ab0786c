"""DVC stage `evaluate_folder@SOURCE`: score the held-out images of a folder source whole, by the SR field's protocol.

Usage: python -m stages.evaluate_folder SOURCE

Three upscalers per image: `sr` trained on this source, `sr` trained on CIFAR-10 (models/sr.pt: the domain
transfer) and bicubic. The models run through the upscaler's tiled inference in fp32, at full resolution;
every output is rounded to 8 bits, as a saved image is. Writes the means over images
(metrics/sources/SOURCE/scores.json), every image's scores (plots/sources/SOURCE/per_image.csv) and a
figure of crops (plots/sources/SOURCE/crops.png).
"""
import pandas as pd
import torch

from sr4x import paths
from sr4x.architectures import SCALE
from sr4x.atomic import write_json, write_text
from sr4x.config import load_params
from sr4x.evaluation import interpolate, protocol_scores
from sr4x.figures import image_grid, save_figure
from sr4x.pairs import to_uint8
from sr4x.source_data import held_out_images
from sr4x.stage import run_stage, stage_argument
from sr4x.upscale import load_upscaler

CROP = 64  # the side of each figure crop, in output pixels


def worst_bicubic_window(bicubic: torch.Tensor, high: torch.Tensor, side: int) -> tuple[int, int]:
    """The figure's fixed rule: the top-left corner of the side x side window, on a grid of side/2, where bicubic's
    error is largest (the detail an upscaler must restore)."""
    error = (bicubic.double() - high.double()).pow(2).sum(0)
    step = side // 2
    rows, cols = range(0, high.shape[1] - side + 1, step), range(0, high.shape[2] - side + 1, step)
    corners = [(y, x) for y in rows for x in cols]
    return max(corners, key=lambda c: error[c[0]:c[0] + side, c[1]:c[1] + side].sum().item())


def main() -> str:
    params = load_params()
    name = stage_argument("source", params.sources)
    device = params.sources[name].train.device
    upscalers = {"cifar_sr": load_upscaler(paths.weights("sr"), device, precision="fp32"),
                 "sr": load_upscaler(paths.source_weights(name), device, precision="fp32")}
    rows, crops = [], {}
    for file, low, high in held_out_images(paths.source_data(name)):
        outputs = {"bicubic": to_uint8(interpolate(low[None], "bicubic")[0])}
        outputs |= {model: upscaler.upscale(low) for model, upscaler in upscalers.items()}
        for model, output in outputs.items():
            rows.append({"image": file, "width": high.shape[2], "height": high.shape[1], "model": model,
                         **protocol_scores(output, high)})
        if len(crops.get("original", [])) < params.evaluate.samples:
            side = min(CROP, params.sources[name].patch)  # every image has at least one patch a side
            y, x = worst_bicubic_window(outputs["bicubic"], high, side)
            window = (slice(None), slice(y, y + side), slice(x, x + side))
            small = (slice(None), slice(y // SCALE, (y + side) // SCALE), slice(x // SCALE, (x + side) // SCALE))
            for label, image in {"input": low[small], **outputs, "original": high}.items():
                crops.setdefault(label, []).append(image if label == "input" else image[window])
    table = pd.DataFrame(rows)
    scores = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    means = table.groupby("model", sort=False)[scores].mean()
    images = table["image"].nunique()
    write_json(paths.source_metrics(name), {"test": {"images": images, **means.to_dict(orient="index")}})
    write_text(paths.source_per_image(name), table.to_csv(index=False, float_format="%.4f"))
    save_figure(paths.source_crops(name), image_grid(
        {label: torch.stack(images) for label, images in crops.items()},
        f"{name}: held-out crops where bicubic errs most (input, bicubic, CIFAR-trained sr, {name}-trained sr)",
        by="column"))
    y = means["psnr_y"]
    return (f"evaluate_folder@{name}: {images} images, mean PSNR-Y sr {y['sr']:.2f} dB, "
            f"CIFAR sr {y['cifar_sr']:.2f} dB, bicubic {y['bicubic']:.2f} dB")


if __name__ == "__main__":
    run_stage(main)
