"""The script that builds the shipped hand-mask weights runs end to end (tiny settings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from safetensors import safe_open

from matcher.mask import NetworkHandMasker

REPO = Path(__file__).resolve().parents[1]


def test_training_script_writes_loadable_weights(tmp_path: Path) -> None:
    out = tmp_path / "mask.safetensors"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_hand_mask.py"), "--n", "12", "--epochs", "1", "--batch", "4",
         "--out", str(out), "--real", str(tmp_path / "no-real-hands")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert record["epoch"] == 1 and 0.0 <= record["val_iou"] <= 1.0
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "bone2gene hand mask v1" and json.loads(meta["training"])["epochs_done"] == 1
    masker = NetworkHandMasker(out)
    import numpy as np

    result_mask = masker(np.random.default_rng(0).integers(0, 255, (200, 160), dtype=np.uint8))
    assert result_mask.mask.shape == (200, 160) and result_mask.method == "network"
