"""The numbers of an evaluation, each from plain arrays.

Top-k is macro-averaged over disorders (each disorder weighs the same, as GestaltMatcher
reports); pytorch-metric-learning's `AccuracyCalculator` gives precision@1 and MAP@R per
case as an independent cross-check of the same galleries. Probabilities are judged by how
well they separate right from wrong top-1 answers (AUROC) and by a reliability table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.metrics import roc_auc_score

from matcher.age_bands import AGE_BANDS, in_band
from matcher.calibration import reliability_bins
from matcher.rank import macro_topk

KS = (1, 5, 10, 30)
CMC_DEPTH = 30


def topk(ranks: np.ndarray, codes: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    return {f"top{k}": v for k, v in macro_topk(ranks, codes, ks).items()}


def cmc(ranks: np.ndarray, codes: np.ndarray, depth: int = CMC_DEPTH) -> list[float]:
    """Macro top-k for k = 1..depth (the cumulative match characteristic)."""
    values = macro_topk(ranks, codes, tuple(range(1, depth + 1)))
    return [values[k] for k in range(1, depth + 1)]


def metric_learning_accuracy(
    query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray, reference_labels: np.ndarray
) -> dict[str, float]:
    """precision@1 and MAP@R (per case, not per disorder) from pytorch-metric-learning."""
    names = {name: i for i, name in enumerate(sorted(set(map(str, reference_labels)) | set(map(str, query_labels))))}
    as_codes = lambda labels: torch.tensor([names[str(x)] for x in labels])  # noqa: E731
    calculator = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count", device=torch.device("cpu")
    )
    result = calculator.get_accuracy(
        torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)),
        as_codes(query_labels),
        torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)),
        as_codes(reference_labels),
        ref_includes_query=False,
    )
    return {"precision_at_1": float(result["precision_at_1"]), "map_at_r": float(result["mean_average_precision_at_r"])}


def topk_by_age_band(ranks: np.ndarray, codes: np.ndarray, ages: np.ndarray, k: int = 5) -> dict[str, tuple[float, int]]:
    """Per age band: macro top-k over the disorders with queries in the band, and the query count."""
    result = {}
    for band in AGE_BANDS:
        inside = in_band(ages, band)
        if inside.any():
            result[band.name] = (macro_topk(ranks[inside], codes[inside], (k,))[k], int(inside.sum()))
    return result


@dataclass
class ProbabilityQuality:
    auroc: float  # P(top-1 right) separates right from wrong top-1 answers
    reliability: list[dict]
    expected_calibration_error: float
    answers: int

    def to_json(self) -> dict:
        return {
            "auroc": self.auroc,
            "reliability": self.reliability,
            "expected_calibration_error": self.expected_calibration_error,
            "answers": self.answers,
        }


def probability_quality(probability: np.ndarray, correct: np.ndarray) -> ProbabilityQuality:
    """AUROC and a reliability table of the top disorder's probability against whether it was right."""
    probability, correct = np.asarray(probability, float), np.asarray(correct, bool)
    auroc = float(roc_auc_score(correct, probability)) if 0 < correct.sum() < len(correct) else float("nan")
    bins, ece = reliability_bins(probability, correct)
    rows = [{"bin": b, "answers": n, "mean_probability": mp, "right": ob} for b, n, mp, ob in bins]
    return ProbabilityQuality(auroc, rows, float(ece), len(correct))


def bone_age_by_disorder(table: pd.DataFrame, predicted_months: np.ndarray) -> pd.DataFrame:
    """Mean absolute deviation (months) of predicted from labelled bone age, per disorder and overall."""
    frame = pd.DataFrame(
        {
            "disorder": table["disorder"].fillna("(no diagnosis)").astype(str),
            "truth": pd.to_numeric(table["bone_age_months"], errors="coerce"),
            "predicted": predicted_months,
        }
    )
    frame = frame[frame["truth"].notna()]
    frame["error"] = (frame["predicted"] - frame["truth"]).abs()
    per = frame.groupby("disorder")["error"].agg(["count", "mean"]).rename(columns={"count": "films", "mean": "mad_months"}).reset_index()
    overall = pd.DataFrame([{"disorder": "all", "films": len(frame), "mad_months": frame["error"].mean() if len(frame) else float("nan")}])
    return pd.concat([per, overall], ignore_index=True)


def sex_quality(sex: np.ndarray, male_probability: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5 and AUROC of P(male) against the recorded sex."""
    male = np.asarray(sex) == "M"
    accuracy = float(np.mean((male_probability >= 0.5) == male)) if len(male) else float("nan")
    auroc = float(roc_auc_score(male, male_probability)) if 0 < male.sum() < len(male) else float("nan")
    return {"accuracy": accuracy, "auroc": auroc, "films": len(male)}
