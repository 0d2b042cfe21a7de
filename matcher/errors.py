"""One family of typed errors for everything a caller can get wrong about an image.

Every message says what is wrong and what to do, in words a clinician understands, and
never quotes header contents (a DICOM's values may be protected health information).
The HTTP layer maps the family to 4xx responses; nothing in it is a server fault.
"""

from __future__ import annotations


class RadiographError(ValueError):
    """Base class: the input cannot be used as a hand radiograph."""

    code = "invalid_radiograph"


class EmptyInputError(RadiographError):
    code = "empty_input"


class UnsupportedFormatError(RadiographError):
    code = "unsupported_format"


class CorruptImageError(RadiographError):
    code = "corrupt_image"


class ImageTooLargeError(RadiographError):
    code = "image_too_large"


class DicomWithoutPixelsError(RadiographError):
    code = "dicom_without_pixels"


class MultiFrameError(RadiographError):
    code = "multi_frame"


class UnsupportedCompressionError(RadiographError):
    code = "unsupported_compression"


class MaskError(RadiographError):
    """No hand could be found to crop to."""

    code = "no_hand_found"
