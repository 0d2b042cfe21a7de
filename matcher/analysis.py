"""One radiograph in, everything the matcher knows about it out.

read -> quality gate (with hand mask) -> Deeplasia preprocessing -> one forward pass
(embedding, bone age, sex logit; with an age and sex reader attached to the model,
`Bone2GeneModel.attach_reader`, bone age and sex come from the reader's forward pass on
its own input and the embedding from the encoder's), optionally with Deeplasia's test-time augmentation
(rotations of -10, -5, 0, 5, 10 degrees, with and without mirroring, averaged) and an
attention map (absolute gradient of the predicted bone age with respect to the input,
smoothed with a Gaussian kernel 5% of the image size, divided by its 99th percentile and
clipped to 1, drawn back onto the original radiograph through the crop transform).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from matcher.bone_age_reference import BoneAgeReference, bundled_reference, z_score
from matcher.errors import RadiographError
from matcher.hand_measure import HandMeasurement, HandMeasurer, bundled_measurer
from matcher.hand_shape import outline_polygon
from matcher.inputs import InputTransform, model_input
from matcher.io import Radiograph, RadiographMetadata, Source, read_radiograph
from matcher.mask import Method, segment_hand
from matcher.model import Bone2GeneModel, ModelOutput
from matcher.quality import GateVerdict, assess_quality

TTA_ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)
SEX_DISAGREEMENT = 0.8  # warn when the model is this sure of the other sex


@dataclass(frozen=True)
class AnalysisOptions:
    tta: bool = False
    attention: bool = False
    mask_method: Method = "auto"
    reference: BoneAgeReference | None = field(default_factory=bundled_reference)  # SD table for the z-score; None: months only
    # landmarks, bone lengths and their pattern-profile z-scores; None: not measured (no landmark model installed)
    hand: HandMeasurer | None = field(default_factory=bundled_measurer)


@dataclass
class Analysis:
    """The result for one image; `to_json` is what the CLI and the API return."""

    accepted: bool
    reasons: list[str]
    gate: GateVerdict | None
    metadata: RadiographMetadata | None
    sex: str | None = None
    sex_source: str | None = None
    age_months: float | None = None
    bone_age_months: float | None = None
    bone_age_deviation_months: float | None = None
    bone_age_z: float | None = None
    bone_age_z_note: str | None = None
    male_probability: float | None = None
    sex_head_trained: bool = False
    sex_warning: str | None = None
    embedding: np.ndarray | None = None
    crop: InputTransform | None = None
    # the network's input (1, S, S), kept so that an attention map can be drawn later without
    # reading, masking and preprocessing the image again (`Analyzer.attention_for`)
    model_input: np.ndarray | None = None
    # the age and sex reader's input and transform, when the model has a reader (the
    # bone-age attention is drawn from them); None: bone age comes from `model_input`
    age_input: np.ndarray | None = None
    age_crop: InputTransform | None = None
    attention: np.ndarray | None = None
    hand: HandMeasurement | None = None  # landmarks and bones, where a landmark model is installed
    outline: np.ndarray | None = None  # (N, 2) the hand mask's outline in image pixels, for pictures of the result
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self, include_embedding: bool = False) -> dict:
        data = {
            "accepted": self.accepted,
            "reasons": self.reasons,
            "sex": self.sex,
            "sex_source": self.sex_source,
            "age_months": self.age_months,
            "bone_age_months": None if self.bone_age_months is None else round(self.bone_age_months, 2),
            "bone_age_deviation_months": None if self.bone_age_deviation_months is None else round(self.bone_age_deviation_months, 2),
            "bone_age_z": None if self.bone_age_z is None else round(self.bone_age_z, 2),
            "bone_age_z_note": self.bone_age_z_note,
            "male_probability": None if self.male_probability is None else round(self.male_probability, 4),
            "sex_head_trained": self.sex_head_trained,
            "sex_warning": self.sex_warning,
            "quality": None
            if self.gate is None
            else {"codes": self.gate.codes, "measurements": self.gate.measurements, "warnings": self.gate.warnings},
            **(self.hand.to_json() if self.hand is not None else {"landmarks": None, "bones": None, "indices": None}),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
        if include_embedding and self.embedding is not None:
            data["embedding"] = [round(float(v), 6) for v in self.embedding]
        return data


def _rotate(batch: np.ndarray, angle: float, mirror: bool) -> np.ndarray:
    """Rotate/mirror a (1, S, S) z-scored input, filling with its background value."""
    image = batch[0]
    if mirror:
        image = image[:, ::-1]
    if angle:
        size = image.shape[0]
        matrix = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
        image = cv2.warpAffine(
            np.ascontiguousarray(image),
            matrix,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=float(image.min()),
        )
    return np.ascontiguousarray(image)[None]


class Analyzer:
    """Holds a loaded model; `analyze` is safe to call repeatedly (not concurrently)."""

    def __init__(
        self, model: Bone2GeneModel, options: AnalysisOptions | None = None, device: str | torch.device = "cpu", channels_last: bool = True
    ) -> None:
        """`channels_last` stores the weights NHWC (converting `model` in place): the faster
        layout for a single image in benchmarks/model.md, within 1e-4 of the default one."""
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.options = options or AnalysisOptions()

    def analyze(self, source: Source | Radiograph, sex: str | None = None, age_months: float | None = None) -> Analysis:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        try:
            radiograph = source if isinstance(source, Radiograph) else read_radiograph(source)
        except RadiographError as exc:
            return Analysis(False, [str(exc)], None, None, timings_ms={"read": (time.perf_counter() - start) * 1e3})
        timings["read"] = (time.perf_counter() - start) * 1e3

        t = time.perf_counter()
        hand = segment_hand(radiograph.pixels, self.options.mask_method)
        timings["mask"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        verdict = assess_quality(radiograph, hand)
        timings["gate"] = (time.perf_counter() - t) * 1e3
        meta = radiograph.metadata
        given_sex = sex.upper() if sex else None
        if given_sex not in (None, "M", "F"):
            raise ValueError(f"sex must be M or F, not {sex!r}")
        result = Analysis(verdict.accepted, list(verdict.reasons), verdict, meta, timings_ms=timings)
        result.outline = outline_polygon(hand.mask)
        result.age_months = age_months if age_months is not None else meta.age_months
        result.sex, result.sex_source = (given_sex, "given") if given_sex else (meta.sex, "dicom" if meta.sex else None)
        result.sex_head_trained = self.model.age_sex_model.config.sex_head_trained
        if not verdict.accepted:
            return result

        t = time.perf_counter()
        prepared = model_input(radiograph.pixels, hand.mask, self.model.config)
        result.crop, result.model_input = prepared.transform, prepared.tensor
        if self.model.age_sex_reader is not None:
            age_prepared = model_input(radiograph.pixels, hand.mask, self.model.age_sex_reader.config)
            result.age_crop, result.age_input = age_prepared.transform, age_prepared.tensor
        timings["preprocess"] = (time.perf_counter() - t) * 1e3
        if result.sex is None and not result.sex_head_trained:
            result.accepted = False
            result.reasons.append("the patient's sex is needed for bone age and was not given (and the image header has none)")
            return result

        t = time.perf_counter()
        self._run_model(prepared.tensor, result, result.age_input)
        timings["model"] = (time.perf_counter() - t) * 1e3
        if result.age_months is not None:
            result.bone_age_deviation_months = result.bone_age_months - result.age_months
        result.bone_age_z, result.bone_age_z_note = z_score(
            self.options.reference, result.sex, result.age_months, result.bone_age_deviation_months
        )
        if result.sex_head_trained and result.sex_source != "predicted":
            other = result.male_probability if result.sex == "F" else 1 - result.male_probability
            if other >= SEX_DISAGREEMENT:
                result.sex_warning = (
                    f"the image looks {'male' if result.sex == 'F' else 'female'} to the model ({other:.0%}); "
                    "check that the sex and the image belong to the same patient"
                )
        if self.options.hand is not None:
            t = time.perf_counter()
            result.hand = self.options.hand.measure(radiograph.normalised(), result.age_months, result.sex)
            timings["landmarks"] = (time.perf_counter() - t) * 1e3
        if self.options.attention:
            t = time.perf_counter()
            result.attention = self.attention_for(result)
            timings["attention"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - start) * 1e3
        return result

    def _run_model(self, tensor: np.ndarray, result: Analysis, age_tensor: np.ndarray | None = None) -> None:
        """Embedding, bone age and sex probability of one prepared input (averaged over the TTA views);
        without a given sex, the model's own sex prediction (`sex_source` "predicted") is the input.
        With a reader (`age_tensor` its input), bone age and sex are the reader's."""
        with torch.inference_mode():
            if age_tensor is None:  # one pass gives everything
                embeddings = self._read_age_and_sex(self.model, tensor, result).embedding
            else:
                assert self.model.age_sex_reader is not None
                self._read_age_and_sex(self.model.age_sex_reader, age_tensor, result)
                embeddings = self.model.embedding(self.model.backbone(self._views(tensor, mirror_pair=self.model.config.mirror_average)))
            embedding = embeddings.mean(dim=0)
            result.embedding = (embedding / embedding.norm()).cpu().numpy()

    def _views(self, tensor: np.ndarray, mirror_pair: bool = False) -> torch.Tensor:
        """The input, its ten test-time-augmented views, or (`mirror_pair`, for a model configured with
        `mirror_average`) the input and its mirror image; every output is the mean over the views."""
        if self.options.tta:
            variants = [(a, m) for m in (False, True) for a in TTA_ANGLES]
        else:
            variants = [(0.0, False), (0.0, True)] if mirror_pair else [(0.0, False)]
        return torch.from_numpy(np.stack([_rotate(tensor, a, m) for a, m in variants])).to(self.device)

    def _read_age_and_sex(self, model: Bone2GeneModel, tensor: np.ndarray, result: Analysis) -> ModelOutput:
        """`model`'s heads on `tensor`'s views; sets the sex (when not given), bone age and male probability."""
        x = self._views(tensor, mirror_pair=model.config.mirror_average)
        n = len(x)
        features = model.backbone(x)
        own_input = result.sex is None and model.predicts_own_sex_input  # Deeplasia's explicit sex MLP feeds its own logit
        male_guess = 0.5 if result.sex is None else float(result.sex == "M")
        out = model.heads(features, None if own_input else torch.full((n, 1), male_guess, device=self.device))
        if result.sex is None:
            result.sex, result.sex_source = ("M" if float(out.sex_logit.mean()) > 0 else "F"), "predicted"
            if not own_input:  # a head that takes the sex as input: run again with the decided one
                out = model.heads(features, torch.full((n, 1), float(result.sex == "M"), device=self.device))
        raw, result.male_probability = out.bone_age_raw.cpu().numpy(), float(torch.sigmoid(out.sex_logit).mean())
        result.bone_age_months = float(np.mean(model.config.calibration.months(raw)))
        return out

    def attention_for(self, result: Analysis) -> np.ndarray:
        """The attention map of an accepted analysis made without one (`AnalysisOptions.attention` off)."""
        if result.model_input is None or result.crop is None or result.sex is None:
            raise ValueError("this analysis was not accepted; it has no attention map")
        if result.age_input is not None and result.age_crop is not None:
            return self.attention_map(result.age_input, float(result.sex == "M"), result.age_crop)
        return self.attention_map(result.model_input, float(result.sex == "M"), result.crop)

    def attention_map(self, tensor: np.ndarray, male: float, transform: InputTransform) -> np.ndarray:
        """Deeplasia's bone-age attention, on the original image grid, in [0, 1]: of the model that
        reads the bone age (the reader when attached; `tensor` must then be the reader's input)."""
        x = torch.from_numpy(tensor[None]).to(self.device).requires_grad_(True)
        with torch.enable_grad():
            out = self.model.age_sex_model(x, torch.tensor([[male]], device=self.device))
            out.bone_age_raw.sum().backward()
        assert x.grad is not None
        return self._smooth_and_map(np.abs(x.grad[0, 0].cpu().numpy()), transform)

    def similarity_map(self, tensor: np.ndarray, male: float, transform: InputTransform, other: np.ndarray) -> np.ndarray:
        """Where the image drives its cosine similarity to another case's embedding."""
        x = torch.from_numpy(tensor[None]).to(self.device).requires_grad_(True)
        with torch.enable_grad():
            out = self.model(x, torch.tensor([[male]], device=self.device))
            (out.embedding[0] @ torch.from_numpy(other.astype(np.float32)).to(self.device)).backward()
        assert x.grad is not None
        return self._smooth_and_map(np.abs(x.grad[0, 0].cpu().numpy()), transform)

    @staticmethod
    def _smooth_and_map(gradient: np.ndarray, transform: InputTransform) -> np.ndarray:
        kernel = round(0.05 * gradient.shape[0]) | 1
        smooth = cv2.GaussianBlur(gradient.astype(np.float32), (kernel, kernel), 0)
        scale = float(np.percentile(smooth, 99))
        normalised = np.clip(smooth / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(smooth)
        return transform.map_to_original(normalised)


def attention_overlay(image01: np.ndarray, attention: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An 8-bit BGR picture: the radiograph with the attention map in colour on top."""
    grey = cv2.cvtColor((np.clip(image01, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    heat = cv2.applyColorMap((np.clip(attention, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * np.clip(attention, 0, 1))[..., None]
    return (grey * (1 - weight) + heat * weight).astype(np.uint8)
