"""DVC stage `perception`: the perception-distortion table and figure (docs/gan.md). For the original test images,
every baseline, every model and the network interpolations between sr and sr_gan: PSNR, the judge's accuracy, FID
and KID (perception.py), each output as its evaluate stage scores it.

Usage: python -m stages.perception
"""
import copy

import pandas as pd
import torch

from sr4x import paths
from sr4x.atomic import atomic_dir, write_json, write_text
from sr4x.config import GAN_MODEL, MODELS, load_params
from sr4x.devices import detect_machine, resolve_device, resolve_speed_options
from sr4x.evaluation import BASELINES, interpolate, mse, psnr
from sr4x.figures import perception_figure, save_figure
from sr4x.inference import evaluated_output, trained_model
from sr4x.judge import judge_outputs, load_judge
from sr4x.models import interpolate_weights
from sr4x.pairs import load_split
from sr4x.perception import FeatureDistances, perceptual_scores
from sr4x.stage import run_stage


def main() -> str:
    params = load_params()
    device = resolve_device(params.train.device)
    bf16 = resolve_speed_options(params.train, paths.JUDGE, detect_machine(device)).bf16  # as the judge trained
    test = load_split("test", params.data.test_images)
    judge = load_judge(paths.weights(paths.JUDGE)).to(device, memory_format=torch.channels_last)
    score = lambda images: judge_outputs(judge, images, bf16)  # noqa: E731
    logits, real = score(test.high)
    distances = FeatureDistances(real)
    points = {"original": perceptual_scores(distances, logits, real, test.labels)}  # the bounds; no PSNR

    def add(name: str, pred) -> None:
        points[name] = {"psnr": psnr(mse(pred, test.high)),
                        **perceptual_scores(distances, *score(pred), test.labels)}
        print(f"perception: {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in points[name].items()), flush=True)

    for method in BASELINES:
        add(method, interpolate(test.low, method))
    models = {name: trained_model(name, params) for name in MODELS}
    for name, model in models.items():
        add(name, evaluated_output(name, model, test.low, params))
    sweep = copy.deepcopy(models["sr"])
    for alpha in params.gan.interpolation:
        sweep.load_state_dict(interpolate_weights(models["sr"].state_dict(), models[GAN_MODEL].state_dict(), alpha))
        add(f"interp {alpha:g}", evaluated_output(GAN_MODEL, sweep, test.low, params))
    with atomic_dir(paths.PERCEPTION_METRICS) as folder:  # one file per point: one row each in `dvc metrics show`
        for name, scores in points.items():
            write_json(folder / f"{name.replace(' ', '_')}.json", scores)
    table = pd.DataFrame([{"point": name, **scores} for name, scores in points.items()])
    write_text(paths.PERCEPTION_TABLE, table.to_csv(index=False, float_format="%.6g"))
    save_figure(paths.PERCEPTION_FIGURE, perception_figure(table.dropna(subset=["psnr"])))
    return f"perception: {len(points)} points"


if __name__ == "__main__":
    run_stage(main)
