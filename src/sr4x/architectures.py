"""The project's one scale, and one description per architecture: its class in `models.py`, its options and
the input sizes it accepts.

Torch-free, so that params validation and `dvc.yaml` generation read it without importing model code.
Adding an architecture is a class in `models.py`, an entry here and a block in params.yaml.
"""
from __future__ import annotations

import dataclasses

SCALE = 4  # every model upscales by this factor; the pairs' low-resolution halves are this much smaller


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the rest of the project needs to know about a model without building it."""

    model: str  # the nn.Module class's name in models.py
    options: dict[str, int]  # constructor options (params.yaml models.ARCH.NAME) -> lowest allowed value
    exact_input: int | None = None  # the one square input size it accepts, if it takes no other
    input_multiple: int = 1  # otherwise: height and width must be multiples of this

    def size_problem(self, width: int, height: int) -> str | None:
        """Why a width x height input cannot be upscaled, or None if it can."""
        n = self.exact_input
        if n is not None and (width, height) != (n, n):
            return f"needs exactly {n}x{n} images"
        if width % self.input_multiple or height % self.input_multiple:
            return f"needs a width and height that are multiples of {self.input_multiple}"
        return None

    @property
    def any_size(self) -> bool:
        """Whether it upscales inputs of any size (multiples allowed), so that large images can be tiled."""
        return self.exact_input is None


ARCHITECTURES: dict[str, Architecture] = {
    # the tutorial's three: a fixed 192-value input; two 2x2 max-pools; an encoder that collapses 8x8 to 1x1
    "fc": Architecture("FC", {}, exact_input=8),
    "conv": Architecture("Conv", {}, input_multiple=4),
    "resnet": Architecture("ResNet", {}, exact_input=8),
    # fully convolutional at the input resolution
    "sr": Architecture("SRResNet", {"width": 1, "depth": 0}),
}
