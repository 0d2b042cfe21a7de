"""Content-addressed pixel store: `images/ab/abcdef....png`, named by the SHA-256 of the pixels.

Only pixels are kept (lossless PNG, 8 or 16 bit), never a DICOM header, so nothing
identifying is stored; the same image added twice is stored once. The store lets a
gallery be re-embedded when the model changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from matcher.errors import Bone2GeneError


class ImageStoreError(Bone2GeneError, RuntimeError):
    """A stored image is missing or does not match its name."""


def pixel_digest(pixels: np.ndarray) -> str:
    """SHA-256 over dtype, shape and the pixel bytes."""
    pixels = np.ascontiguousarray(pixels)
    digest = hashlib.sha256(f"{pixels.dtype.str}{pixels.shape}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ImageStoreError(f"not an image digest: {digest!r}")
        return self.root / digest[:2] / f"{digest}.png"

    def put(self, pixels: np.ndarray) -> str:
        """Store 2-D uint8/uint16 pixels (durably: written, synced, renamed); returns the digest."""
        if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
            raise ImageStoreError(f"expected 2-D uint8 or uint16 pixels, not {pixels.dtype} {pixels.shape}")
        digest = pixel_digest(pixels)
        target = self.path_of(digest)
        if target.is_file():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ImageStoreError("could not encode the image as PNG")
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            handle.write(encoded.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return digest

    def get(self, digest: str) -> np.ndarray:
        path = self.path_of(digest)
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise ImageStoreError(f"stored image {digest[:12]} is missing or unreadable ({path})")
        if pixel_digest(pixels) != digest:
            raise ImageStoreError(f"stored image {digest[:12]} does not match its digest (damaged)")
        return pixels

    def delete(self, digest: str) -> None:
        self.path_of(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        return {p.stem for p in self.root.glob("??/*.png")} if self.root.is_dir() else set()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("??/*.png")) if self.root.is_dir() else 0
