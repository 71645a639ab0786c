"""Benchmark: where an epoch's time goes, measured side by side on this machine. Not a test.

Run from the repository root after `dvc repro` (it reads data/prepared and the raw archive):

    python bench/benchmark.py [--fraction 0.2] [--threads 0] [--compile] [--profile]

Prints one table. Each comparison is timed in the same run and reported as a ratio:
- the tutorial's data path (PIL Resize(8) + ToTensor per access, two zipped DataLoaders)
  against ours (index into in-memory uint8 tensors), per 50k-image epoch;
- per architecture, pure model steps (forward, backward, Adam on batches already in memory)
  against our real `train_one_epoch` on the same number of images;
- per architecture, each CPU speed option (channels_last, fused Adam, bf16 autocast, dead-tap
  cropping, combinations, optionally train.compile, one thread, deterministic kernels) against
  eager fp32, and a short training with the adopted options against eager fp32, compared by
  final test MSE;
  with `--profile`, the ops that take resnet's and sr's adopted step's time;
- two one-thread training jobs at once (queued runs with the default threads) against one
  two-thread job, in steps per second;
- the fp32 evaluation pass at several batch sizes, and fp32 against the bf16 per-epoch test pass
  of train@sr (time and test MSE of the trained sr);
- the prepare work for 60k images, a no-op `dvc repro`, and the peak RSS of a training stage.
Epoch times are measured on `--fraction` of the training split and scaled to 50k images.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from timing import timed as timed_on
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.archive import read_archive
from sr4x.config import ModelParams, TrainParams, load_params
from sr4x.devices import SpeedOptions, detect_machine, resolve_speed_options
from sr4x.models import build_model, load_trained
from sr4x.pairs import load_pairs, make_pairs, save_pairs, to_float
from sr4x.training import compiled, evaluate_mse, fit, make_scheduler, prepare_model, train_one_epoch

CPU = torch.device("cpu")

EPOCH = 50_000


class TutorialImages(Dataset):
    """The tutorial's per-access transform over PIL images (as torchvision's CIFAR10 serves them)."""

    def __init__(self, high: torch.Tensor, transform):
        self.images = [transforms.functional.to_pil_image(im) for im in high]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def timed(fn) -> float:
    return timed_on(CPU, fn)[0]


def tutorial_data_epoch(high: torch.Tensor) -> float:
    low_set = TutorialImages(high, transforms.Compose([transforms.Resize(8), transforms.ToTensor()]))
    high_set = TutorialImages(high, transforms.ToTensor())
    loaders = [DataLoader(s, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0))
               for s in (low_set, high_set)]
    return timed(lambda: [None for _ in zip(*loaders, strict=True)]) * EPOCH / len(high)


def our_data_epoch(pairs) -> float:
    def run():
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
        for idx in order.split(128):
            to_float(pairs.low[idx]), to_float(pairs.high[idx])
    return timed(run) * EPOCH / len(pairs)


@dataclasses.dataclass(frozen=True)
class Adopted:
    """One model's params.yaml settings and the speed options train@ARCH resolves for them on this CPU."""

    config: ModelParams
    speed: SpeedOptions

    @property
    def options(self) -> dict:
        return dict(self.config.options)

    @property
    def train(self) -> TrainParams:
        return self.config.train


def cpu_params() -> dict[str, Adopted]:
    """Each model's params and its `auto` speed options as train@ARCH resolves them on this CPU."""
    machine = detect_machine(CPU)
    return {arch: Adopted(cfg, resolve_speed_options(cfg.train, arch, machine))
            for arch, cfg in load_params().models.items()}


def make_model(arch: str, options: dict, train: TrainParams, speed: SpeedOptions):
    model = build_model(arch, **options)
    return model, prepare_model(model, speed, train.lr, torch.rand(1, 3, 8, 8))


def step_fn(arch: str, options: dict, train: TrainParams, speed: SpeedOptions):
    """One forward, backward and optimizer step on a batch already in memory as floats."""
    model, opt = make_model(arch, options, train, speed)
    forward = compiled(model, speed, "cpu")
    x, y = torch.rand(train.batch_size, 3, 8, 8), torch.rand(train.batch_size, 3, 32, 32)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=speed.bf16):
            out = forward(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (and compilation)
    return step


def deterministic(step: Callable[[], None]) -> Callable[[], None]:
    """The same step with torch's deterministic kernels requested, as the train stage runs it."""
    def run() -> None:
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            step()
        finally:
            torch.use_deterministic_algorithms(False)
    return run


def profile_rows(arch: str, cfg, n_ops: int = 8) -> list[tuple[str, str, str]]:
    """Where one adopted training step's CPU time goes: the top ops by self time, as shares."""
    step = step_fn(arch, cfg.options, cfg.train, cfg.speed)
    with torch.profiler.profile() as prof:
        for _ in range(5):
            step()
    ops = sorted(prof.key_averages(), key=lambda op: op.self_cpu_time_total, reverse=True)
    total = sum(op.self_cpu_time_total for op in ops)
    return [(f"{arch} adopted step, share of CPU time: {op.key}", f"{op.self_cpu_time_total / 5e3:.1f} ms",
             f"{op.self_cpu_time_total / total:.0%}") for op in ops[:n_ops]]


def race(steps: dict[str, Callable[[], None]], batch_size: int, n_images: int, rounds: int) -> dict[str, float]:
    """Seconds per 50k-image epoch of each step function, timed in alternating rounds (best round
    kept), so that a slow spell of this shared machine hits every contender alike."""
    per_round = max(1, n_images // batch_size // rounds)
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], timed(lambda step=step: [step() for _ in range(per_round)]))
    return {name: t * EPOCH / (per_round * batch_size) for name, t in best.items()}


def real_epoch(arch: str, options: dict, train: TrainParams, speed: SpeedOptions, pairs) -> float:
    """Our train stage's epoch function (data path, schedule, logging) on the same images."""
    model, opt = make_model(arch, options, train, speed)
    sched = make_scheduler(opt, train.schedule, train.lr, 10 * len(pairs))
    gen = torch.Generator().manual_seed(0)
    options = dict(bf16=speed.bf16, augment=train.augment)
    train_one_epoch(model, opt, sched, pairs.head(train.batch_size), train.batch_size, gen, "warm-up", **options)
    seconds = timed(lambda: train_one_epoch(model, opt, sched, pairs, train.batch_size, gen, "bench", **options))
    return seconds * EPOCH / len(pairs)


def speed_options(arch: str, cfg, n_images: int, rounds: int, compile_model: bool) -> list[tuple[str, str, str]]:
    """Pure-step time of each CPU speed option, alone and together, against eager fp32."""
    eager = SpeedOptions("fp32", channels_last=False, fused_adam=False, crop_dead_taps=False, compile=False)
    variants = {
        "fp32 eager": eager,
        "channels_last": dataclasses.replace(eager, channels_last=True),
        "fused Adam": dataclasses.replace(eager, fused_adam=True),
        "bf16 autocast": dataclasses.replace(eager, precision="bf16"),
        "crop dead taps": dataclasses.replace(eager, crop_dead_taps=True),
        "channels_last + fused Adam": dataclasses.replace(eager, channels_last=True, fused_adam=True),
        "channels_last + fused Adam + crop dead taps": dataclasses.replace(
            eager, channels_last=True, fused_adam=True, crop_dead_taps=True),
        "all three": dataclasses.replace(eager, channels_last=True, fused_adam=True, precision="bf16"),
    }
    steps = {name: step_fn(arch, cfg.options, cfg.train, speed) for name, speed in variants.items()}
    steps["deterministic kernels (as train@ARCH runs)"] = deterministic(step_fn(arch, cfg.options, cfg.train, eager))
    if compile_model:
        with_compile = dataclasses.replace(variants["all three"], compile=True)
        steps["all three + compile"] = step_fn(arch, cfg.options, cfg.train, with_compile)
    times = race(steps, cfg.train.batch_size, n_images, rounds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of two queued jobs gets on this machine
    times["all three, 1 thread"] = race({"1": steps["all three"]}, cfg.train.batch_size, n_images, rounds)["1"]
    torch.set_num_threads(threads)
    adopted = (f"adopted: {cfg.speed.precision}, channels_last={cfg.speed.channels_last}, "
               f"fused_adam={cfg.speed.fused_adam}, crop_dead_taps={cfg.speed.crop_dead_taps}")
    rows = [(f"{arch} pure steps, {name}", f"{t:.1f} s", f"{times['fp32 eager'] / t:.2f}x")
            for name, t in times.items()]
    return rows + [(f"{arch} ({adopted})", "", "")]


def precision_check(arch: str, cfg, train_pairs, test_pairs, epochs: int) -> tuple[str, str, str]:
    """Final test MSE of a short training with the adopted options against eager fp32."""
    eager = SpeedOptions("fp32", channels_last=False, fused_adam=False, crop_dead_taps=False, compile=False)
    train = dataclasses.replace(cfg.train, epochs=epochs)
    mse = {}
    for name, speed in (("eager", eager), ("adopted", cfg.speed)):
        torch.manual_seed(train.seed)
        model = build_model(arch, **cfg.options)
        with tempfile.TemporaryDirectory() as tmp:
            fit(model, train_pairs, test_pairs, train, speed, Path(tmp) / "ckpt.pt", name, f"check {arch} {name}")
        mse[name] = evaluate_mse(model, test_pairs, 1000)  # fp32, as the evaluate stage
    change = mse["adopted"] / mse["eager"] - 1
    return (f"{arch} test MSE after {epochs} epochs on {len(train_pairs)} images: adopted / fp32 eager",
            f"{mse['adopted']:.5f} / {mse['eager']:.5f}", f"{change:+.1%}")


def eval_batches(cfg, test_pairs) -> list[tuple[str, str, str]]:
    """Time of the fp32 evaluation pass over the test split at several batch sizes, and of the
    bf16 pass that train@sr runs after every epoch, with both test MSEs of the trained sr."""
    model = load_trained(paths.weights("sr"), "sr", cfg.options)[1].to(memory_format=torch.channels_last)
    times = {b: min(timed(lambda b=b: evaluate_mse(model, test_pairs, b)) for _ in range(2))
             for b in (100, 500, 1000, 2000)}
    rows = [(f"sr fp32 evaluation of {len(test_pairs)} images, batch {b}", f"{t:.2f} s", f"{times[100] / t:.2f}x")
            for b, t in times.items()]
    bf16 = min(timed(lambda: evaluate_mse(model, test_pairs, 1000, bf16=True)) for _ in range(2))
    rows.append((f"sr evaluation of {len(test_pairs)} images, batch 1000: fp32 / bf16",
                 f"{times[1000]:.2f} s / {bf16:.2f} s",
                 f"{times[1000] / bf16:.2f}x"))
    fp32_mse, bf16_mse = evaluate_mse(model, test_pairs, 1000), evaluate_mse(model, test_pairs, 1000, bf16=True)
    rows.append(("trained sr test MSE: fp32 / bf16 evaluation", f"{fp32_mse:.6f} / {bf16_mse:.6f}",
                 f"{bf16_mse / fp32_mse - 1:+.3%}"))
    return rows


def prepare_time() -> float:
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            for name, split in read_archive(paths.RAW_ARCHIVE).items():
                save_pairs(Path(tmp) / f"{name}.pt", make_pairs(split.images, split.labels))
    return timed(run)


def noop_repro() -> tuple[float, float]:
    """Seconds of `dvc repro` with nothing to do: the first call (which may read DVC and its
    imports from a cold disk cache) and the best of three more."""
    def run() -> float:
        return timed(lambda: subprocess.run([sys.executable, "-m", "dvc", "repro"], check=True, capture_output=True))
    return run(), min(run() for _ in range(3))


def child(function: str, *args: str | int) -> subprocess.Popen:
    """Start `<function>(arch, *ints)` of this script in a fresh Python process; it prints one number."""
    return subprocess.Popen([sys.executable, __file__, "--child", function, *map(str, args)], stdout=subprocess.PIPE,
                            text=True)


def child_result(process: subprocess.Popen) -> float:
    """The number a `child` printed last; fails if it did not exit cleanly."""
    out, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"benchmark child {process.args[2:]} failed")
    return float(out.split()[-1])


def child_peak_rss_gib(arch: str, n_images: int) -> float:
    """Peak RSS of a process that loads the prepared data and trains `arch` on `n_images`, like train@ARCH."""
    # The child reports its own peak: RUSAGE_CHILDREN would be the largest of *all* children,
    # the `dvc repro` timed before included, and even its own ru_maxrss starts at this process's.
    return child_result(child("rss_child", arch, n_images)) / 2**20


def rss_child(arch: str, n_images: int) -> None:
    cfg = cpu_params()[arch]
    pairs = load_pairs(paths.prepared_split("train"))
    load_pairs(paths.prepared_split("test"))
    real_epoch(arch, cfg.options, cfg.train, cfg.speed, pairs.head(n_images))
    print(peak_rss_kib())


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB: VmHWM of its own memory map on Linux.

    Not ru_maxrss: Linux carries that across fork and exec, so a child started by a large parent
    reports the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS counts bytes


def steps_child(arch: str, n_steps: int, threads: int) -> None:
    """Time `n_steps` adopted training steps of `arch` on `threads` threads; print the seconds."""
    torch.set_num_threads(threads)
    cfg = cpu_params()[arch]
    step = step_fn(arch, cfg.options, cfg.train, cfg.speed)
    print(timed(lambda: [step() for _ in range(n_steps)]))


def queue_throughput(arch: str, n_steps: int) -> tuple[str, str, str]:
    """Steps per second of `cores` one-thread jobs running at once (`dvc queue start -j 2` with the
    default threads) against one job with all the threads, in separate processes."""
    cores = len(os.sched_getaffinity(0))
    alone = child_result(child("steps_child", arch, n_steps, cores))
    jobs = [child("steps_child", arch, n_steps, 1) for _ in range(cores)]
    together = [child_result(job) for job in jobs]
    rate_alone, rate_together = n_steps / alone, sum(n_steps / t for t in together)
    return (f"{arch} steps/s: {cores} one-thread jobs at once / one {cores}-thread job",
            f"{rate_together:.2f} / {rate_alone:.2f}", f"{rate_together / rate_alone:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the training split timed per epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per speed-option race")
    parser.add_argument("--compile", action="store_true", help="also race torch.compile (about a minute to compile)")
    parser.add_argument("--check-epochs", type=int, default=3, help="epochs of the adopted-vs-eager check (0 = skip)")
    parser.add_argument("--check-images", type=int, default=10_000, help="training images of that check")
    parser.add_argument("--profile", action="store_true", help="also profile resnet's and sr's adopted step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = cpu_params()
    pairs = load_pairs(paths.prepared_split("train"))
    test = load_pairs(paths.prepared_split("test"))
    subset = pairs.head(int(len(pairs) * args.fraction))
    rows = []

    tutorial, ours = tutorial_data_epoch(subset.high), our_data_epoch(pairs)
    rows.append(("data path per epoch: tutorial / ours", f"{tutorial:.2f} s / {ours:.3f} s", f"{tutorial / ours:.0f}x"))
    for arch in ARCHITECTURES:
        cfg = params[arch]
        step = {arch: step_fn(arch, cfg.options, cfg.train, cfg.speed)}
        pure, real = float("inf"), float("inf")
        for _ in range(args.rounds):  # alternated, best kept, like the races
            pure = min(pure, race(step, cfg.train.batch_size, len(subset), 1)[arch])
            real = min(real, real_epoch(arch, cfg.options, cfg.train, cfg.speed, subset))
        rows.append((f"{arch} epoch: real / pure steps", f"{real:.1f} s / {pure:.1f} s", f"{real / pure:.3f}"))
    for arch in ARCHITECTURES:
        rows += speed_options(arch, params[arch], len(subset), args.rounds, args.compile)
        if args.profile and arch in ("resnet", "sr"):
            rows += profile_rows(arch, params[arch])
    rows += [queue_throughput(arch, 40) for arch in ("resnet", "sr")]
    rows += eval_batches(params["sr"].config, test)
    if args.check_epochs:
        for arch in ARCHITECTURES:
            check = pairs.head(args.check_images)
            rows.append(precision_check(arch, params[arch], check, test, args.check_epochs))
    rows.append(("prepare, 60k images", f"{prepare_time():.1f} s", ""))
    first, warm = noop_repro()
    rows.append(("no-op dvc repro: first / best of the next 3", f"{first:.2f} s / {warm:.2f} s", ""))
    rss = child_peak_rss_gib("resnet", 512)
    rows.append(("peak RSS, resnet training process (full split loaded)", f"{rss:.2f} GiB", ""))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fraction {args.fraction}")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>22}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>22}  {ratio}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one measurement in a fresh process, started by child()
        function, arch, *numbers = sys.argv[2:]
        globals()[function](arch, *map(int, numbers))
    else:
        main()
