"""One image file as an 8-bit RGB array, or the reason it cannot be one.

Any still format Pillow reads. The EXIF orientation is applied. Greyscale, palette, alpha (dropped),
16-bit and CMYK images become 8-bit RGB, and the mode they had is returned so that it can be counted.
Refused: files Pillow cannot decode (not an image, truncated), animated or multi-page images, and
images over Pillow's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), before their pixels
are decoded.
"""
from __future__ import annotations

import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}  # Pillow's modes for 16-bit greyscale (PNG, TIFF)


class BadImage(Exception):
    """Why a file cannot be used as an image."""


def read_photo(file: BinaryIO) -> tuple[np.ndarray, str | None]:
    """(HWC uint8 RGB array, the mode it was converted from or None for RGB) of an image file's bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # "palette images with transparency ..."
            with Image.open(file) as image:
                frames = getattr(image, "n_frames", 1)
                if frames > 1:
                    raise BadImage(f"an animated or multi-page image ({frames} frames); only still images are used")
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                mode = image.mode
                if mode in SIXTEEN_BIT:  # convert("RGB") would clip 16-bit values at 255 instead of scaling them
                    grey = np.asarray(image).astype(np.uint32).clip(0, 65535)
                    rgb = np.repeat(((grey * 255 + 32767) // 65535).astype(np.uint8)[..., None], 3, axis=2)
                else:  # one copy of the pixels besides Pillow's own
                    rgb = np.asarray(image if mode == "RGB" else image.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage(f"over Pillow's decompression-bomb limit, Image.MAX_IMAGE_PIXELS ({err})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f"cannot be decoded, truncated or damaged ({err})") from None
    return rgb, None if mode == "RGB" else mode
