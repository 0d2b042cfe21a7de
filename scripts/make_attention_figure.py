"""Attention overlays of the bundled model for docs/: real hands and synthetic disorders.

    python scripts/make_attention_figure.py --real ../shared/real_hands [--model DIR] [--out docs/attention_overlays.png]

Top row: bone-age attention (Deeplasia's gradient map) on radiographs of
../shared/real_hands; bottom row: on synthetic cases, titled with their disorder and the
predicted vs true bone age.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from matcher.analysis import AnalysisOptions, Analyzer, attention_overlay
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from matcher.io import read_radiograph
from training.synth.cohort import CohortConfig, generate_cohort

REPO = Path(__file__).resolve().parents[1]

TILE = 360


def tile(image01: np.ndarray, attention: np.ndarray, caption: str) -> np.ndarray:
    picture = attention_overlay(image01, attention)
    h, w = picture.shape[:2]
    scale = TILE / max(h, w)
    picture = cv2.resize(picture, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((TILE + 28, TILE, 3), np.uint8)
    y0, x0 = (TILE - picture.shape[0]) // 2, (TILE - picture.shape[1]) // 2
    canvas[y0 : y0 + picture.shape[0], x0 : x0 + picture.shape[1]] = picture
    cv2.putText(canvas, caption, (6, TILE + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR)
    parser.add_argument("--real", type=Path, required=True, help="a folder of real hand films (e.g. ../shared/real_hands)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "attention_overlays.png")
    args = parser.parse_args()
    model, _ = load_model(args.model)
    analyzer = Analyzer(model, AnalysisOptions(attention=True))
    top = []
    for path in sorted(args.real.glob("*.png"))[:4]:
        radiograph = read_radiograph(path)
        result = analyzer.analyze(radiograph, sex="F")
        top.append(tile(radiograph.normalised(), result.attention, f"real {path.name}: BA {result.bone_age_months / 12:.1f} y (F given)"))
    with tempfile.TemporaryDirectory() as tmp:
        disorders = ("unaffected", "achondroplasia", "brachydactyly_e", "trps1")
        manifest = generate_cohort(CohortConfig(n=40, out=Path(tmp), seed=11, size=768, disorders=disorders, workers=1))
        bottom = []
        for disorder in disorders:
            row = manifest[manifest["disorder"] == disorder].iloc[0]
            radiograph = read_radiograph(Path(tmp) / row["image"])
            result = analyzer.analyze(radiograph, sex=row["sex"], age_months=row["age_months"])
            caption = f"{disorder}: BA {result.bone_age_months / 12:.1f} y (true {row['bone_age_months'] / 12:.1f})"
            bottom.append(tile(radiograph.normalised(), result.attention, caption))
    figure = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
