"""The image formats the package accepts: one table, and every list and text derived from it. Light on purpose
(no Pillow, no torch): the command line's help and a folder's listing read it without loading the pipeline."""

from __future__ import annotations

from dataclasses import dataclass


# The only Pillow plugins an encoded input may open with: the formats generators and browsers write
# (Pillow's JPEG plugin also opens the multi-picture JPEGs of cameras and phones, as MPO). Everything else
# (EPS, which runs Ghostscript, and dozens of rarely used decoders) is refused by format.
@dataclass(frozen=True)
class ImageFormat:
    """One accepted format: Pillow's plugin name, the file extensions it goes by, and the first bytes of its
    files (how base64 data is told from other text)."""

    name: str
    extensions: tuple[str, ...]
    magic: tuple[bytes, ...]


# The one table of accepted formats: every list of them (the plugins allowed, the extensions a folder is read
# by, the magic bytes, every text that names them) is derived from it.
FORMATS: tuple[ImageFormat, ...] = (
    ImageFormat("PNG", (".png",), (b"\x89PNG",)),
    ImageFormat("JPEG", (".jpg", ".jpeg"), (b"\xff\xd8\xff",)),
    ImageFormat("WEBP", (".webp",), (b"RIFF",)),
    ImageFormat("GIF", (".gif",), (b"GIF87a", b"GIF89a")),
    ImageFormat("BMP", (".bmp",), (b"BM",)),
    ImageFormat("TIFF", (".tif", ".tiff"), (b"II*\x00", b"MM\x00*")),
)
ACCEPTED_FORMATS: tuple[str, ...] = tuple(f.name for f in FORMATS)
FORMATS_TEXT = ", ".join(ACCEPTED_FORMATS[:-1]) + " or " + ACCEPTED_FORMATS[-1]  # "PNG, JPEG, ... or TIFF"
MAGIC_BYTES: tuple[bytes, ...] = tuple(m for f in FORMATS for m in f.magic)
IMAGE_EXTENSIONS = frozenset(e for f in FORMATS for e in f.extensions)
