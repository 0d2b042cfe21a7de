"""Disorders as declarative specs: YAML files that set named phenotype parameters.

A spec says which named parameters a disorder changes and by how much (mean, SD,
penetrance, change with age). The names are a fixed registry (`PARAMETERS`, bone
`GROUPS`) so that a typo in a curator's YAML is an error that lists what exists, not a
silently healthy hand. Adding a disorder is a YAML file, no code:

    - id: my_syndrome
      name: My syndrome, GENE1-related
      genes: [GENE1]
      length: {MC4: {mean: 0.85, sd: 0.04}}
      features:
        clinodactyly_deg: {mean: 10, sd: 4, probability: 0.6}
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from index.builtin_catalogue import CatalogueEntry, builtin_entries
from matcher.errors import Bone2GeneError
from training.synth.anatomy import BONES_BY_NAME, Row, TubularBone


class SpecError(Bone2GeneError, ValueError):
    """A disorder spec file is unreadable or names something that does not exist."""


class Kind(StrEnum):
    FACTOR = "factor"  # multiplies; 1 is unaffected
    OFFSET = "offset"  # adds; 0 is unaffected


@dataclass(frozen=True)
class Parameter:
    kind: Kind
    doc: str

    @property
    def neutral(self) -> float:
        return 1.0 if self.kind is Kind.FACTOR else 0.0


PARAMETERS: dict[str, Parameter] = {
    "size": Parameter(Kind.FACTOR, "overall hand size (stature-related)"),
    "metaphyseal_flare": Parameter(Kind.FACTOR, "width of the metaphyses relative to the shaft"),
    "metaphyseal_cupping": Parameter(Kind.OFFSET, "0..1 concave, cupped metaphyseal ends (rickets)"),
    "metaphyseal_fraying": Parameter(Kind.OFFSET, "0..1 irregular, frayed metaphyseal margins"),
    "physis_widening": Parameter(Kind.FACTOR, "width of the radiolucent growth plate"),
    "lucent_tongues": Parameter(Kind.OFFSET, "0..1 radiolucent tongues from physis into metaphysis (HPP)"),
    "epiphysis_size": Parameter(Kind.FACTOR, "size of the ossified epiphyses"),
    "epiphysis_irregularity": Parameter(Kind.OFFSET, "0..1 fragmented, irregular epiphyses"),
    "epiphysis_density": Parameter(Kind.FACTOR, "mineral density of epiphyses (ivory > 1, poorly ossified < 1)"),
    "epiphysis_delay_years": Parameter(Kind.OFFSET, "epiphyseal ossification later than bone age says (years)"),
    "early_fusion_years": Parameter(Kind.OFFSET, "physes close this many years early"),
    "cone_epiphysis": Parameter(Kind.OFFSET, "0..1 depth of cone-shaped epiphyses set into the metaphysis"),
    "pseudoepiphysis": Parameter(Kind.OFFSET, "0..1 accessory epiphysis at the non-growing end"),
    "radial_tilt_deg": Parameter(Kind.OFFSET, "extra ulnar tilt of the distal radial articular surface"),
    "ulnar_variance_mm": Parameter(Kind.OFFSET, "ulnar head level relative to the radius (+ = longer ulna)"),
    "lunate_subsidence_mm": Parameter(Kind.OFFSET, "proximal displacement of the lunate (Madelung V)"),
    "radius_bowing": Parameter(Kind.OFFSET, "0..1 bowing of the radial shaft"),
    "forearm_v_shape_deg": Parameter(Kind.OFFSET, "radius and ulna articular surfaces slope towards each other"),
    "carpal_angle_deg": Parameter(Kind.OFFSET, "change of the carpal (Kosowicz) angle"),
    "carpal_size": Parameter(Kind.FACTOR, "size of the ossified carpals"),
    "carpal_irregularity": Parameter(Kind.OFFSET, "0..1 irregular carpal outlines"),
    "carpal_delay_years": Parameter(Kind.OFFSET, "carpal ossification later than bone age says (years)"),
    "capitate_hamate_fusion": Parameter(Kind.OFFSET, "1 = capitate and hamate fused"),
    "extra_carpal": Parameter(Kind.OFFSET, "1 = a supernumerary carpal"),
    "polydactyly_postaxial": Parameter(Kind.OFFSET, "1 = an extra digit on the ulnar side"),
    "synmetacarpal": Parameter(Kind.OFFSET, "1 = the extra digit shares a fused MC5-MC6"),
    "clinodactyly_deg": Parameter(Kind.OFFSET, "radial bend of the 5th finger at the middle phalanx"),
    "finger_deviation_deg": Parameter(Kind.OFFSET, "ulnar (+) or radial (-) deviation of the fingers"),
    "trident": Parameter(Kind.OFFSET, "0..1 digits 3 and 4 diverge and digits 2-4 even out (trident hand)"),
    "cortical_thickness": Parameter(Kind.FACTOR, "cortical thickness of tubular bones (osteopenia < 1)"),
    "bone_density": Parameter(Kind.FACTOR, "overall mineral density"),
    "trabecular_coarseness": Parameter(Kind.FACTOR, "scale of the trabecular pattern"),
    "dp_tuft_width": Parameter(Kind.FACTOR, "width of the distal phalanx tips (ballooned > 1, pointed < 1)"),
    "mc_base_pointing": Parameter(Kind.OFFSET, "0..1 metacarpal bases 2-5 taper to a point (dysostosis multiplex)"),
    "bullet_phalanges": Parameter(Kind.OFFSET, "0..1 phalanges taper at their ends (bullet shape)"),
    "soft_tissue_calcifications": Parameter(Kind.OFFSET, "number of subcutaneous ossifications"),
}


class ThumbForm(StrEnum):
    """The thumb a patient is drawn with (Holt-Oram and other radial-ray disorders)."""

    NORMAL = "normal"
    HYPOPLASTIC = "hypoplastic"
    ABSENT = "absent"
    TRIPHALANGEAL = "triphalangeal"
    DUPLICATED = "duplicated"


THUMB_FORMS = tuple(form.value for form in ThumbForm)


def _bone_groups() -> dict[str, tuple[str, ...]]:
    hand = [b for b in BONES_BY_NAME.values() if b.row is not Row.FOREARM]
    groups: dict[str, tuple[str, ...]] = {"all": tuple(BONES_BY_NAME)}
    for row in (Row.MC, Row.PP, Row.MP, Row.DP):
        groups[row.value] = tuple(b.name for b in hand if b.row is row)
    groups["phalanges"] = tuple(b.name for b in hand if b.row is not Row.MC)
    groups["hand"] = tuple(b.name for b in hand)
    groups["forearm"] = ("radius", "ulna")
    for digit in range(1, 6):
        groups[f"digit{digit}"] = tuple(b.name for b in hand if b.digit == digit)
    for name in BONES_BY_NAME:
        groups[name] = (name,)
    return groups


GROUPS: dict[str, tuple[str, ...]] = _bone_groups()


def _scalar_to_effect(value: object) -> object:
    """Let a spec write `size: 0.9` as shorthand for `size: {mean: 0.9}`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"mean": float(value)}
    return value


class Effect(BaseModel):
    """How one parameter varies among patients with the disorder.

    `mean` is the typical value; `by_age` replaces it with a curve over chronological age
    ([[years, value], ...], linear in between) for signs that come or go with age;
    `sd` is the between-patient spread (a patient keeps their draw across visits);
    `probability` is the penetrance (otherwise the unaffected value); `bones` limits a
    feature to some bones or groups (default: where the feature applies anatomically).
    """

    model_config = ConfigDict(extra="forbid")

    mean: float | None = None
    sd: float = Field(0.0, ge=0.0)
    probability: float = Field(1.0, ge=0.0, le=1.0)
    by_age: list[tuple[float, float]] | None = None
    bones: list[str] | None = None

    @model_validator(mode="after")
    def _has_a_value(self) -> Effect:
        if self.mean is None and not self.by_age:
            raise ValueError("an effect needs `mean` or `by_age`")
        if self.by_age:
            ages = [a for a, _ in self.by_age]
            if ages != sorted(ages):
                raise ValueError("`by_age` points must be in increasing age order")
        return self

    @field_validator("bones")
    @classmethod
    def _known_bones(cls, bones: list[str] | None) -> list[str] | None:
        for name in bones or []:
            if name not in GROUPS:
                raise ValueError(f"unknown bone or group {name!r}; known: {', '.join(GROUPS)}")
        return bones

    def mean_at(self, age_years: float) -> float:
        if self.by_age:
            ages, values = zip(*self.by_age, strict=True)
            return float(np.interp(age_years, ages, values))
        assert self.mean is not None
        return self.mean


EffectField = Annotated[Effect, BeforeValidator(_scalar_to_effect)]


class DisorderSpec(CatalogueEntry):
    """One disorder: identity (the clinical catalogue's fields, DESIGN.md section 2) and phenotype.

    A curator's spec file writes both; the built-in specs take their identity from the clinical
    catalogue (`index.builtin_catalogue`) and only their effects from `specs/phenotypes.yaml`."""

    gene_weights: list[float] | None = None
    female_fraction: float = Field(0.5, ge=0.0, le=1.0)
    age_years: tuple[float, float] = (0.25, 17.0)
    weight: float = Field(1.0, gt=0.0)
    bone_age_offset_months: EffectField = Effect(mean=0.0)
    bone_age_cap_years: float | None = None
    length: dict[str, EffectField] = Field(default_factory=dict)
    width: dict[str, EffectField] = Field(default_factory=dict)
    features: dict[str, EffectField] = Field(default_factory=dict)
    thumb: dict[str, float] = Field(default_factory=dict)

    @field_validator("length", "width")
    @classmethod
    def _known_groups(cls, effects: dict[str, Effect]) -> dict[str, Effect]:
        for key in effects:
            if key not in GROUPS:
                raise ValueError(f"unknown bone or group {key!r}; known: {', '.join(GROUPS)}")
        return effects

    @field_validator("features")
    @classmethod
    def _known_parameters(cls, effects: dict[str, Effect]) -> dict[str, Effect]:
        for key in effects:
            if key not in PARAMETERS:
                raise ValueError(f"unknown phenotype parameter {key!r}; known: {', '.join(PARAMETERS)}")
        return effects

    @field_validator("thumb")
    @classmethod
    def _thumb_forms(cls, forms: dict[str, float]) -> dict[str, float]:
        for key, p in forms.items():
            if key not in THUMB_FORMS:
                raise ValueError(f"unknown thumb form {key!r}; known: {', '.join(THUMB_FORMS)}")
            if p < 0:
                raise ValueError(f"thumb form {key!r} has a negative probability")
        if sum(forms.values()) > 1.0 + 1e-9:
            raise ValueError("thumb form probabilities add up to more than 1")
        return forms

    @model_validator(mode="after")
    def _consistent(self) -> DisorderSpec:
        if self.gene_weights is not None and len(self.gene_weights) != len(self.genes):
            raise ValueError("`gene_weights` needs one weight per gene")
        low, high = self.age_years
        if not 0.0 <= low < high <= 19.0:
            raise ValueError("`age_years` must be [min, max] within 0-19 years")
        return self


def load_specs(path: Path | str, identities: dict[str, dict] | None = None) -> list[DisorderSpec]:
    """Read one YAML file holding a disorder spec or a list of them; `identities` gives each id's
    catalogue fields to the entries that write only their effects (the built-in file)."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError as exc:
        raise SpecError(f"spec file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML: {exc}") from exc
    entries = raw if isinstance(raw, list) else [raw]
    specs: list[DisorderSpec] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: entry {i + 1} is not a mapping of fields")
        if identities is not None:
            if entry.get("id") not in identities:
                raise SpecError(f"{path}: disorder {entry.get('id')!r} is not in the clinical catalogue (index/builtin_catalogue.yaml)")
            entry = {**identities[entry["id"]], **entry}
        try:
            specs.append(DisorderSpec.model_validate(entry))
        except ValidationError as exc:
            label = entry.get("id", f"entry {i + 1}")
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SpecError(f"{path}: disorder {label!r} is invalid: {problems}") from exc
    ids = [s.id for s in specs]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise SpecError(f"{path}: disorder ids appear twice: {', '.join(duplicated)}")
    return specs


def builtin_specs() -> list[DisorderSpec]:
    """The disorders of PHENOTYPES.md section 2 plus unaffected controls: the clinical catalogue's
    identities with the effects of `specs/phenotypes.yaml`."""
    identities = {e.id: e.model_dump(exclude_none=True) for e in builtin_entries()}
    with resources.as_file(resources.files("training.synth").joinpath("specs", "phenotypes.yaml")) as path:
        return load_specs(path, identities)


def unseen_syndrome_specs() -> list[DisorderSpec]:
    """Syndromes written by hand for the unseen-disorder test (`specs/unseen_syndromes.yaml`): in
    no training recipe and never drawn by the disorder sampler."""
    with resources.as_file(resources.files("training.synth").joinpath("specs", "unseen_syndromes.yaml")) as path:
        return load_specs(path)


def merge_specs(base: list[DisorderSpec], extra: list[DisorderSpec]) -> list[DisorderSpec]:
    """`extra` adds disorders and replaces those with the same id."""
    merged = {s.id: s for s in base}
    merged.update({s.id: s for s in extra})
    return list(merged.values())


# ---------------------------------------------------------------------------------------
# Sampling a patient's phenotype from a spec.


@dataclass(frozen=True)
class _Draw:
    """A patient's fixed draw for one effect: whether it shows and their severity z."""

    shows: bool
    z: float


@dataclass
class PatientPhenotype:
    """A patient's persistent disorder draws; `at_age` resolves them for one visit."""

    spec: DisorderSpec
    gene: str
    thumb: ThumbForm
    draws: dict[str, _Draw]

    @classmethod
    def sample(cls, spec: DisorderSpec, rng: np.random.Generator) -> PatientPhenotype:
        gene = ""
        if spec.genes:
            weights = np.asarray(spec.gene_weights or [1.0] * len(spec.genes), dtype=float)
            gene = str(rng.choice(spec.genes, p=weights / weights.sum()))
        forms = dict(spec.thumb)
        forms.setdefault(ThumbForm.NORMAL, 0.0)
        forms[ThumbForm.NORMAL] += max(0.0, 1.0 - sum(forms.values()))
        names = list(forms)
        thumb = ThumbForm(str(rng.choice(names, p=np.asarray([forms[n] for n in names]) / sum(forms.values()))))
        draws: dict[str, _Draw] = {}
        for key, effect in _all_effects(spec):
            draws[key] = _Draw(bool(rng.random() < effect.probability), float(rng.standard_normal()))
        return cls(spec, gene, thumb, draws)

    def _value(self, key: str, effect: Effect, neutral: float, age_years: float) -> float:
        draw = self.draws[key]
        if not draw.shows:
            return neutral
        return effect.mean_at(age_years) + effect.sd * draw.z

    def at_age(self, age_years: float) -> ResolvedPhenotype:
        """Parameter values for a visit at this chronological age."""
        spec = self.spec
        lengths = {name: 1.0 for name in BONES_BY_NAME}
        widths = {name: 1.0 for name in BONES_BY_NAME}
        for table, factors in (("length", lengths), ("width", widths)):
            for group, effect in getattr(spec, table).items():
                value = max(0.05, self._value(f"{table}.{group}", effect, 1.0, age_years))
                for bone in GROUPS[group]:
                    factors[bone] *= value
        features: dict[str, float] = {}
        feature_bones: dict[str, frozenset[str]] = {}
        for key, effect in spec.features.items():
            param = PARAMETERS[key]
            value = self._value(f"features.{key}", effect, param.neutral, age_years)
            features[key] = max(0.0, value) if param.kind is Kind.FACTOR else value
            if effect.bones:
                feature_bones[key] = frozenset(b for g in effect.bones for b in GROUPS[g])
        ba_offset = self._value("bone_age_offset_months", spec.bone_age_offset_months, 0.0, age_years)
        return ResolvedPhenotype(lengths, widths, features, feature_bones, ba_offset, self.thumb)


def _all_effects(spec: DisorderSpec) -> list[tuple[str, Effect]]:
    effects = [("bone_age_offset_months", spec.bone_age_offset_months)]
    effects += [(f"length.{k}", e) for k, e in spec.length.items()]
    effects += [(f"width.{k}", e) for k, e in spec.width.items()]
    effects += [(f"features.{k}", e) for k, e in spec.features.items()]
    return effects


@dataclass(frozen=True)
class ResolvedPhenotype:
    """Numbers for one visit: what the geometry builder reads."""

    length_factor: dict[str, float]
    width_factor: dict[str, float]
    features: dict[str, float]
    feature_bones: dict[str, frozenset[str]]
    bone_age_offset_months: float
    thumb: ThumbForm

    def feature(self, name: str) -> float:
        return self.features.get(name, PARAMETERS[name].neutral)

    def feature_on(self, name: str, bone: TubularBone | str, default_bones: tuple[str, ...] | None = None) -> float:
        """The feature's value on one bone: neutral outside its `bones` (or the default set)."""
        bone_name = bone if isinstance(bone, str) else bone.name
        targets = self.feature_bones.get(name)
        if targets is None and default_bones is not None:
            targets = frozenset(b for g in default_bones for b in GROUPS[g])
        if targets is not None and bone_name not in targets:
            return PARAMETERS[name].neutral
        return self.feature(name)
