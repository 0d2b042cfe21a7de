"""Fit the reader's linear correction on RSNA development films; measure it on the validation films and the
atlas's held-out films (neither used to fit). Reads every film once with the bundled model's reader.

    python experiments/2026-12-07-reader-age-correction/measure.py --shared ../shared --out build/agecal
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model
from training.age_correction import fit_age_correction, read_bone_ages
from training.age_error import errors_by_age_band
from training.landmark_data import dha_split, read_dha_table
from training.real_data import is_dev_id, is_validation_id, read_labels, reported_ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(BUNDLED_MODEL_DIR)
    labels, reported = read_labels(args.shared / "rsna_100px"), reported_ids(args.shared / "real_hands_labelled")
    sets = {}
    for name, chosen in (("dev", is_dev_id(labels["id"].to_numpy())), ("val", is_validation_id(labels["id"].to_numpy()))):
        films = labels[chosen & ~labels["id"].isin(list(reported))]
        paths = [args.shared / "rsna_100px" / "images" / f"{i}.png" for i in films["id"]]
        sets[name] = pd.DataFrame(
            {"read": read_bone_ages(model, paths, ["M" if m else "F" for m in films["male"]]), "truth": films["boneage"].to_numpy(float)}
        )
    atlas = read_dha_table(args.shared / "dha").set_index("id").loc[dha_split(args.shared / "dha")[1]]
    paths = [args.shared / "dha" / "images" / f"{i}.jpg" for i in atlas.index]
    truth = atlas[["bone_age_reader1_years", "bone_age_reader2_years"]].mean(axis=1).to_numpy() * 12
    sets["atlas"] = pd.DataFrame({"read": read_bone_ages(model, paths, list(atlas["sex"])), "truth": truth})
    for name, table in sets.items():
        table.to_csv(args.out / f"{name}.csv", index=False)
    correction = fit_age_correction(sets["dev"]["read"], sets["dev"]["truth"])
    print(correction)
    for name, table in sets.items():
        table = table.dropna()
        for label, read in (("as read", table["read"].to_numpy()), ("corrected", correction.corrected(table["read"].to_numpy()))):
            bands = [(b.low, b.films, b.mad, round(b.bias, 1)) for b in errors_by_age_band(read, table["truth"].to_numpy())]
            print(name, label, f"MAD {np.mean(np.abs(read - table['truth'])):.2f}", bands)


if __name__ == "__main__":
    main()
