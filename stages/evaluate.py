"""DVC stage `evaluate@ARCH`: the evaluation report of a trained model, with its inference refinements.

Usage: python -m stages.evaluate ARCH
"""
from src import paths
from src.architectures import ARCHITECTURES
from src.config import load_params
from src.evaluation import write_report
from src.hardware import resolve_device
from src.inference import refined_prediction
from src.models import count_parameters
from src.pairs import load_split
from src.stage import run_stage, stage_argument
from src.trained import load_trained


def main() -> str:
    arch = stage_argument("architecture", ARCHITECTURES)
    params = load_params()
    opts, config = params.evaluate, params.models[arch]
    test = load_split("test", params.data.test_images)
    _, model = load_trained(paths.weights(arch), arch, config.options)
    model = model.to(resolve_device(config.train.device))
    pred, gains = refined_prediction(model, test, opts.batch_size, arch in opts.self_ensemble,
                                     arch in opts.consistency, f"evaluate@{arch}")
    scores = write_report(arch, pred, test, opts.samples, count_parameters(model), {"inference": gains})
    return f"evaluate@{arch}: {scores}"


if __name__ == "__main__":
    run_stage(main)
