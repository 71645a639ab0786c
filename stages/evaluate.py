"""DVC stage `evaluate@ARCH`: the evaluation report of a trained model, with its inference steps.

Usage: python -m stages.evaluate ARCH
"""
import sys

from src.cli import PREPARED, run_stage, split_sizes
from src.config import ARCHITECTURES, ParamsError, check_limit, load_params
from src.devices import resolve_device
from src.evaluation import write_report
from src.inference import predict, project_consistent, self_ensemble
from src.metrics import mse, psnr
from src.models import count_parameters
from src.pairs import load_pairs, to_float
from src.trained import load_trained


def main() -> str:
    arch = sys.argv[1] if len(sys.argv) > 1 else ""
    params = load_params()
    if arch not in ARCHITECTURES:
        raise ParamsError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    opts, config = params.evaluate, params.models[arch]
    n_test = check_limit("data.test_images", params.data.test_images, split_sizes()["test"])
    test = load_pairs(PREPARED / "test.pt").head(n_test)

    device = resolve_device(config.train.device)
    model = load_trained(arch, config.options, f"models/{arch}.pt").to(device)
    low = test.low.to(device)
    plain = predict(model, low, opts.batch_size, desc=f"evaluate@{arch}")
    ensembled = predict(model, low, opts.batch_size, self_ensemble, desc=f"evaluate@{arch} x8 ensemble")
    base_psnr = psnr(mse(plain, test.high))
    gain = lambda p: psnr(mse(p, test.high)) - base_psnr  # noqa: E731
    # Both steps are measured every run; params choose which ones the reported prediction uses.
    inference = {
        "self_ensemble_gain_db": gain(ensembled),
        "consistency_gain_db": gain(project_consistent(plain, to_float(test.low))),
    }
    pred = ensembled if arch in opts.self_ensemble else plain
    if arch in opts.consistency:
        pred = project_consistent(pred, to_float(test.low))
    scores = write_report(arch, pred, test, opts.samples, count_parameters(model), {"inference": inference})
    return f"evaluate@{arch}: {scores}"


if __name__ == "__main__":
    run_stage(main)
