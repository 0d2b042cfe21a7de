"""Lay out one hand: every bone, epiphysis, carpal and the soft-tissue envelope, in mm.

Inputs are what a clinician would know about the child (sex, chronological age), what
the skeleton shows (bone age), the disorder's resolved phenotype, the patient's own
normal variation and the pose on the detector. Output is a `HandLayout` of render
primitives in the millimetre frame of `anatomy` plus the ground-truth bone table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.synth import anatomy as A
from training.synth import maturation as M
from training.synth.raster import Disc, Tube
from training.synth.spec import ResolvedPhenotype, ThumbForm

# ---------------------------------------------------------------------------------------
# Patient variation and pose


@dataclass(frozen=True)
class Individual:
    """A patient's own normal variation, kept across their visits."""

    size: float
    length: dict[str, float]
    width: dict[str, float]
    onset_jitter: dict[str, float]
    seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Individual:
        digit_factor = {d: rng.normal(1.0, 0.02) for d in range(0, 6)}
        length = {b.name: digit_factor[b.digit] * rng.normal(1.0, 0.02) for b in A.TUBULAR_BONES}
        width = {b.name: rng.normal(1.0, 0.05) for b in A.TUBULAR_BONES}
        jitter: dict[str, float] = {}
        for b in A.TUBULAR_BONES:
            jitter[b.name] = rng.normal(0.0, 0.15)
        for name, onset in M.CARPAL_ONSET.items():
            jitter[name] = rng.normal(0.0, 0.12 * onset.male + 0.12)
        if rng.random() < 8 / 192:  # triquetrum after the lunate in 8 of 192 (Oxford series)
            jitter["triquetrum"] += 2.0
        return cls(float(np.clip(rng.normal(1.0, 0.05), 0.85, 1.15)), length, width, jitter, int(rng.integers(2**31)))


@dataclass(frozen=True)
class Pose:
    """Positioning on the detector; TW2's standard view is the mean."""

    rotation_deg: float
    finger_spread: float
    thumb_abduction_deg: float
    wrist_deviation_deg: float
    pronation_deg: float = 0.0  # turned about the long axis, the radial side up (+) or down; drawn by styles that ask

    @staticmethod
    def sample_pronation(rng: np.random.Generator, sd_deg: float) -> float:
        """A slight turn about the hand's long axis, as hands lie when not pressed flat."""
        return float(np.clip(rng.normal(0.0, sd_deg), -2.5 * sd_deg, 2.5 * sd_deg))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Pose:
        return cls(
            rotation_deg=float(np.clip(rng.normal(0.0, 6.0), -20, 20)),
            finger_spread=float(rng.uniform(0.3, 1.4)),
            thumb_abduction_deg=float(rng.normal(0.0, 7.0)),
            wrist_deviation_deg=float(np.clip(rng.normal(0.0, 4.0), -12, 12)),
        )


@dataclass(frozen=True)
class CaseAnatomy:
    """Everything the skeleton depends on for one radiograph."""

    sex: str
    age_years: float
    bone_age_years: float
    phenotype: ResolvedPhenotype
    individual: Individual
    pose: Pose


# ---------------------------------------------------------------------------------------
# Output


@dataclass
class BoneRecord:
    """Ground truth for one tubular bone (lengths in mm)."""

    name: str
    length_mm: float
    width_mm: float
    epiphysis: str
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass
class Capsule:
    """A tapered soft-tissue segment (finger), mm."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    r0: float
    r1: float


@dataclass
class HandLayout:
    tubes: list[Tube] = field(default_factory=list)
    discs: list[Disc] = field(default_factory=list)
    capsules: list[Capsule] = field(default_factory=list)
    polygons: list[np.ndarray] = field(default_factory=list)
    bones: list[BoneRecord] = field(default_factory=list)
    carpals: list[str] = field(default_factory=list)
    wrist: tuple[float, float] = (0.0, -20.0)
    scale: float = 1.0  # this child's size relative to the adult layout


# ---------------------------------------------------------------------------------------
# Helpers


def _direction(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.sin(a), math.cos(a)])


def _rotate_about(point: np.ndarray, centre: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate towards +x (radial) by a positive angle, like the bone angles."""
    a = math.radians(angle_deg)
    d = point - centre
    return centre + np.array([d[0] * math.cos(a) + d[1] * math.sin(a), -d[0] * math.sin(a) + d[1] * math.cos(a)])


def _pronated(point: np.ndarray, pronation_deg: float, depth: float = 0.0) -> np.ndarray:
    """Where a point of the hand's plane (x across, the third ray at x = 0) projects once the hand
    is turned by `pronation_deg` about its long axis: across distances shrink by the cosine, and a
    point `depth` in front of the plane (the arch's sides, the thumb) moves sideways by the sine."""
    if pronation_deg == 0.0:
        return point
    a = math.radians(pronation_deg)
    return np.array([point[0] * math.cos(a) + depth * math.sin(a), point[1]])  # volar points follow the radial side's lift


def _growth_plate_signs(ph: ResolvedPhenotype, bone: A.TubularBone, st) -> tuple[float, float, float, float]:
    """Cone, cupping, fraying and lucent tongues at an open, ossified growth plate (none otherwise)."""
    if not (st.present and not st.fused):
        return 0.0, 0.0, 0.0, 0.0
    return (
        float(np.clip(ph.feature_on("cone_epiphysis", bone, ()), 0, 1)),
        float(np.clip(ph.feature_on("metaphyseal_cupping", bone), 0, 1)),
        float(np.clip(ph.feature_on("metaphyseal_fraying", bone), 0, 1)),
        float(np.clip(ph.feature_on("lucent_tongues", bone), 0, 1)),
    )


@dataclass
class _Builder:
    case: CaseAnatomy
    scale: float  # mm of this child per mm of the adult layout
    adult: float  # the same for a same-sex adult (the end point of growth)
    rng: np.random.Generator
    layout: HandLayout = field(default_factory=HandLayout)

    @property
    def ph(self) -> ResolvedPhenotype:
        return self.case.phenotype

    def bone_dims(self, bone: A.TubularBone, length_scale: float = 1.0, width_scale: float = 1.0) -> tuple[float, float]:
        ind = self.case.individual
        length = bone.length_mm * self.scale * self.ph.length_factor[bone.name] * ind.length[bone.name] * length_scale
        # bones grow in length faster than in width: a toddler's metacarpal is stubbier
        width_growth = self.scale**0.7 * self.adult**0.3
        width = bone.shaft_width_mm * width_growth * self.ph.width_factor[bone.name] * ind.width[bone.name] * width_scale
        return length, width

    def state(self, bone: A.TubularBone) -> M.EpiphysisState:
        name = bone.name
        delay = self.case.individual.onset_jitter.get(name, 0.0) + self.ph.feature_on("epiphysis_delay_years", name)
        advance = self.ph.feature_on("early_fusion_years", name)
        return M.epiphysis_state(bone, self.case.sex, self.case.bone_age_years, delay, advance)

    def tubular(
        self,
        bone: A.TubularBone,
        start: np.ndarray,
        angle_deg: float,
        length: float,
        width: float,
        name: str | None = None,
        end_tilt_deg: float = 0.0,
        bend: float = 0.0,
        extend_proximally: float = 0.0,
    ) -> np.ndarray:
        """Place one tubular bone with its epiphysis; returns its distal end (mm).

        `extend_proximally` draws the shaft further than its nominal length (the forearm
        bones run off the image), without changing the recorded length or the flare.
        """
        ph = self.ph
        name = name or bone.name
        axis = _direction(angle_deg)
        st = self.state(bone)
        r_shaft, r_prox, r_dist, cortex, flare = self._radii(bone, width)
        density = ph.feature("bone_density")

        eh_full = bone.epiphysis_height * length
        ends = self._end_shapes(bone)
        cone, cup, fray, tongue = _growth_plate_signs(self.ph, bone, st)
        gap, shaft_start, shaft_len = self._shaft_span(bone, st, ends, start, axis, length, eh_full)

        taper = float(np.clip(ph.feature_on("bullet_phalanges", bone, ("phalanges",)), 0, 1))
        stretch = (shaft_len + extend_proximally) / max(shaft_len, 1e-6)
        shaft_start = shaft_start - axis * extend_proximally
        tube = Tube(
            name=name,
            origin=(float(shaft_start[0]), float(shaft_start[1])),
            angle=math.radians(angle_deg),
            length=float(shaft_len + extend_proximally),
            r_prox=r_prox,
            r_shaft=r_shaft,
            r_dist=r_dist,
            cortex=cortex,
            prox_end=ends["proximal"],
            dist_end=ends["distal"],
            flare_prox=0.22 * (flare if bone.epiphysis_end == "proximal" else 1.0) / stretch,
            flare_dist=0.22 * (flare if bone.epiphysis_end == "distal" else 1.0) / stretch,
            end_tilt=math.radians(end_tilt_deg),
            cup=cup,
            cone=cone,
            fray=fray,
            tongue=tongue,
            taper=taper,
            bend=bend,
            density=density,
            seed=int(self.rng.integers(2**31)),
        )
        self._pseudoepiphysis(bone, tube)
        self.layout.tubes.append(tube)

        if st.present and not st.fused:
            self._epiphysis(bone, name, st, start, axis, angle_deg, length, eh_full, gap, r_prox, r_dist, cone, end_tilt_deg)
        elif st.fused and st.scar > 0.05:
            self._physeal_scar(
                bone,
                name,
                st.scar,
                start + axis * (eh_full if bone.epiphysis_end == "proximal" else length - eh_full),
                angle_deg,
                r_prox if bone.epiphysis_end == "proximal" else r_dist,
            )
        end = start + axis * length
        self.layout.bones.append(
            BoneRecord(name, float(length), float(width), st.stage, (float(start[0]), float(start[1])), (float(end[0]), float(end[1])))
        )
        return end

    def _shaft_span(
        self,
        bone: A.TubularBone,
        st,
        ends: dict[str, str],
        start: np.ndarray,
        axis: np.ndarray,
        length: float,
        eh_full: float,
    ) -> tuple[float, np.ndarray, float]:
        """The growth-plate gap, and where the shaft starts and how long it is (the epiphysis takes its share
        until the plate fuses); marks the plate's end of the shaft flat while it is open."""
        if st.fused:
            if bone.epiphysis_end == "proximal":
                ends["proximal"] = "square"
            return 0.0, start.copy(), length
        ends[bone.epiphysis_end] = "flat"
        gap = 1.0 * self.scale * st.physis_gap * self.ph.feature_on("physis_widening", bone) if st.present else 0.0
        shaft_start = start + axis * (eh_full + gap) if bone.epiphysis_end == "proximal" else start.copy()
        return gap, shaft_start, length - eh_full - gap

    def _radii(self, bone: A.TubularBone, width: float) -> tuple[float, float, float, float, float]:
        """Shaft, proximal and distal end radii, cortex thickness (mm) and the metaphyseal flare."""
        ph = self.ph
        r_shaft = width / 2
        flare = ph.feature_on("metaphyseal_flare", bone)
        r_prox = r_shaft * bone.proximal_width * (flare if bone.epiphysis_end == "proximal" else 1.0)
        r_dist = r_shaft * bone.distal_width * (flare if bone.epiphysis_end == "distal" else 1.0)
        if bone.row is A.Row.DP:
            r_dist *= ph.feature_on("dp_tuft_width", bone)
        maturity = min(self.case.bone_age_years / 14.0, 1.0)
        cortex = r_shaft * (0.26 + 0.14 * maturity) * ph.feature_on("cortical_thickness", bone)
        return r_shaft, r_prox, r_dist, cortex, flare

    def _end_shapes(self, bone: A.TubularBone) -> dict[str, str]:
        """How each end of the shaft is drawn before the growth plate is considered."""
        ends = {"proximal": "square", "distal": "round"}
        if bone.row is A.Row.DP:
            ends["distal"] = "tuft"
        pointing = self.ph.feature_on("mc_base_pointing", bone, ("MC2", "MC3", "MC4", "MC5"))
        if bone.row is A.Row.MC and bone.digit != 1 and pointing > 0.05:
            ends["proximal"] = "point"
        return ends

    def _physeal_scar(self, bone: A.TubularBone, name: str, scar: float, at: np.ndarray, angle_deg: float, r_end: float) -> None:
        """The dense line a fused growth plate leaves."""
        self.layout.discs.append(
            Disc(
                f"{name}_scar",
                (float(at[0]), float(at[1])),
                math.radians(angle_deg),
                r_end * 0.95,
                0.25 * self.scale,
                0.25 * self.scale,
                density=0.8 * scar,
                shell=1.0,
                trabecular=False,
            )
        )

    def _epiphysis(
        self,
        bone: A.TubularBone,
        name: str,
        st: M.EpiphysisState,
        start: np.ndarray,
        axis: np.ndarray,
        angle_deg: float,
        length: float,
        eh_full: float,
        gap: float,
        r_prox: float,
        r_dist: float,
        cone: float,
        end_tilt_deg: float,
    ) -> None:
        ph = self.ph
        size = ph.feature_on("epiphysis_size", bone)
        r_end = r_prox if bone.epiphysis_end == "proximal" else r_dist
        height = max(eh_full * st.height_ratio * size, 0.6 * self.scale)
        half_q = max(r_end * st.width_ratio * size, 0.8 * self.scale)
        # the ossification centre sits against the physis; cartilage fills the rest
        offset = gap + (eh_full - height) * 0.3 + height / 2
        if bone.epiphysis_end == "proximal":
            centre = start + axis * (eh_full - offset + gap)
            inward = angle_deg
        else:
            centre = start + axis * (length - eh_full - gap + offset)
            inward = angle_deg + 180.0
        if bone.row is A.Row.FOREARM:  # the distal radial epiphysis follows the articular tilt
            inward = inward - end_tilt_deg
        irregular = float(np.clip(ph.feature_on("epiphysis_irregularity", bone), 0, 1))
        wedge = 0.0
        if bone.name == "radius":
            wedge = -(0.35 + 0.02 * ph.feature("radial_tilt_deg"))  # thicker radially: triangular in Madelung
        self.layout.discs.append(
            Disc(
                f"{name}_epiphysis",
                (float(centre[0]), float(centre[1])),
                math.radians(inward),
                half_q,
                height / 2,
                half_q * 0.55,
                density=ph.feature("bone_density") * ph.feature_on("epiphysis_density", bone),
                shell=0.15,
                squareness=3.0,
                cone=cone * 0.6,
                capping=st.capping,
                wedge=wedge,
                irregularity=irregular,
                fragments=max(0.0, irregular - 0.3),
                seed=int(self.rng.integers(2**31)),
            )
        )

    def _pseudoepiphysis(self, bone: A.TubularBone, tube: Tube) -> None:
        """Cleidocranial dysplasia: an accessory epiphysis cut off the MC base."""
        amount = self.ph.feature_on("pseudoepiphysis", bone, ("MC2", "MC3", "MC4", "MC5"))
        if amount < 0.05 or self.case.bone_age_years < 2.0 or tube.prox_end != "square":
            return
        h = tube.length * 0.10 * min(amount, 1.0)
        gap = 0.8 * self.scale
        axis = _direction(math.degrees(tube.angle))
        centre = np.asarray(tube.origin) + axis * (h / 2)
        tube.origin = tuple(np.asarray(tube.origin) + axis * (h + gap))  # type: ignore[assignment]
        tube.length -= h + gap
        tube.prox_end = "square"
        self.layout.discs.append(
            Disc(
                f"{tube.name}_pseudoepiphysis",
                (float(centre[0]), float(centre[1])),
                tube.angle,
                tube.r_prox * 0.9,
                h / 2,
                tube.r_prox * 0.75,
                density=self.ph.feature("bone_density"),
                seed=tube.seed + 7,
            )
        )


# ---------------------------------------------------------------------------------------
# The hand


def build_hand(case: CaseAnatomy) -> HandLayout:
    """The complete layout of one hand in mm (image framing is done by the renderer)."""
    ph = case.phenotype
    effective_age = 0.7 * case.age_years + 0.3 * case.bone_age_years
    scale = A.adult_scale(case.sex) * A.size_fraction(effective_age, case.sex) * ph.feature("size") * case.individual.size
    adult = A.adult_scale(case.sex) * ph.feature("size") * case.individual.size
    b = _Builder(case, scale, adult, np.random.default_rng(case.individual.seed + int(case.age_years * 1000)))
    b.layout.scale = scale
    pose = case.pose
    maturity = min(max(case.bone_age_years / 16.0, 0.0), 1.0)

    _forearm(b, scale, maturity)
    wrist = np.array([0.0, -20.0]) * scale
    hand_rotation = pose.wrist_deviation_deg
    _carpals(b, scale, wrist, hand_rotation)
    ray_ends = _rays(b, scale, wrist, hand_rotation)
    _soft_tissue(b, scale, wrist, ray_ends)
    _calcifications(b, scale)
    return b.layout


def _forearm(b: _Builder, scale: float, maturity: float) -> None:
    ph = b.ph
    v_shape = ph.feature("forearm_v_shape_deg")
    # In children the normal ulnar inclination comes mostly from the wedge-shaped epiphysis;
    # the physis itself tilts only a little, unless a Madelung/V deformity tilts it.
    tilt = 0.35 * (8.0 + 14.0 * maturity) + ph.feature("radial_tilt_deg") + v_shape
    bowing = float(np.clip(ph.feature("radius_bowing"), 0, 1))
    # a radius shorter than the ulna (mesomelic dysplasias) ends more proximally
    radius_shortening = max(0.0, ph.length_factor["ulna"] - ph.length_factor["radius"]) * 25.0 * scale
    for bone, end in ((A.RADIUS, A.RADIUS_END), (A.ULNA, A.ULNA_END)):
        length, width = b.bone_dims(bone)
        end_pt = np.array(end) * scale
        if bone is A.ULNA:
            end_pt[1] += ph.feature("ulnar_variance_mm") * scale
        else:
            end_pt[1] -= radius_shortening
        start = end_pt - np.array([0.0, length])
        b.tubular(
            bone,
            start,
            0.0,
            length,
            width,
            end_tilt_deg=tilt if bone is A.RADIUS else -v_shape,
            bend=(bowing * 0.12 * width * 4.0) if bone is A.RADIUS else 0.0,
            extend_proximally=300.0 * scale,
        )


def _carpals(b: _Builder, scale: float, wrist: np.ndarray, hand_rotation: float) -> None:
    ph, case = b.ph, b.case
    delta = ph.feature("carpal_angle_deg")
    subsidence = ph.feature("lunate_subsidence_mm") + max(0.0, -delta) * 0.10
    size_factor = ph.feature("carpal_size")
    irregular = float(np.clip(ph.feature("carpal_irregularity"), 0, 1))
    delay = ph.feature("carpal_delay_years")
    placed: dict[str, Disc] = {}
    for carpal in A.CARPALS:
        if carpal.name == "sesamoid":
            continue
        st = M.carpal_state(carpal.name, case.sex, case.bone_age_years, case.individual.onset_jitter[carpal.name] + delay)
        if not st.present:
            continue
        centre = np.array(carpal.centre, dtype=float)
        rotation = carpal.rotation_deg
        if carpal.name == "lunate":
            centre[1] -= subsidence
        elif carpal.name == "scaphoid":
            rotation -= delta * 0.5
            centre[1] -= delta * 0.06
        elif carpal.name == "triquetrum":
            rotation += delta * 0.5
            centre[1] -= delta * 0.06
        centre = _rotate_about(_pronated(centre * scale, case.pose.pronation_deg), wrist, hand_rotation)
        mean_axis = (carpal.half_x + carpal.half_y) / 2
        # 0.92: mature carpals touch at their articular margins rather than overlap broadly
        half_x = (carpal.half_x * (1 - st.roundness) + mean_axis * st.roundness) * st.size * size_factor * scale * 0.92
        half_y = (carpal.half_y * (1 - st.roundness) + mean_axis * st.roundness) * st.size * size_factor * scale * 0.92
        disc = Disc(
            carpal.name,
            (float(centre[0]), float(centre[1])),
            math.radians(rotation + hand_rotation),
            half_x,
            half_y,
            min(half_x, half_y) * 0.6,
            density=ph.feature("bone_density"),
            shell=0.10,
            irregularity=irregular + 0.04,
            fragments=max(0.0, irregular - 0.5),
            seed=int(b.rng.integers(2**31)),
        )
        placed[carpal.name] = disc
        b.layout.discs.append(disc)
        b.layout.carpals.append(carpal.name)
    if ph.feature("capitate_hamate_fusion") > 0.5 and {"capitate", "hamate"} <= placed.keys():
        cap, ham = placed["capitate"], placed["hamate"]
        mid = ((cap.centre[0] + ham.centre[0]) / 2, (cap.centre[1] + ham.centre[1]) / 2)
        b.layout.discs.append(
            Disc(
                "capitate_hamate_bridge",
                mid,
                cap.angle,
                0.5 * (cap.half_q + ham.half_q) * 0.8,
                cap.half_p * 0.7,
                cap.depth * 0.6,
                density=cap.density,
                shell=0.1,
                seed=cap.seed + 3,
            )
        )
    if ph.feature("extra_carpal") > 0.5 and "capitate" in placed:
        cap = placed["capitate"]
        extra = _rotate_about(np.array([-6.0, 9.5]) * scale, wrist, hand_rotation)
        r = max(cap.half_q * 0.35, 1.0 * scale)
        b.layout.discs.append(
            Disc("extra_carpal", (float(extra[0]), float(extra[1])), 0.0, r, r * 1.1, r, density=cap.density, seed=cap.seed + 5)
        )


def _rays(b: _Builder, scale: float, wrist: np.ndarray, hand_rotation: float) -> dict[int, tuple[np.ndarray, float]]:
    """Metacarpals and fingers; returns each ray's fingertip and its last bone's radius."""
    ph, pose = b.ph, b.case.pose
    trident = float(np.clip(ph.feature("trident"), 0, 1.2))
    deviation = ph.feature("finger_deviation_deg")
    clino = ph.feature("clinodactyly_deg")
    joint = A.JOINT_SPACE_MM * scale * (1.0 + 0.6 * (1.0 - min(b.case.bone_age_years / 10, 1.0)))
    tips: dict[int, tuple[np.ndarray, float]] = {}
    rays: list[tuple[int, tuple[str, ...]]] = [(d, A.RAYS[d]) for d in (2, 3, 4, 5)]
    thumb = b.ph.thumb
    if thumb is not ThumbForm.ABSENT:
        rays.insert(0, (1, A.RAYS[1]))
    for digit, names in rays:
        base = _pronated(np.array(A.RAY_BASES[digit]) * scale, pose.pronation_deg, A.RAY_DEPTH_MM[digit] * scale)
        base = _rotate_about(base, wrist, hand_rotation)
        angle = A.RAY_ANGLES_DEG[digit] + hand_rotation
        if digit == 1:
            angle += pose.thumb_abduction_deg
        point = base
        finger_angle = angle
        last_radius = 2.0
        bones = list(names)
        if digit == 1 and thumb is ThumbForm.TRIPHALANGEAL:
            bones = ["MC1", "PP1", "MP2", "DP1"]
        for i, name in enumerate(bones):
            bone = A.BONES_BY_NAME[name]
            label = "MP1" if (digit == 1 and name == "MP2") else name
            length, width = b.bone_dims(bone)
            if digit == 1 and thumb is ThumbForm.HYPOPLASTIC:
                length, width = length * 0.6, width * 0.7
            if digit == 1 and thumb is ThumbForm.TRIPHALANGEAL and label == "MP1":
                length, width = length * 0.7, width * 0.9
            if trident > 0 and digit in (2, 3, 4) and bone.row in (A.Row.PP, A.Row.MP, A.Row.DP):
                target = b.bone_dims(A.BONES_BY_NAME[f"{bone.row.value}2"])[0]
                length = length + (target - length) * 0.7 * min(trident, 1.0)
            if i == 0:
                bone_angle = angle
            else:
                if i == 1:
                    spread = A.FINGER_SPREAD_DEG[digit] * pose.finger_spread
                    finger_angle = angle + spread - (deviation if digit != 1 else 0.0)
                    if trident > 0 and digit in (3, 4):
                        finger_angle += (6.0 if digit == 3 else -6.0) * trident
                bone_angle = finger_angle
                if digit == 5 and clino and bone.row is A.Row.MP:
                    bone_angle += clino * 0.4
                    finger_angle += clino
                point = point + _direction(bone_angle) * joint
            tilt = clino * 0.6 if (digit == 5 and bone.row is A.Row.MP) else 0.0
            if digit == 1 and thumb is ThumbForm.DUPLICATED and bone.row is A.Row.DP:
                for k, side in enumerate((-12.0, 12.0)):
                    b.tubular(bone, point, bone_angle + side, length * 0.9, width * 0.65, name=f"DP1{'ab'[k]}")
                end = point + _direction(bone_angle) * length * 0.9
            else:
                end = b.tubular(bone, point, bone_angle, length, width, name=label, end_tilt_deg=tilt)
            if name == "MC1" and thumb is not ThumbForm.ABSENT:
                _sesamoid(b, end, bone_angle, width, scale)
            point = end
            last_radius = width / 2
        tips[digit] = (point + _direction(finger_angle) * A.FINGERTIP_PAD_MM[digit] * scale, last_radius)
    if ph.feature("polydactyly_postaxial") > 0.5:
        tips[6] = _extra_digit(b, scale, wrist, hand_rotation, joint)
    return tips


def _sesamoid(b: _Builder, mc1_head: np.ndarray, angle: float, width: float, scale: float) -> None:
    st = M.carpal_state("sesamoid", b.case.sex, b.case.bone_age_years, b.case.individual.onset_jitter["sesamoid"])
    if not st.present:
        return
    ses = A.CARPALS_BY_NAME["sesamoid"]
    at = mc1_head - _direction(angle) * width * 0.35 - _direction(angle + 90) * width * 0.28
    b.layout.discs.append(
        Disc(
            "sesamoid",
            (float(at[0]), float(at[1])),
            math.radians(angle),
            ses.half_x * scale * st.size,
            ses.half_y * scale * st.size,
            ses.half_x * scale * st.size,
            density=b.ph.feature("bone_density"),
            seed=3,
        )
    )


def _extra_digit(b: _Builder, scale: float, wrist: np.ndarray, hand_rotation: float, joint: float) -> tuple[np.ndarray, float]:
    """Postaxial polydactyly: a small sixth ray beside the fifth (or sharing MC5)."""
    mc5 = next(t for t in b.layout.tubes if t.name == "MC5")
    angle = A.RAY_ANGLES_DEG[5] + hand_rotation - 12.0
    if b.ph.feature("synmetacarpal") > 0.5:
        point = np.array(mc5.origin) + _direction(math.degrees(mc5.angle)) * (mc5.length + 0.5 * joint) - np.array([mc5.r_dist, 0])
    else:
        base = _rotate_about(np.array([-24.0, 7.0]) * scale, wrist, hand_rotation)
        length, width = b.bone_dims(A.BONES_BY_NAME["MC5"], 0.55, 0.7)
        point = b.tubular(A.BONES_BY_NAME["MC5"], base, angle, length, width, name="MC6")
    for name, factor in (("PP5", 0.7), ("DP5", 0.8)):
        bone = A.BONES_BY_NAME[name]
        length, width = b.bone_dims(bone, factor, 0.75)
        point = point + _direction(angle - 10) * joint
        point = b.tubular(bone, point, angle - 10, length, width, name=name.replace("5", "6"))
    return point + _direction(angle - 10) * 3.5 * scale, width / 2


def _soft_tissue(b: _Builder, scale: float, wrist: np.ndarray, tips: dict[int, tuple[np.ndarray, float]]) -> None:
    """Fingers as tapered capsules; palm, thenar and forearm as polygons."""
    tubes = {t.name: t for t in b.layout.tubes}
    # infants carry relatively more subcutaneous fat: wider fingers around slim bones
    margin = 3.4 * scale + 2.2 * (1.0 - min(b.case.age_years / 12.0, 1.0)) + 0.6

    def ends(tube: Tube) -> tuple[np.ndarray, np.ndarray]:
        p0 = np.array(tube.origin)
        return p0, p0 + _direction(math.degrees(tube.angle)) * tube.length

    palm_pts: list[np.ndarray] = []
    for digit in (1, 2, 3, 4, 5, 6):
        mc = tubes.get(f"MC{digit}") or (tubes.get("MC5") if digit == 6 else None)
        pp = tubes.get(f"PP{digit}")
        if digit not in tips or pp is None or mc is None:
            continue
        tip, tip_r = tips[digit]
        p_start, _ = ends(pp)
        r_pp = max(pp.r_prox, pp.r_shaft) + margin
        b.layout.capsules.append(Capsule(tuple(p_start), tuple(tip), r_pp, tip_r + margin * 0.9))  # type: ignore[arg-type]
        if digit in (2, 3, 4, 5):
            # the web between the fingers reaches about a quarter of the way up the PP
            web = p_start + _direction(math.degrees(pp.angle)) * pp.length * 0.28
            side = _direction(math.degrees(pp.angle) + 90) * (pp.r_shaft + margin)
            palm_pts += [web + side, web - side]
    for digit in (2, 3, 4, 5):
        mc = tubes.get(f"MC{digit}")
        if mc is None:
            continue
        p0, p1 = ends(mc)
        side = _direction(math.degrees(mc.angle) + 90)
        extra = (2.5 * scale if digit == 5 else 0.0) + (1.5 * scale if digit == 2 else 0.0)
        for p, r in ((p0, mc.r_prox), (p1, mc.r_dist)):
            palm_pts += [p + side * (r + margin + extra), p - side * (r + margin + extra)]
    if "MC6" in tubes:
        p0, p1 = ends(tubes["MC6"])
        palm_pts += [p0 - np.array([margin, 0]), p1 - np.array([margin, 0])]
    wrist_half = (A.RADIUS_END[0] - A.ULNA_END[0]) / 2 * scale + 14.0 * scale + 2.0
    wrist_centre = np.array([(A.RADIUS_END[0] + A.ULNA_END[0]) / 2 * scale, wrist[1]])
    palm_pts += [wrist_centre + np.array([-wrist_half, 0]), wrist_centre + np.array([wrist_half, 0])]
    if palm_pts:
        b.layout.polygons.append(np.array(palm_pts))
    if "MC1" in tubes:
        p0, p1 = ends(tubes["MC1"])
        side = _direction(math.degrees(tubes["MC1"].angle) + 90)
        r = tubes["MC1"].r_dist + margin * 1.3
        thenar = [p0 + side * r * 1.6, p0 - side * r, p1 + side * r, p1 - side * r]
        mc2 = tubes.get("MC2")
        if mc2 is not None:
            thenar.append(np.array(mc2.origin))
            thenar.append(ends(mc2)[0] + _direction(math.degrees(mc2.angle)) * mc2.length * 0.55)
        thenar.append(wrist_centre + np.array([wrist_half, 0]))
        b.layout.polygons.append(np.array(thenar))
    # forearm: widening slowly, running far past the bottom of any image
    far = wrist_centre + np.array([0.0, -400.0])
    b.layout.polygons.append(
        np.array(
            [
                wrist_centre + np.array([-wrist_half, 6 * scale]),
                wrist_centre + np.array([wrist_half, 6 * scale]),
                far + np.array([wrist_half * 1.4, 0]),
                far + np.array([-wrist_half * 1.4, 0]),
            ]
        )
    )
    b.layout.wrist = (float(wrist_centre[0]), float(wrist_centre[1]))


def _calcifications(b: _Builder, scale: float) -> None:
    """Subcutaneous ossifications (AHO): small dense blobs in the palm's soft tissue."""
    count = round(max(0.0, b.ph.feature("soft_tissue_calcifications")))
    for k in range(count):
        x = b.rng.uniform(-22, 25) * scale
        y = b.rng.uniform(5, 60) * scale
        r = b.rng.uniform(0.8, 2.2) * scale
        b.layout.discs.append(
            Disc(
                f"calcification{k}",
                (x, y),
                b.rng.uniform(0, math.pi),
                r,
                r * b.rng.uniform(0.6, 1.4),
                r,
                density=0.9,
                irregularity=0.6,
                seed=int(b.rng.integers(2**31)),
                trabecular=False,
            )
        )
