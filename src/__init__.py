"""Library behind the DVC stages: CIFAR-10 8x8 -> 32x32 super-resolution."""
