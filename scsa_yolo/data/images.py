"""Images as Ultralytics reads them: file signatures, EXIF orientation, sizes, digests and box geometry.

Ultralytics loads images EXIF-rotated (``cv2.imdecode`` honours the orientation tag; its ``imread`` patch reads TIFFs
with ``cv2.imdecodemulti``) and measures them with ``ultralytics.data.utils.exif_size``. Labels are therefore written
in the *displayed* orientation, normalised by the displayed size. Pillow is not uniform here: it applies a TIFF's
orientation when it opens the file (``size`` is already the displayed size, the tag is gone after ``load``) but
leaves JPEG/PNG/WebP pixels as stored. :func:`probe_image` returns both frames explicitly for every format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from ultralytics.data.utils import IMG_FORMATS, exif_size

EXIF_ORIENTATION_TAG = 274
TIFF_WIDTH_TAG, TIFF_LENGTH_TAG = 256, 257  # the stored (un-rotated) size of a TIFF
HEIF_SUFFIXES = {".heic", ".heif"}
TIFF_SUFFIXES = (".tif", ".tiff")
MIN_IMAGE_SIDE = 10  # Ultralytics' label check refuses smaller images
# What reading a file that is no usable image raises: Pillow's DecompressionBombError (a header claiming more than
# twice Image.MAX_IMAGE_PIXELS) is neither an OSError nor a ValueError
IMAGE_ERRORS = (OSError, ValueError, Image.DecompressionBombError)

# PIL transpose applied by ImageOps.exif_transpose for each EXIF orientation value (2-8; 1 means upright).
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ProbedImage:
    """Facts about a readable image.

    Attributes:
        stored_size: (width, height) of the pixels as saved in the file.
        displayed_size: (width, height) after the EXIF orientation, what Ultralytics trains on.
        orientation: EXIF orientation 1-8 (1: upright or no tag).
    """

    stored_size: tuple[int, int]
    displayed_size: tuple[int, int]
    orientation: int


def check_image_signature(path: Path) -> None:
    """Check that a file's first bytes are those of an image format Ultralytics reads, before Pillow opens it.

    Ultralytics replaces ``PIL.Image.open`` with a version that, on any file Pillow cannot identify, pip-installs
    pi-heif and retries, so a text file named ``.jpg`` would end in an install attempt and a "No module named
    'pi_heif'" message. Checking the signature first keeps that path for real HEIC/HEIF files only.

    Raises:
        ValueError: If the content matches no such format (the message shows the first bytes), or the file is
            HEIC/HEIF and pi-heif is not installed.
    """
    if path.suffix.lower() in HEIF_SUFFIXES:
        try:
            import pi_heif  # noqa: F401  (decoder Ultralytics registers for HEIC/HEIF)
        except ImportError:
            raise ValueError("HEIC/HEIF image: reading it needs the pi-heif package (pip install pi-heif)") from None
        return
    Image.init()
    with open(path, "rb") as f:
        prefix = f.read(64)
    formats = {"JPEG2000"} | {name for name in Image.OPEN if name.lower() in IMG_FORMATS}
    if not any(accept is not None and accept(prefix) for name, (_, accept) in Image.OPEN.items() if name in formats):
        kind = "an empty file" if not prefix else f"content starting with {prefix[:12]!r}"
        raise ValueError(
            f"not an image: {kind} matches no image format Ultralytics reads ({', '.join(sorted(formats))})"
        )


def exif_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (1-8) of an open, not yet loaded image; 1 when absent or unreadable."""
    try:
        tags = image.tag_v2 if image.format == "TIFF" else image.getexif()
        value = int(tags.get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF blocks raise assorted errors inside Pillow; Ultralytics treats them as upright
        return 1
    return value if value in ORIENTATION_TRANSPOSE else 1


def _stored_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    """Return the size of the pixels as saved: a TIFF's header size, since Pillow opens TIFFs already rotated."""
    if image.format == "TIFF":
        try:
            return int(image.tag_v2[TIFF_WIDTH_TAG]), int(image.tag_v2[TIFF_LENGTH_TAG])
        except (KeyError, TypeError, ValueError):
            return image.size[::-1] if orientation >= 5 else image.size
    return image.size


def probe_image(path: Path) -> ProbedImage:
    """Open and fully decode an image, so truncated files fail here rather than in the training loop.

    TIFFs are also decoded the way Ultralytics' ``imread`` decodes them: OpenCV cannot read 32-bit float or integer
    samples, and Ultralytics would then drop the image at training time.

    Raises:
        ValueError: If the file is no image (:func:`check_image_signature`), the format is not one Ultralytics trains
            on, the image is smaller than 10 px (its limit) or OpenCV cannot decode it.
        OSError: If the file cannot be decoded (unreadable or truncated).
    """
    check_image_signature(path)
    with Image.open(path) as image:
        if (image.format or "").lower() not in IMG_FORMATS | {"jpeg2000"}:
            raise ValueError(f"format {image.format} is not an Ultralytics image format")
        orientation = exif_orientation(image)
        stored_size = _stored_size(image, orientation)
        displayed_size = tuple(exif_size(image))  # what Ultralytics measures (it decodes WebP/TIFF to know)
        if orientation >= 5 and displayed_size == stored_size and stored_size[0] != stored_size[1]:
            orientation = 1  # the decoder Ultralytics uses ignores the tag for this format: boxes stay as stored
        mode = image.mode
        image.load()  # full decode: Pillow raises OSError on truncated data
    if path.suffix.lower() in TIFF_SUFFIXES:
        from ultralytics.utils.patches import imread

        if imread(str(path)) is None:
            raise ValueError(
                f"OpenCV cannot decode this TIFF (Pillow mode {mode}; 32-bit float/integer samples are not supported), "
                "so Ultralytics would drop it: save it as 8- or 16-bit"
            )
    if min(displayed_size) < MIN_IMAGE_SIDE:
        raise ValueError(f"image size {displayed_size} is below Ultralytics' {MIN_IMAGE_SIDE}-pixel minimum")
    return ProbedImage(stored_size, displayed_size, orientation)


def image_dimensions(path: Path) -> tuple[int, int] | None:
    """Return (width, height) from the image header without decoding, or None for files that are no image."""
    try:
        check_image_signature(path)
        with Image.open(path) as image:
            return image.size
    except IMAGE_ERRORS:
        return None


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pixel_digest(path: Path) -> str | None:
    """Return the SHA-256 of an image's decoded RGB pixels and size, or None if it cannot be decoded."""
    try:
        check_image_signature(path)
        with Image.open(path) as image:
            pixels = image.convert("RGB")
            return hashlib.sha256(f"{pixels.size}".encode() + pixels.tobytes()).hexdigest()
    except IMAGE_ERRORS:  # reported by the image probe when the sample is written
        return None


def stored_to_displayed(xyxy: Box, orientation: int, stored_size: tuple[int, int]) -> Box:
    """Map a box from stored-pixel coordinates to the coordinates of the EXIF-transposed (displayed) image.

    Args:
        xyxy: Box corners in the stored frame.
        orientation: EXIF orientation value; 1 (or unknown) leaves the box unchanged.
        stored_size: (width, height) of the stored pixels.

    Returns:
        Box corners in the frame produced by ``PIL.ImageOps.exif_transpose`` (what Ultralytics trains on).
    """
    width, height = stored_size
    x1, y1, x2, y2 = xyxy
    corner_maps = {  # where a stored point (x, y) lands after each transpose
        Image.Transpose.FLIP_LEFT_RIGHT: lambda x, y: (width - x, y),
        Image.Transpose.ROTATE_180: lambda x, y: (width - x, height - y),
        Image.Transpose.FLIP_TOP_BOTTOM: lambda x, y: (x, height - y),
        Image.Transpose.TRANSPOSE: lambda x, y: (y, x),
        Image.Transpose.ROTATE_270: lambda x, y: (height - y, x),
        Image.Transpose.TRANSVERSE: lambda x, y: (height - y, width - x),
        Image.Transpose.ROTATE_90: lambda x, y: (y, width - x),
    }
    transpose = ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is None:
        return xyxy
    (ax, ay), (bx, by) = corner_maps[transpose](x1, y1), corner_maps[transpose](x2, y2)
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def clip_box(xyxy: Box, size: tuple[int, int]) -> tuple[Box, bool]:
    """Clip a box to the image.

    Args:
        xyxy: Box corners in pixels.
        size: (width, height) of the image.

    Returns:
        The clipped box and whether clipping changed it.
    """
    width, height = size
    x1, y1, x2, y2 = xyxy
    clipped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    return clipped, clipped != (x1, y1, x2, y2)
