"""sr4x: a DVC pipeline for learned 4x image super-resolution, and an upscaler for your own images."""
