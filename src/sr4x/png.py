"""Writing an RGB PNG band by band, so that an image never has to be held whole in memory.

Each band of rows is filtered with PNG's "Up" filter (the difference from the row above, which
suits photos) and fed to one zlib stream; the compressed bytes go out as IDAT chunks as they come.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
UP = 2  # PNG filter type: each byte minus the byte above it
CHUNK_BYTES = 4 * 2**20  # rows filtered and compressed at a time: the copies stay this small


class PngStream:
    """An 8-bit RGB PNG of known size, written to `file` band by band, top to bottom."""

    def __init__(self, file: BinaryIO, width: int, height: int, level: int = 6) -> None:
        self.file, self.width, self.height = file, width, height
        self.rows_written = 0
        self.previous = np.zeros(3 * width, dtype=np.uint8)
        self.compressor = zlib.compressobj(level)
        file.write(SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8-bit RGB

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self.file.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append uint8 rows of shape (h, width, 3), filtered and compressed a few MB at a time."""
        if rows.dtype != np.uint8 or rows.shape[1:] != (self.width, 3):
            raise ValueError(f"expected uint8 rows of shape (h, {self.width}, 3), got {rows.dtype} {rows.shape}")
        if self.rows_written + len(rows) > self.height:
            raise ValueError(f"{self.rows_written + len(rows)} rows written to an image {self.height} rows high")
        step = max(1, CHUNK_BYTES // (3 * self.width))
        for start in range(0, len(rows), step):
            self._write(rows[start:start + step])

    def _write(self, rows: np.ndarray) -> None:
        flat = rows.reshape(len(rows), -1)
        above = np.concatenate([self.previous[None], flat[:-1]])
        filtered = np.empty((len(rows), flat.shape[1] + 1), dtype=np.uint8)
        filtered[:, 0] = UP
        np.subtract(flat, above, out=filtered[:, 1:])  # modulo 256, as PNG defines it
        compressed = self.compressor.compress(filtered.tobytes())
        if compressed:
            self._chunk(b"IDAT", compressed)
        self.previous = flat[-1].copy()
        self.rows_written += len(rows)

    def close(self) -> None:
        """Finish the image; every row must have been written."""
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows written")
        self._chunk(b"IDAT", self.compressor.flush())
        self._chunk(b"IEND", b"")
