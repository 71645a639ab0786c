"""DVC stage `baseline@METHOD`: the evaluation report of a fixed interpolation (no model, no training code).

Usage: python -m stages.baseline METHOD   (nearest, bilinear or bicubic)
"""
from src.config import BASELINES, load_params
from src.evaluation import write_report
from src.metrics import interpolate
from src.pairs import load_split
from src.stage import run_stage, stage_argument


def main() -> str:
    method = stage_argument("baseline", BASELINES)
    params = load_params()
    test = load_split("test", params.data.test_images)
    scores = write_report(method, interpolate(test.low, method), test, params.evaluate.samples, parameters=0)
    return f"baseline@{method}: {scores}"


if __name__ == "__main__":
    run_stage(main)
