"""DVC stage `baseline@METHOD`: the evaluation report of a fixed interpolation (no model, no training code).

Usage: python -m stages.baseline METHOD   (nearest, bilinear or bicubic)
"""
import sys

from src.cli import PREPARED, run_stage, split_sizes
from src.config import BASELINES, ParamsError, check_limit, load_params
from src.evaluation import write_report
from src.metrics import interpolate
from src.pairs import load_pairs


def main() -> str:
    method = sys.argv[1] if len(sys.argv) > 1 else ""
    params = load_params()
    if method not in BASELINES:
        raise ParamsError(f"unknown baseline {method!r}; allowed: {', '.join(BASELINES)}")
    n_test = check_limit("data.test_images", params.data.test_images, split_sizes()["test"])
    test = load_pairs(PREPARED / "test.pt").head(n_test)
    scores = write_report(method, interpolate(test.low, method), test, params.evaluate.samples, parameters=0)
    return f"baseline@{method}: {scores}"


if __name__ == "__main__":
    run_stage(main)
