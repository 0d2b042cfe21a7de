"""Generate a synthetic cohort: images, hand masks, a case manifest and ground truth.

The whole plan (patients, their disorders, visits, seeds) is drawn up front from one
seed, then cases are rendered in parallel, each from its own seed: the output is the
same byte for byte whatever the number of workers. Some patients have follow-up visits
(same skeleton, older), which later evaluation needs to exclude same-patient matches.

Output layout (DESIGN.md section 2 manifest contract):
    OUT/images/<case_id>.png|.dcm   OUT/masks/<case_id>.png
    OUT/manifest.csv                OUT/bones.csv (per-bone lengths)   OUT/cohort.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from matcher.errors import Bone2GeneError
from training.synth.geometry import CaseAnatomy, HandLayout, Individual, Pose, build_hand
from training.synth.spec import DisorderSpec, PatientPhenotype, builtin_specs
from training.synth.writers import FakePatient, write_dicom, write_mask, write_png
from training.synth.xray import RENDERERS, Frame, Radiograph, RenderStyle, choose_frame, expose

GENERATOR_VERSION = "1"
MANIFEST_COLUMNS = [
    "image",
    "case_id",
    "patient_id",
    "sex",
    "age_months",
    "disorder",
    "gene",
    "bone_age_months",
    "source",
    "split",
    "mask",
    "disorder_name",
    "category",
    "pixel_spacing_mm",
    "width",
    "height",
    "seed",
]
MAX_BONE_AGE_YEARS = {"F": 18.0, "M": 19.0}  # end of the Greulich-Pyle standards


class CohortError(Bone2GeneError, ValueError):
    """The cohort cannot be generated as asked (bad option or an existing cohort)."""


@dataclass(frozen=True)
class CohortConfig:
    """What to generate. `specs` defaults to the built-in disorders."""

    n: int
    out: Path
    seed: int = 0
    size: int = 1024
    format: Literal["png", "dicom"] = "png"
    bits: Literal[8, 12, 16] | None = None  # PNG: 8 (default) or 16; DICOM: 8, 12 (default) or 16 bits stored
    control_fraction: float = 0.2
    disorders: tuple[str, ...] | None = None
    specs: tuple[DisorderSpec, ...] = field(default_factory=lambda: tuple(builtin_specs()))
    workers: int = 0  # 0 = one per CPU core
    overwrite: bool = False
    renderer: Literal["classic", "film"] = "classic"  # film: `xray.RENDERERS["film"]`: trabecular grain, site-like processing and framing

    @property
    def bits_written(self) -> int:
        return self.bits or (8 if self.format == "png" else 12)

    def validate(self) -> None:
        if self.n < 1:
            raise CohortError("--n must be at least 1")
        if not 64 <= self.size <= 4096:
            raise CohortError("--size must be between 64 and 4096 pixels")
        if self.format not in ("png", "dicom"):
            raise CohortError("--format must be png or dicom")
        allowed = (8, 16) if self.format == "png" else (8, 12, 16)
        if self.bits is not None and self.bits not in allowed:
            raise CohortError(f"--bits must be {' or '.join(map(str, allowed))} for {self.format}")
        if self.renderer not in RENDERERS:
            raise CohortError(f"--renderer must be one of {', '.join(RENDERERS)}")
        if not 0.0 <= self.control_fraction <= 1.0:
            raise CohortError("--controls must be a fraction between 0 and 1")
        known = {s.id for s in self.specs}
        unknown = sorted(set(self.disorders or ()) - known)
        if unknown:
            raise CohortError(f"unknown disorder(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class PlannedCase:
    """One image to render: who, when, and the seeds that make it reproducible."""

    case_id: str
    patient_id: str
    disorder: str
    sex: str
    age_years: float
    patient_seed: int
    image_seed: int


def plan_cohort(config: CohortConfig) -> list[PlannedCase]:
    """Draw patients, disorders, sexes and visit ages for `config.n` images."""
    specs = {s.id: s for s in config.specs}
    chosen = list(config.disorders) if config.disorders else list(specs)
    affected = [i for i in chosen if specs[i].category != "control"]
    controls = [i for i in chosen if specs[i].category == "control"]
    weights = np.array([specs[i].weight for i in affected], dtype=float)
    root = np.random.SeedSequence(config.seed)
    rng = np.random.default_rng(root.spawn(1)[0])
    cases: list[PlannedCase] = []
    patient = 0
    while len(cases) < config.n:
        if controls and (not affected or rng.random() < config.control_fraction):
            disorder = str(rng.choice(controls))
        else:
            disorder = str(rng.choice(affected, p=weights / weights.sum()))
        spec = specs[disorder]
        sex = "F" if rng.random() < spec.female_fraction else "M"
        low, high = spec.age_years
        age = float(rng.uniform(low, high))
        visits = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
        patient_seed = int(rng.integers(2**31))
        for _ in range(visits):
            if len(cases) >= config.n or age > high:
                break
            cases.append(
                PlannedCase(
                    f"syn-{len(cases):06d}", f"synp-{patient:06d}", disorder, sex, round(age, 3), patient_seed, int(rng.integers(2**31))
                )
            )
            age += float(rng.uniform(0.5, 3.0))
        patient += 1
    return cases


def bone_age_years(sex: str, age_years: float, disorder_offset_months: float, tempo_z: float, cap: float | None) -> float:
    """Chronological age + disorder offset + the child's own tempo, within GP's range.

    Normal BA-CA spread grows from about 3 months in infancy to about 10 months in
    adolescence (judgement; GP-era SDs are of this order). `tempo_z` is the patient's
    fixed position in that spread, so follow-up visits keep their tempo.
    """
    sd_months = float(np.interp(age_years, [0.0, 2.0, 6.0, 12.0], [3.0, 6.0, 9.0, 10.0]))
    ba = age_years + (disorder_offset_months + tempo_z * sd_months) / 12.0
    if cap is not None:
        ba = min(ba, cap)
    return float(np.clip(ba, 0.05, MAX_BONE_AGE_YEARS[sex]))


@dataclass(frozen=True)
class RenderedCase:
    manifest_row: dict[str, object]
    bone_rows: list[dict[str, object]]


@dataclass(frozen=True)
class Simulation:
    """One rendered case before it is written: everything tests and writers need."""

    plan: PlannedCase
    phenotype: PatientPhenotype
    case: CaseAnatomy
    layout: HandLayout
    frame: Frame
    radiograph: Radiograph


def sample_anatomy(plan: PlannedCase, spec: DisorderSpec, rng: np.random.Generator) -> tuple[PatientPhenotype, CaseAnatomy]:
    """The patient (from its own seed) and this visit's anatomy, bone age and pose (the pose from
    `rng`, the image's generator): everything about a case that is decided before it is drawn."""
    patient_rng = np.random.default_rng(plan.patient_seed)
    phenotype = PatientPhenotype.sample(spec, patient_rng)
    individual = Individual.sample(patient_rng)
    tempo_z = float(patient_rng.standard_normal())
    resolved = phenotype.at_age(plan.age_years)
    ba = bone_age_years(plan.sex, plan.age_years, resolved.bone_age_offset_months, tempo_z, spec.bone_age_cap_years)
    return phenotype, CaseAnatomy(plan.sex, plan.age_years, ba, resolved, individual, Pose.sample(rng))


def simulate(plan: PlannedCase, spec: DisorderSpec, size: int, renderer: str = "classic") -> Simulation:
    """Render one planned case in memory (deterministic in its seeds)."""
    rng = np.random.default_rng(plan.image_seed)
    phenotype, case = sample_anatomy(plan, spec, rng)
    style = RENDERERS[renderer]
    case = _posed_by_style(case, style, plan.image_seed)
    layout = build_hand(case)
    frame = choose_frame(layout, size, case.pose.rotation_deg, rng, style)
    coarseness = case.phenotype.feature("trabecular_coarseness")
    radiograph = expose(layout, frame, style.exposure(rng), rng, coarseness, style)
    return Simulation(plan, phenotype, case, layout, frame, radiograph)


def _posed_by_style(case: CaseAnatomy, style: RenderStyle, image_seed: int) -> CaseAnatomy:
    """The style's positioning on top of the drawn pose (pronation, the thumb's mean): from a
    generator of its own, so that every other draw stays what the classic style makes."""
    if not (style.pronation_sd_deg > 0 or style.thumb_abduction_deg):
        return case
    turn = Pose.sample_pronation(np.random.default_rng([image_seed, 2]), style.pronation_sd_deg) if style.pronation_sd_deg else 0.0
    thumb = case.pose.thumb_abduction_deg + style.thumb_abduction_deg
    return replace(case, pose=replace(case.pose, pronation_deg=turn, thumb_abduction_deg=thumb))


def render_case(plan: PlannedCase, config: CohortConfig, specs: dict[str, DisorderSpec]) -> RenderedCase:
    """Render and write one case; returns its manifest row and bone table."""
    spec = specs[plan.disorder]
    sim = simulate(plan, spec, config.size, config.renderer)
    radiograph, layout, frame, phenotype = sim.radiograph, sim.layout, sim.frame, sim.phenotype
    ba = sim.case.bone_age_years
    rng = np.random.default_rng([plan.image_seed, 1])  # file-level choices (photometric, fake PHI)
    age_months = plan.age_years * 12.0
    if config.format == "dicom":
        image_rel = f"images/{plan.case_id}.dcm"
        write_dicom(
            config.out / image_rel,
            radiograph.image,
            sex=plan.sex,
            age_months=age_months,
            pixel_spacing_mm=radiograph.pixel_spacing_mm,
            seed=plan.image_seed,
            monochrome1=bool(rng.random() < 0.3),
            patient=FakePatient.invent(rng, age_months),
            bits_stored=config.bits_written,
        )
    else:
        image_rel = f"images/{plan.case_id}.png"
        write_png(config.out / image_rel, radiograph.image, config.bits_written)
    mask_rel = f"masks/{plan.case_id}.png"
    write_mask(config.out / mask_rel, radiograph.mask)

    h, w = radiograph.image.shape
    row: dict[str, object] = {
        "image": image_rel,
        "case_id": plan.case_id,
        "patient_id": plan.patient_id,
        "sex": plan.sex,
        "age_months": round(age_months, 2),
        "disorder": plan.disorder,
        "gene": phenotype.gene,
        "bone_age_months": round(ba * 12.0, 2),
        "source": "synthetic",
        "split": "",
        "mask": mask_rel,
        "disorder_name": spec.name,
        "category": spec.category,
        "pixel_spacing_mm": round(radiograph.pixel_spacing_mm, 5),
        "width": w,
        "height": h,
        "seed": plan.image_seed,
    }
    bones = []
    for bone in layout.bones:
        x0, y0 = frame.point(bone.start)
        x1, y1 = frame.point(bone.end)
        bones.append(
            {
                "case_id": plan.case_id,
                "bone": bone.name,
                "length_mm": round(bone.length_mm, 3),
                "width_mm": round(bone.width_mm, 3),
                "epiphysis": bone.epiphysis,
                "x0": round(x0, 1),
                "y0": round(y0, 1),
                "x1": round(x1, 1),
                "y1": round(y1, 1),
            }
        )
    return RenderedCase(row, bones)


_WORKER_STATE: dict[str, object] = {}


def _init_worker(config: CohortConfig) -> None:
    _WORKER_STATE["config"] = config
    _WORKER_STATE["specs"] = {s.id: s for s in config.specs}


def _render_in_worker(plan: PlannedCase) -> RenderedCase:
    config = _WORKER_STATE["config"]
    specs = _WORKER_STATE["specs"]
    assert isinstance(config, CohortConfig) and isinstance(specs, dict)
    return render_case(plan, config, specs)


def _prepare_output(config: CohortConfig) -> None:
    manifest = config.out / "manifest.csv"
    if manifest.exists() and not config.overwrite:
        raise CohortError(f"{config.out} already holds a cohort (manifest.csv); choose another --out or pass --overwrite")
    if config.out.exists() and not config.out.is_dir():
        raise CohortError(f"{config.out} exists and is not a directory")
    (config.out / "images").mkdir(parents=True, exist_ok=True)
    (config.out / "masks").mkdir(parents=True, exist_ok=True)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def generate_cohort(config: CohortConfig, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Generate the cohort described by `config`; returns the manifest."""
    config.validate()
    _prepare_output(config)
    plans = plan_cohort(config)
    workers = config.workers or os.cpu_count() or 1
    results: list[RenderedCase] = []
    if workers == 1 or len(plans) < 4:
        _init_worker(config)
        for i, plan in enumerate(plans):
            results.append(_render_in_worker(plan))
            if progress:
                progress(i + 1, len(plans))
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(config,)) as pool:
            for i, result in enumerate(pool.map(_render_in_worker, plans, chunksize=4)):
                results.append(result)
                if progress:
                    progress(i + 1, len(plans))
    manifest = pd.DataFrame([r.manifest_row for r in results], columns=MANIFEST_COLUMNS)
    bones = pd.DataFrame([b for r in results for b in r.bone_rows])
    _atomic_write_text(config.out / "bones.csv", bones.to_csv(index=False))
    description = {
        "generator": "bone2gene synthetic hand radiographs",
        "generator_version": GENERATOR_VERSION,
        "n": config.n,
        "seed": config.seed,
        "size": config.size,
        "format": config.format,
        "bits": config.bits_written,
        "control_fraction": config.control_fraction,
        "disorders": {s.id: s.model_dump(mode="json") for s in config.specs if not config.disorders or s.id in config.disorders},
    }
    _atomic_write_text(config.out / "cohort.json", json.dumps(description, indent=1))
    _atomic_write_text(config.out / "manifest.csv", manifest.to_csv(index=False))  # last: marks completion
    return manifest


def summarise(manifest: pd.DataFrame) -> str:
    """A short text table: cases per disorder, sex split and ages."""
    lines = [f"{len(manifest)} images of {manifest['patient_id'].nunique()} patients"]
    grouped = manifest.groupby("disorder")
    for disorder, group in grouped:
        ages = group["age_months"] / 12
        lines.append(
            f"  {disorder:28s} {len(group):5d}  F {int((group['sex'] == 'F').sum()):4d}  age {ages.min():4.1f}-{ages.max():4.1f} y"
        )
    return "\n".join(lines)
