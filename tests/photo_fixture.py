"""Generated image folders for the folder-source tests: several formats, sizes and modes, and bad files."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATION = 0x0112  # the EXIF tag


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """An HWC uint8 RGB image with structure at every scale (never near-flat)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / 7.0
    base = np.stack([np.sin(x + seed), np.cos(y * 1.3), np.sin((x + y) * 0.7)], axis=2) * 80 + 128
    return (base + rng.normal(0, 20, (height, width, 3))).clip(0, 255).astype(np.uint8)


def write_good_folder(folder: Path) -> dict[str, str]:
    """Eight usable images (nested, several formats), one EXIF-rotated and one greyscale; file -> what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    files = {
        "a.png": (Image.fromarray(photo(64, 80, 1)), {}),
        "b.jpg": (Image.fromarray(photo(72, 64, 2)), {"quality": 95}),
        "c.webp": (Image.fromarray(photo(64, 64, 3)), {"lossless": True}),
        "nested/d.bmp": (Image.fromarray(photo(68, 66, 4)), {}),
        "nested/grey.png": (Image.fromarray(photo(64, 72, 5)).convert("L"), {}),
        "nested/deeper/e.tiff": (Image.fromarray(photo(80, 64, 6)), {}),
        "palette.png": (Image.fromarray(photo(64, 64, 7)).convert("P"), {}),
    }
    for name, (image, options) in files.items():
        image.save(folder / name, **options)
    rotated = Image.fromarray(photo(64, 96, 8))  # stored 96 wide, 64 high; displayed rotated: 64 wide, 96 high
    exif = rotated.getexif()
    exif[ORIENTATION] = 6
    rotated.save(folder / "rotated.jpg", quality=95, exif=exif)
    return {name: "" for name in files} | {"rotated.jpg": "EXIF orientation 6"}


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height pixels and holds almost none (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))


def write_bad_file(folder: Path, kind: str) -> tuple[str, str]:
    """One bad input of `kind` in `folder`: (its name, a phrase its refusal must contain)."""
    if kind == "truncated":
        Image.fromarray(photo(64, 64, 9)).save(folder / "cut.jpg", quality=95)
        data = (folder / "cut.jpg").read_bytes()
        (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
        return "cut.jpg", "truncated"
    if kind == "not_an_image":
        (folder / "notes.txt").write_text("not a picture\n")
        return "notes.txt", "not an image Pillow can read"
    if kind == "animated":
        frames = [Image.fromarray(photo(64, 64, s)) for s in (10, 11)]
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
        return "anim.gif", "animated or multi-page image (2 frames)"
    if kind == "outside_link":
        outside = (folder.parent / "outside.png").resolve()
        Image.fromarray(photo(64, 64, 12)).save(outside)
        (folder / "link.png").symlink_to(outside)
        return "link.png", f"a symbolic link to {outside}, outside the folder"
    if kind == "too_small":
        Image.fromarray(photo(12, 40, 13)).save(folder / "tiny.png")
        return "tiny.png", "40x12 pixels, smaller than one"
    if kind == "bomb":
        png_header_only(folder / "bomb.png", 20000, 20000)
        return "bomb.png", "decompression-bomb limit"
    raise ValueError(kind)


BAD_KINDS = ["truncated", "not_an_image", "animated", "outside_link", "too_small", "bomb"]
