"""Pick a point between `sr` and `sr_gan` on the perception-distortion trade-off: ESRGAN's net_interp.py.

    python -m sr4x.net_interp 0.5 --out models/sr_gan_0.5.pt [--a models/sr.pt] [--b models/sr_gan.pt]

Writes a weights file whose every tensor is (1 - alpha) * a + alpha * b; both files must hold the same
architecture and options. `python -m sr4x.upscale --weights FILE` then upscales with it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sr4x import paths
from sr4x.config import GAN_MODEL
from sr4x.models import build_model, interpolate_weights, read_weights, save_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sr4x.net_interp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("alpha", type=float, help="0 gives --a, 1 gives --b")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--a", type=Path, default=paths.weights("sr"))
    parser.add_argument("--b", type=Path, default=paths.weights(GAN_MODEL))
    args = parser.parse_args(argv)
    (arch, options, a), (arch_b, options_b, b) = read_weights(args.a), read_weights(args.b)
    if (arch, options) != (arch_b, options_b):
        print(f"error: {args.a} holds {arch} {options}, {args.b} holds {arch_b} {options_b}", file=sys.stderr)
        return 2
    model = build_model(arch, **options)
    model.load_state_dict(interpolate_weights(a, b, args.alpha))
    save_weights(args.out, arch, options, model)
    print(f"{args.out}: {1 - args.alpha:g} x {args.a} + {args.alpha:g} x {args.b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
