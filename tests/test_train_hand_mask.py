"""The script that builds the shipped hand-mask weights runs end to end (tiny settings)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from matcher.mask import NetworkHandMasker

REPO = Path(__file__).resolve().parents[1]


def test_training_script_writes_loadable_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The script itself, run as __main__ in this process (its imports are the test suite's already)."""
    out = tmp_path / "mask.safetensors"
    args = ["--n", "16", "--epochs", "2", "--batch", "4", "--out", str(out), "--real", str(tmp_path / "no-real-hands")]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train_hand_mask.py", *args])
    runpy.run_path(str(REPO / "scripts" / "train_hand_mask.py"), run_name="__main__")
    result = capsys.readouterr()
    records = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["loss"] < records[0]["loss"], records  # it learns (two epochs are too few for a useful IoU)
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == "bone2gene hand mask v1" and json.loads(meta["training"])["epochs_done"] == 2
    masker = NetworkHandMasker(out)
    import numpy as np

    result_mask = masker(np.random.default_rng(0).integers(0, 255, (200, 160), dtype=np.uint8))
    assert result_mask.mask.shape == (200, 160) and result_mask.method == "network"


def test_validation_iou_is_the_intersection_over_the_union() -> None:
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("train_hand_mask", REPO / "scripts" / "train_hand_mask.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = np.zeros((10, 10), bool)
    a[:, :5] = True
    b = np.zeros((10, 10), bool)
    b[:, 3:8] = True
    assert module.iou(a, a) == 1.0 and module.iou(a, ~a) == 0.0
    assert module.iou(a, b) == 20 / 80  # 2 shared columns of 8 covered
