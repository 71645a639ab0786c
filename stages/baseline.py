"""DVC stage `baseline@METHOD`: the evaluation report of a fixed interpolation (no model, no training code).

Usage: python -m stages.baseline METHOD   (nearest, bilinear or bicubic)
"""
from sr4x.config import load_params
from sr4x.evaluation import BASELINES, interpolate, write_report
from sr4x.pairs import class_names, load_split
from sr4x.stage import run_stage, stage_argument


def main() -> str:
    method = stage_argument("baseline", BASELINES)
    params = load_params()
    opts = params.evaluate
    test = load_split("test", params.data.test_images)
    scores = write_report(method, interpolate(test.low, method), test, class_names(), opts.samples, opts.batch_size,
                          parameters=0)
    return f"baseline@{method}: {scores}"


if __name__ == "__main__":
    run_stage(main)
