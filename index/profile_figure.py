"""The metacarpophalangeal pattern profile as clinicians draw it: the 19 bones along the axis
(MC1-5, PP1-5, MP2-5, DP1-5), the z-score on the other, the +-2 band shaded, and the patient's
profile with, where given, disorders' typical profiles beside it."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from matcher.hand_scheme import BONE_NAMES


def profile_png(z: np.ndarray, title: str = "", typical: Mapping[str, np.ndarray] | None = None) -> bytes:
    """A PNG of the profile `z` (19 values, NaN where not measured) and `typical` profiles by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(BONE_NAMES))
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=110)
    axes.axhspan(-2, 2, color="0.9", zorder=0)
    axes.axhline(0, color="0.6", linewidth=0.8)
    for boundary in (4.5, 9.5, 13.5):  # MC | PP | MP | DP
        axes.axvline(boundary, color="0.8", linewidth=0.8)
    for name, values in (typical or {}).items():
        axes.plot(x, values, linestyle="--", marker=".", linewidth=1, label=name if len(name) <= 48 else name[:47] + "…")
    axes.plot(x, z, color="black", marker="o", linewidth=2, label="this hand")
    finite = np.concatenate([np.asarray(z, float), *(np.asarray(v, float) for v in (typical or {}).values())])
    finite = finite[np.isfinite(finite)]
    limit = max(3.0, float(np.abs(finite).max()) + 0.5) if finite.size else 3.0
    axes.set_ylim(-limit, limit)
    axes.set_xticks(x, BONE_NAMES, fontsize=8)
    axes.set_ylabel("z (age and sex)")
    axes.set_title(title or "Pattern profile", fontsize=10)
    axes.legend(fontsize=7, loc="upper left")  # above the band, where profiles rarely run
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
