"""DVC stage `evaluate@ARCH`: the evaluation report of a trained model, with its inference refinements.

Usage: python -m stages.evaluate ARCH
"""
from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.config import load_params
from sr4x.devices import resolve_device
from sr4x.evaluation import write_report
from sr4x.inference import refined_prediction
from sr4x.models import count_parameters, load_trained
from sr4x.pairs import class_names, load_split
from sr4x.stage import run_stage, stage_argument


def main() -> str:
    arch = stage_argument("architecture", ARCHITECTURES)
    params = load_params()
    opts, config = params.evaluate, params.models[arch]
    test = load_split("test", params.data.test_images)
    _, model = load_trained(paths.weights(arch), arch, config.options)
    model = model.to(resolve_device(config.train.device))
    pred, gains = refined_prediction(model, test, opts.batch_size, arch in opts.self_ensemble,
                                     arch in opts.consistency, f"evaluate@{arch}")
    scores = write_report(arch, pred, test, class_names(), opts.samples, opts.batch_size, count_parameters(model),
                          {"inference": gains})
    return f"evaluate@{arch}: {scores}"


if __name__ == "__main__":
    run_stage(main)
