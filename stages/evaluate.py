"""DVC stage `evaluate@MODEL`: the evaluation report of a trained model (an architecture, or sr_gan), with its
inference refinements.

Usage: python -m stages.evaluate MODEL
"""
from sr4x.config import GAN_MODEL, MODELS, load_params
from sr4x.evaluation import write_report
from sr4x.inference import evaluated_output, refined_prediction, trained_model
from sr4x.models import count_parameters
from sr4x.pairs import class_names, load_split
from sr4x.stage import run_stage, stage_argument


def main() -> str:
    name = stage_argument("model", MODELS)
    params = load_params()
    opts = params.evaluate
    test = load_split("test", params.data.test_images)
    model = trained_model(name, params)
    pred, gains = refined_prediction(model, test, opts.batch_size, name in opts.self_ensemble,
                                     name in opts.consistency, f"evaluate@{name}")
    # sr_gan's samples show sr's outputs of the same images above its own
    beside = ({"sr": evaluated_output("sr", trained_model("sr", params), test.low[:opts.samples], params)}
              if name == GAN_MODEL else None)
    scores = write_report(name, pred, test, class_names(), opts.samples, opts.batch_size, count_parameters(model),
                          {"inference": gains}, beside)
    return f"evaluate@{name}: {scores}"


if __name__ == "__main__":
    run_stage(main)
