"""The error family: every refusal a user can meet derives from `Bone2GeneError`.

Every message says what is wrong and what to do, in words a clinician understands, and
never quotes header contents (a DICOM's values may be protected health information).
The command line (`api.cli_helpers`) and the service (`api.problems`) each map the whole
family in one place: `http_status` and `title` say how the service answers it. The
radiograph errors below are one branch; each package defines its own branch beside the
code that raises it (`index.store.GalleryError`, `matcher.checkpoint.ModelFormatError`, ...).
"""

from __future__ import annotations


class Bone2GeneError(Exception):
    """Base class: a request we refuse; the message says what was wrong and what to do."""

    http_status = 422
    title = "Request refused"


class RadiographError(Bone2GeneError, ValueError):
    """Base class: the input cannot be used as a hand radiograph."""

    code = "invalid_radiograph"
    title = "Image not readable"


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
