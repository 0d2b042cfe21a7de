"""Procedurally generated disorders: random specs drawn from the spec grammar, shaped like the catalogue's.

Why: a space trained on 20 disorders learns those 20; a space that must place a syndrome it has
never seen has to learn what distinguishes hands in general. GestaltMatcher's space generalises
because it was trained on hundreds of syndromes; our generator can write as many as we ask for.

How a disorder is drawn (everything from one seeded generator, so a seed gives the same list):
- its *shape* (how many length, width and feature effects, and whether the thumb is involved) is
  that of a catalogue disorder picked at random, so the complexity of the catalogue carries over;
- each length and width effect picks a bone group of a kind (all bones, a row, a digit, the forearm,
  one bone) as often as the catalogue uses that kind, then a group of that kind at random, so new
  combinations arise (a short MP2, a long digit 4);
- its size, spread (`sd`, the expressivity between patients), penetrance (`probability`) and
  course with age (`by_age`) are a catalogue effect of the same kind, its log-factor or offset
  scaled by a random factor (`SamplerConfig.jitter`, times `magnitude`);
- a feature (a parameter of the registry) takes the size, spread, penetrance and affected bones of
  a catalogue effect of that same parameter; parameters no catalogue disorder uses are not drawn
  (no plausible size is known for them); the supernumerary MC5-MC6 comes only with a postaxial digit;
- the bone-age offset, the age range and the share of girls are a catalogue disorder's.
Every drawn spec is validated exactly as a curator's YAML is (`DisorderSpec.model_validate`).
The catalogue disorders named in `exclude` (those held out of training) lend nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from training.synth.spec import GROUPS, PARAMETERS, THUMB_FORMS, DisorderSpec, Effect, Kind, SpecError, ThumbForm, builtin_specs
from training.synth.spec_space import parameter_unit

# The bundled encoder's held-out catalogue disorders (scripts/recipes/demo_encoder.yaml `held_out`):
# the sampler borrows nothing from them by default, so the unseen-disorder test stays unseen.
CATALOGUE_HELD_OUT = ("trps1", "ellis_van_creveld", "holt_oram", "acromesomelic_maroteaux")
LENGTH_LIMITS = (0.45, 1.25)  # a drawn length or width factor stays within these
GROUP_KINDS: dict[str, tuple[str, ...]] = {
    "global": ("all", "hand", "phalanges"),
    "row": ("MC", "PP", "MP", "DP"),
    "digit": tuple(f"digit{d}" for d in range(1, 6)),
    "forearm": ("forearm", "radius", "ulna"),
}
_BINARY = ("capitate_hamate_fusion", "extra_carpal", "polydactyly_postaxial", "synmetacarpal")
_ONLY_WITH = {"synmetacarpal": "polydactyly_postaxial"}


def group_kind(group: str) -> str:
    """global, row, digit, forearm, or bone (a single tubular bone)."""
    return next((kind for kind, groups in GROUP_KINDS.items() if group in groups), "bone")


def _groups_of_kind(kind: str) -> tuple[str, ...]:
    if kind != "bone":
        return GROUP_KINDS[kind]
    return tuple(g for g, bones in GROUPS.items() if len(bones) == 1 and g not in ("radius", "ulna"))


@dataclass(frozen=True)
class SamplerConfig:
    """How many disorders, from which seed; `magnitude` scales every drawn effect's size (1: the
    catalogue's), chosen so that drawn disorders lie as far apart as the catalogue's."""

    n: int = 300
    seed: int = 0
    id_prefix: str = "procedural"
    magnitude: float = 1.0
    jitter: tuple[float, float] = (0.5, 1.5)
    exclude: tuple[str, ...] = CATALOGUE_HELD_OUT


@dataclass
class _Shape:
    lengths: int
    widths: int
    features: int
    thumb: bool


@dataclass
class CataloguePool:
    """What the sampler borrows from the catalogue: effects by kind, disorder shapes, ages."""

    lengths: dict[str, list[Effect]] = field(default_factory=dict)  # group kind -> effects
    widths: dict[str, list[Effect]] = field(default_factory=dict)
    features: dict[str, list[Effect]] = field(default_factory=dict)  # parameter -> effects
    bone_ages: list[Effect] = field(default_factory=list)
    shapes: list[_Shape] = field(default_factory=list)
    ages: list[tuple[float, float]] = field(default_factory=list)
    female_fractions: list[float] = field(default_factory=list)

    @classmethod
    def from_specs(cls, specs: list[DisorderSpec], exclude: tuple[str, ...] = ()) -> CataloguePool:
        pool = cls()
        for spec in specs:
            if spec.category == "control" or spec.id in exclude:
                continue
            for table, target in (("length", pool.lengths), ("width", pool.widths)):
                for group, effect in getattr(spec, table).items():
                    target.setdefault(group_kind(group), []).append(effect)
            for name, effect in spec.features.items():
                pool.features.setdefault(name, []).append(effect)
            pool.bone_ages.append(spec.bone_age_offset_months)
            drawn = [n for n in spec.features if n not in _ONLY_WITH]
            pool.shapes.append(_Shape(len(spec.length), len(spec.width), len(drawn), bool(spec.thumb)))
            pool.ages.append(spec.age_years)
            pool.female_fractions.append(spec.female_fraction)
        if not pool.shapes:
            raise SpecError("the catalogue lends no disorder to sample from: every one is a control or excluded")
        return pool

    def kind_weights(self, table: str) -> tuple[list[str], np.ndarray]:
        counts = Counter({kind: len(effects) for kind, effects in getattr(self, table).items()})
        kinds = sorted(counts)
        weights = np.array([counts[k] for k in kinds], float)
        return kinds, weights / weights.sum()


class DisorderSampler:
    """Draws `SamplerConfig.n` specs; `sample()` gives the same list for the same config."""

    def __init__(self, config: SamplerConfig, catalogue: list[DisorderSpec] | None = None) -> None:
        self.config = config
        self.pool = CataloguePool.from_specs(catalogue if catalogue is not None else builtin_specs(), config.exclude)

    def sample(self) -> list[DisorderSpec]:
        rng = np.random.default_rng(self.config.seed)
        return [self._one(i, rng) for i in range(self.config.n)]

    def _scale(self, rng: np.random.Generator) -> float:
        low, high = self.config.jitter
        return float(rng.uniform(low, high)) * self.config.magnitude

    def _one(self, index: int, rng: np.random.Generator) -> DisorderSpec:
        pool = self.pool
        shape = pool.shapes[rng.integers(len(pool.shapes))]
        entry: dict = {
            "id": f"{self.config.id_prefix}_{self.config.seed}_{index:04d}",
            "name": f"Procedural disorder {index} (sampler seed {self.config.seed})",
            "category": "skeletal_dysplasia",
            "age_years": list(pool.ages[rng.integers(len(pool.ages))]),
            "female_fraction": pool.female_fractions[rng.integers(len(pool.female_fractions))],
            "length": self._bone_effects("lengths", max(shape.lengths, 1 if shape.features == 0 else 0), rng),
            "width": self._bone_effects("widths", shape.widths, rng),
            "features": self._features(shape.features, rng),
            "bone_age_offset_months": self._offset(pool.bone_ages[rng.integers(len(pool.bone_ages))], rng),
        }
        if shape.thumb:
            entry["thumb"] = _thumb_forms(rng)
        entry["signs"] = _signs(entry)
        return DisorderSpec.model_validate(entry)

    def _bone_effects(self, table: str, count: int, rng: np.random.Generator) -> dict[str, dict]:
        if count == 0 or not getattr(self.pool, table):
            return {}
        kinds, weights = self.pool.kind_weights(table)
        effects: dict[str, dict] = {}
        while len(effects) < count:
            kind = str(rng.choice(kinds, p=weights))
            group = str(rng.choice(_groups_of_kind(kind)))
            if group in effects:
                continue
            source = getattr(self.pool, table)[kind]
            effects[group] = self._factor(source[rng.integers(len(source))], rng, LENGTH_LIMITS)
        return effects

    def _features(self, count: int, rng: np.random.Generator) -> dict[str, dict]:
        names = sorted(n for n in self.pool.features if n not in _ONLY_WITH)
        chosen = [str(n) for n in rng.choice(names, size=min(count, len(names)), replace=False)] if count else []
        features = {}
        for name in chosen:
            source = self.pool.features[name][rng.integers(len(self.pool.features[name]))]
            features[name] = self._feature(name, source, rng)
        for extra, needs in _ONLY_WITH.items():
            if needs in features and extra in self.pool.features and rng.random() < 0.3:
                features[extra] = {"mean": 1.0}
        return features

    def _feature(self, name: str, source: Effect, rng: np.random.Generator) -> dict:
        if name in _BINARY:
            return {"mean": 1.0, "probability": float(np.clip(source.probability * rng.uniform(0.6, 1.4), 0.1, 1.0))}
        if PARAMETERS[name].kind is Kind.FACTOR:
            drawn = self._factor(source, rng, (0.3, 3.0))
        else:
            drawn = self._offset(source, rng)
            if parameter_unit(name) == 1.0:  # a 0..1 grade
                drawn = _clipped(drawn, 0.0, 1.0)
        if source.bones:
            drawn["bones"] = list(source.bones)
        return drawn

    def _factor(self, source: Effect, rng: np.random.Generator, limits: tuple[float, float]) -> dict:
        """The source's log-factor (and its course with age) scaled by a random factor."""
        scale = self._scale(rng)

        def scaled(value: float) -> float:
            return float(np.clip(np.exp(np.log(max(value, 1e-3)) * scale), *limits))

        drawn: dict = {"sd": source.sd, "probability": _penetrance(source, rng)}
        if source.by_age:
            drawn["by_age"] = [[age, round(scaled(v), 4)] for age, v in source.by_age]
        else:
            assert source.mean is not None
            drawn["mean"] = round(scaled(source.mean), 4)
        return drawn

    def _offset(self, source: Effect, rng: np.random.Generator) -> dict:
        """The source's offset (and its course with age) scaled by a random factor."""
        scale = self._scale(rng)
        drawn: dict = {"sd": source.sd, "probability": _penetrance(source, rng)}
        if source.by_age:
            drawn["by_age"] = [[age, round(v * scale, 4)] for age, v in source.by_age]
        else:
            assert source.mean is not None
            drawn["mean"] = round(source.mean * scale, 4)
        return drawn


def _penetrance(source: Effect, rng: np.random.Generator) -> float:
    """The source's penetrance, or (three times in ten) a new one between 0.3 and 1."""
    return float(source.probability if rng.random() < 0.7 else round(rng.uniform(0.3, 1.0), 2))


def _clipped(drawn: dict, low: float, high: float) -> dict:
    if "mean" in drawn:
        drawn["mean"] = float(np.clip(drawn["mean"], low, high))
    else:
        drawn["by_age"] = [[a, float(np.clip(v, low, high))] for a, v in drawn["by_age"]]
    return drawn


def _thumb_forms(rng: np.random.Generator) -> dict[str, float]:
    """One to three abnormal thumb forms sharing 30-80% of patients."""
    abnormal = [f for f in THUMB_FORMS if f != ThumbForm.NORMAL]
    forms = [str(f) for f in rng.choice(abnormal, size=int(rng.integers(1, 4)), replace=False)]
    shares = rng.dirichlet(np.ones(len(forms))) * rng.uniform(0.3, 0.8)
    return {form: round(float(share), 3) for form, share in zip(forms, shares, strict=True)}


def _signs(entry: dict) -> str:
    """A one-line summary of what the drawn disorder changes (the catalogue's `signs` field)."""

    def value(effect: dict) -> str:
        shown = effect["mean"] if "mean" in effect else f"{effect['by_age'][0][1]}..{effect['by_age'][-1][1]}"
        return f"{shown}" + (f" in {effect['probability']:.0%}" if effect.get("probability", 1.0) < 1 else "")

    parts = [f"{group} length {value(e)}" for group, e in entry["length"].items()]
    parts += [f"{group} width {value(e)}" for group, e in entry["width"].items()]
    parts += [f"{name} {value(e)}" for name, e in entry["features"].items()]
    if entry.get("thumb"):
        parts.append("thumb " + ", ".join(f"{f} {p:.0%}" for f, p in entry["thumb"].items()))
    return "Drawn by the disorder sampler: " + ("; ".join(parts) or "bone age only") + "."


def write_specs(specs: list[DisorderSpec], path: Path, header: str = "") -> None:
    """The specs as a curator's YAML file (`bone2gene synth --spec` reads it back unchanged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [s.model_dump(mode="json", exclude_defaults=True) for s in specs]
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True), encoding="utf-8")
