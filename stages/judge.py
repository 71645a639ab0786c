"""DVC stage `judge`: train the classifier that grades upscaled images (docs/gan.md) on the original training
images, resumably; write its weights, run info, per-epoch log, and its test accuracy and training time.

Usage: python -m stages.judge
"""
import dataclasses
import time

import pandas as pd
import torch

from sr4x import paths
from sr4x.atomic import write_json, write_text
from sr4x.config import load_params
from sr4x.judge import accuracy, judge_outputs, save_judge
from sr4x.judge_training import train_judge
from sr4x.pairs import load_split
from sr4x.provenance import environment, file_md5, fingerprint, source_digest
from sr4x.stage import run_stage
from sr4x.training import setup_run


def main() -> str:
    started = time.perf_counter()
    params = load_params()
    device, machine, options = setup_run(params.train, paths.JUDGE)
    train = load_split("train", params.data.train_images).to(device)
    test = load_split("test", params.data.test_images)
    run_id = fingerprint(params.judge, params.data, options.values(), torch.__version__, str(device),
                         file_md5(paths.prepared_split("train")), source_digest("stages.judge"))
    info = {"machine": dataclasses.asdict(machine), "threads": torch.get_num_threads(), "options": options.values(),
            "train_images": len(train), "environment": environment()}

    def write_progress(log):
        write_text(paths.curves(paths.JUDGE), pd.DataFrame(log).to_csv(index=False))
        write_json(paths.run_info(paths.JUDGE), {**info, "epochs": len(log)})

    fit_start = time.perf_counter()
    judge, log = train_judge(train, params.judge, options.bf16, paths.checkpoint(paths.JUDGE), run_id, write_progress)
    training_seconds = round(time.perf_counter() - fit_start, 1)  # of the epochs this process trained
    logits, _ = judge_outputs(judge, test.high, options.bf16)
    test_accuracy = accuracy(logits, test.labels)
    write_progress(log)
    save_judge(paths.weights(paths.JUDGE), judge)
    summary = {"test_accuracy": test_accuracy, "training_seconds": training_seconds}
    write_json(paths.run_info(paths.JUDGE), {**info, "epochs": len(log), **summary,
                                             "stage_wall_seconds": round(time.perf_counter() - started, 1)})
    write_json(paths.JUDGE_METRICS, {"judge": {**summary, "parameters": sum(p.numel() for p in judge.parameters())}})
    paths.checkpoint(paths.JUDGE).unlink(missing_ok=True)
    return f"judge: {len(log)} epochs in {training_seconds:.0f} s, test accuracy {test_accuracy:.4f} (flip views)"


if __name__ == "__main__":
    run_stage(main)
