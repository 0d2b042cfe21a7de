"""GA4GH Phenopackets (v2 JSON) in and out: cohorts arrive as phenopackets, cases and
rankings leave as phenopackets, so they travel to the tools clinicians already use.

In: one phenopacket per patient. `subject` gives the patient id, sex and age at the film
(`timeAtLastEncounter`, ISO 8601); `phenotypicFeatures` the observed and excluded HPO terms;
the diagnosis is the first interpretation's disease (else the first `diseases` entry), an
OMIM or ORPHA id matched to the gallery catalogue, its gene from the genomic
interpretations; every `files` entry is one radiograph (a path or `file://` URI, relative to
the phenopacket), with an optional `bone_age_months` file attribute.

Out: a gallery case (the same fields; the diagnosis as a SOLVED interpretation) and a query
result (each ranked disorder an IN_PROGRESS interpretation, its rank, scores and sources in
the summary; candidate genes found as CANDIDATE genomic interpretations).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from index.catalogue import Disorder
from index.hpo import HPO_PACKAGE, release, term_name
from matcher.errors import Bone2GeneError

SCHEMA_VERSION = "2.0"


class PhenopacketError(Bone2GeneError, ValueError):
    title = "Unusable phenopacket"


def _age_months(iso: str, where: str) -> float:
    match = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?", iso or "")
    if not iso or not match or not any(match.groups()):
        raise PhenopacketError(f"{where}: age {iso!r} is not an ISO 8601 duration such as P8Y4M; give subject.timeAtLastEncounter.age")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return round(12 * years + months + (7 * weeks + days) / 30.4375, 2)


def _months_iso(months: float) -> str:
    whole = round(float(months))
    return f"P{whole // 12}Y{whole % 12}M"


def _parse(path: Path):
    from google.protobuf.json_format import Parse, ParseError
    from phenopackets import Phenopacket

    try:
        return Parse(Path(path).read_text(encoding="utf-8"), Phenopacket(), ignore_unknown_fields=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise PhenopacketError(f"cannot read {path}: {exc}") from None
    except ParseError as exc:
        raise PhenopacketError(f"{path.name} is not a v2 phenopacket: {exc}") from None


def _diagnosis(packet, catalogue: Sequence[Disorder], where: str) -> tuple[str | None, str | None]:
    """(catalogue disorder id, gene symbol) of the packet's diagnosis; (None, None) when it has none."""
    disease, gene = None, None
    for interpretation in packet.interpretations:
        if interpretation.diagnosis.disease.id:
            disease = interpretation.diagnosis.disease
            gene = next((g.gene.symbol for g in interpretation.diagnosis.genomic_interpretations if g.gene.symbol), None)
            break
    if disease is None and packet.diseases:
        disease = packet.diseases[0].term
    if disease is None:
        return None, None
    prefix, _, number = disease.id.partition(":")
    field = {"OMIM": "omim", "ORPHA": "orpha", "MONDO": "mondo"}.get(prefix.upper())
    wanted = disease.id if field == "mondo" else number
    match = next((d for d in catalogue if field and getattr(d, field) == wanted), None)
    if match is None:
        raise PhenopacketError(
            f"{where}: diagnosis {disease.id} ({disease.label or 'no label'}) is not in the catalogue; add it first (`bone2gene disorders add --omim ...`)"
        )
    return match.id, gene


def read_phenopackets(paths: Sequence[Path], catalogue: Sequence[Disorder]) -> pd.DataFrame:
    """A case manifest (our layout, absolute image paths) from phenopacket files; every problem names its file."""
    rows = []
    for path in paths:
        packet = _parse(path)
        where = f"{Path(path).name} ({packet.id or 'no id'})"
        sex = {"MALE": "M", "FEMALE": "F"}.get(_sex_name(packet.subject.sex))
        if sex is None:
            raise PhenopacketError(f"{where}: subject.sex must be MALE or FEMALE (bone age depends on it)")
        age = _age_months(packet.subject.time_at_last_encounter.age.iso8601duration, where)
        disorder, gene = _diagnosis(packet, catalogue, where)
        observed = [f.type.id for f in packet.phenotypic_features if not f.excluded]
        excluded = [f.type.id for f in packet.phenotypic_features if f.excluded]
        if not packet.files:
            raise PhenopacketError(f"{where}: no files; list the radiographs under `files` (uri: a path or file:// URI)")
        for i, file in enumerate(packet.files):
            uri = urlparse(file.uri)
            image = Path(unquote(uri.path if uri.scheme == "file" else file.uri))
            image = image if image.is_absolute() else (Path(path).parent / image).resolve()
            bone_age = file.file_attributes.get("bone_age_months")
            rows.append(
                {
                    "image": str(image),
                    "case_id": f"{packet.id or Path(path).stem}-{i + 1}" if len(packet.files) > 1 else (packet.id or Path(path).stem),
                    "patient_id": packet.subject.id or packet.id,
                    "sex": sex,
                    "age_months": age,
                    "disorder": disorder,
                    "gene": gene,
                    "bone_age_months": float(bone_age) if bone_age else None,
                    "source": "phenopacket",
                    "hpo": ";".join(observed) or None,
                    "hpo_excluded": ";".join(excluded) or None,
                }
            )
    return pd.DataFrame(rows)


def _sex_name(value: int) -> str:
    from phenopackets import Sex

    return Sex.Name(value)


def _meta():
    from phenopackets import MetaData, Resource

    resources = [
        Resource(
            id="hp",
            name="human phenotype ontology",
            url="http://purl.obolibrary.org/obo/hp.owl",
            version=release(),
            namespace_prefix="HP",
            iri_prefix="http://purl.obolibrary.org/obo/HP_",
        ),
        Resource(
            id="omim",
            name="Online Mendelian Inheritance in Man",
            url="https://www.omim.org",
            version="unknown",
            namespace_prefix="OMIM",
            iri_prefix="https://www.omim.org/entry/",
        ),
    ]
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meta = MetaData(created_by=f"bone2gene ({HPO_PACKAGE})", resources=resources, phenopacket_schema_version=SCHEMA_VERSION)
    meta.created.FromDatetime(created)
    return meta


def _disease(disorder: Disorder):
    from phenopackets import OntologyClass

    if disorder.omim:
        return OntologyClass(id=f"OMIM:{disorder.omim}", label=disorder.name)
    if disorder.orpha:
        return OntologyClass(id=f"ORPHA:{disorder.orpha}", label=disorder.name)
    return OntologyClass(id=f"bone2gene:{disorder.id}", label=disorder.name)


def _features(observed: Sequence[str], excluded: Sequence[str]) -> list:
    from phenopackets import OntologyClass, PhenotypicFeature

    return [
        PhenotypicFeature(type=OntologyClass(id=t, label=term_name(t)), excluded=flag)
        for terms, flag in ((observed, False), (excluded, True))
        for t in terms
    ]


def case_phenopacket(case: dict, disorder: Disorder | None, image_uri: str | None = None):
    """A gallery case (a row of `Gallery.cases()`) as a phenopacket; the image referenced by `image_uri`."""
    from phenopackets import (
        Age,
        Diagnosis,
        File,
        GeneDescriptor,
        GenomicInterpretation,
        Individual,
        Interpretation,
        Phenopacket,
        TimeElement,
    )

    from index.hpo import split_terms

    subject = Individual(
        id=str(case["patient_id"]),
        sex="MALE" if case["sex"] == "M" else "FEMALE",
        time_at_last_encounter=TimeElement(age=Age(iso8601duration=_months_iso(case["age_months"]))),
    )
    packet = Phenopacket(
        id=str(case["case_id"]),
        subject=subject,
        phenotypic_features=_features(split_terms(case.get("hpo")), split_terms(case.get("hpo_excluded"))),
        meta_data=_meta(),
    )
    if disorder is not None:
        gene = case.get("gene") if isinstance(case.get("gene"), str) else None
        genomic = (
            [
                GenomicInterpretation(
                    subject_or_biosample_id=subject.id,
                    interpretation_status="CAUSATIVE",
                    gene=GeneDescriptor(value_id=f"HGNC:{gene}", symbol=gene),
                )
            ]
            if gene
            else []
        )
        packet.interpretations.append(
            Interpretation(
                id=f"{case['case_id']}-diagnosis",
                progress_status="SOLVED",
                diagnosis=Diagnosis(disease=_disease(disorder), genomic_interpretations=genomic),
            )
        )
    if image_uri:
        attributes = (
            {"bone_age_months": f"{case['bone_age_months']:.1f}"}
            if isinstance(case.get("bone_age_months"), float) and case["bone_age_months"] == case["bone_age_months"]
            else {}
        )
        packet.files.append(File(uri=image_uri, file_attributes=attributes))
    return packet


def ranking_phenopacket(
    packet_id: str,
    sex: str | None,
    age_months: float | None,
    observed: Sequence[str],
    excluded: Sequence[str],
    disorders: Sequence,
    catalogue: Sequence[Disorder],
    top: int = 10,
):
    """A query's ranking as a phenopacket: one IN_PROGRESS interpretation per ranked disorder."""
    from phenopackets import Age, Diagnosis, GeneDescriptor, GenomicInterpretation, Individual, Interpretation, Phenopacket, TimeElement

    subject = Individual(id=f"{packet_id}-patient", sex={"M": "MALE", "F": "FEMALE"}.get(sex or "", "UNKNOWN_SEX"))
    if age_months is not None:
        subject.time_at_last_encounter.CopyFrom(TimeElement(age=Age(iso8601duration=_months_iso(age_months))))
    packet = Phenopacket(id=packet_id, subject=subject, phenotypic_features=_features(observed, excluded), meta_data=_meta())
    entries = {d.id: d for d in catalogue}
    for entry in disorders[:top]:
        disorder = entries.get(entry.label) or Disorder(id=entry.label, name=entry.name or entry.label)
        hits = (entry.sources or {}).get("gene_hits", [])
        genomic = [
            GenomicInterpretation(
                subject_or_biosample_id=subject.id, interpretation_status="CANDIDATE", gene=GeneDescriptor(value_id=f"HGNC:{g}", symbol=g)
            )
            for g in hits
        ]
        summary = f"bone2gene rank {entry.rank}; image score {entry.score}; probability {entry.probability}"
        if entry.sources is not None:
            summary += f"; combined probability {entry.sources['combined_probability']:.3f}; contributions {entry.sources['contributions']}"
        packet.interpretations.append(
            Interpretation(
                id=f"{packet_id}-rank-{entry.rank}",
                progress_status="IN_PROGRESS",
                diagnosis=Diagnosis(disease=_disease(disorder), genomic_interpretations=genomic),
                summary=summary,
            )
        )
    return packet


def to_json(packet) -> str:
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(packet)
