"""Reading an image file into the raw array shape a model was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError


def as_input(img: Image.Image, shape: tuple[int, ...]) -> np.ndarray:
    """An opened image as uint8 of ``shape``: ``(H, W)`` greyscale or ``(H, W, 3)`` RGB, resized."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3):
        raise DataError(f"cannot turn an image into input shape {shape}; allowed: (H, W) or (H, W, 3)")
    img = img.convert("L" if len(shape) == 2 else "RGB")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_image(path: Path | str, shape: tuple[int, ...]) -> np.ndarray:
    """A PNG or JPEG file as the model's raw input (see ``as_input``)."""
    try:
        with Image.open(path) as img:
            if img.format not in ("PNG", "JPEG"):
                raise DataError(f"{path}: a {img.format} image; allowed: PNG or JPEG")
            return as_input(img, shape)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({e})") from None
