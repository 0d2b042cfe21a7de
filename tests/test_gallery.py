"""The gallery store: catalogue, adds, removal everywhere, relabel, fingerprints, snapshots, ranking, calibration."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import numpy as np
import pytest

from index.catalogue import Disorder
from index.filters import Filters
from index.query import calibration_for, query
from index.store import Gallery, GalleryError, IndexSavePolicy, NewCase
from index.vectors import IndexSpec
from matcher.rank import LabelIndex, RankingRule
from matcher.score_features import Neighbourhood

DIM = 16


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def catalogue(n: int = 4) -> list[Disorder]:
    return [
        Disorder(id=f"d{i}", name=f"Dysplasia {i}, G{i}-related", genes=[f"G{i}"], nosology_group=i + 1, nosology_revision=2023)
        for i in range(n)
    ]


def gallery_cases(n: int, seed: int = 0, disorders: int = 4, spread: float = 0.4, pixels: bool = True) -> tuple[list[NewCase], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(disorders, DIM))
    cases = []
    for i in range(n):
        d = i % disorders
        cases.append(
            NewCase(
                unit(centres[d] + spread * rng.normal(size=DIM)),
                "MF"[i % 2],
                float(12 + i % 180),
                f"d{d}",
                f"G{d}",
                patient_id=f"s{seed}-p{i // 2}",
                case_id=f"s{seed}-c{i}",
                source="site-a" if i % 3 else "site-b",
                pixels=rng.integers(0, 4096, (24, 20)).astype(np.uint16) if pixels else None,
            )
        )
    return cases, centres


@pytest.fixture()
def gallery(tmp_path: Path) -> Gallery:
    g = Gallery.create(tmp_path / "g", "fp-a", DIM)
    g.add_disorders(catalogue())
    yield g
    g.close()


def test_create_refuses_existing_and_bad_factory(tmp_path: Path, gallery: Gallery) -> None:
    with pytest.raises(GalleryError, match="already holds a gallery"):
        Gallery.create(gallery.path, "fp-a", DIM)
    with pytest.raises(RuntimeError):
        Gallery.create(tmp_path / "bad", "fp", DIM, IndexSpec("NotAnIndex"))
    assert not (tmp_path / "bad" / "gallery.sqlite").exists()
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery.open(tmp_path / "nowhere")


def test_catalogue_validation_and_duplicates(gallery: Gallery) -> None:
    with pytest.raises(ValueError, match="revision"):
        Disorder(id="x", name="Something, ABC-related", nosology_group=3)
    with pytest.raises(ValueError):
        Disorder(id="Bad Id", name="Something")
    with pytest.raises(GalleryError, match="already in the catalogue"):
        gallery.add_disorders([catalogue()[0]])
    with pytest.raises(GalleryError, match="already used"):
        gallery.add_disorders([Disorder(id="other", name="dysplasia 0, g0-related")])
    assert [d.id for d in gallery.disorders()] == ["d0", "d1", "d2", "d3"]
    assert gallery.disorders()[1].genes == ["G1"] and gallery.disorders()[1].nosology_revision == 2023


def test_add_validates_everything_before_writing(gallery: Gallery) -> None:
    cases, _ = gallery_cases(4)
    before = gallery.generation
    bad = [*cases[:2], NewCase(np.ones(DIM, np.float32), "M", 10, "d0")]
    with pytest.raises(GalleryError, match="unit length"):
        gallery.add_cases(bad, "fp-a")
    with pytest.raises(GalleryError, match="sex must be M or F"):
        gallery.add_cases([NewCase(cases[0].embedding, "X", 10, "d0")], "fp-a")
    with pytest.raises(GalleryError, match="not in the catalogue"):
        gallery.add_cases([*cases[:1], NewCase(cases[1].embedding, "M", 10, "no_such_disorder")], "fp-a")
    with pytest.raises(GalleryError, match="model"):
        gallery.add_cases(cases, "fp-b")
    assert gallery.generation == before and gallery.cases().empty and gallery.vectors.ntotal == 0
    assert gallery.images.digests() == set()  # the refused batch left no images behind
    gallery.add_cases(cases, "fp-a")
    with pytest.raises(GalleryError, match="already in the gallery"):
        gallery.add_cases(cases[:1], "fp-a")
    assert len(gallery.cases()) == 4


def test_names_resolve_and_search_finds_the_cluster(gallery: Gallery) -> None:
    cases, centres = gallery_cases(40)
    cases[0].disorder = "Dysplasia 0, G0-related"  # by name, any case
    gallery.add_cases(cases, "fp-a")
    hits = gallery.search(unit(centres[2]), 5)
    table = gallery.cases().set_index("row")
    assert all(table.at[h.row, "disorder"] == "d2" for h in hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    only_b = gallery.search(unit(centres[2]), 40, Filters(source="site-b", sex="F"))
    assert only_b and all(table.at[h.row, "source"] == "site-b" and table.at[h.row, "sex"] == "F" for h in only_b)


def test_remove_deletes_vectors_metadata_and_images(gallery: Gallery) -> None:
    cases, _ = gallery_cases(10)
    ids = gallery.add_cases(cases, "fp-a")
    victim = gallery.cases().set_index("case_id").loc[ids[3]]
    gallery.remove_case(ids[3])
    assert ids[3] not in set(gallery.cases()["case_id"])
    assert int(victim["row"]) not in set(gallery.vectors.ids().tolist()) and gallery.vectors.ntotal == 9
    assert victim["image_sha256"] not in gallery.images.digests()
    with sqlite3.connect(gallery.path / "gallery.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings WHERE case_row = ?", (int(victim["row"]),)).fetchone()[0] == 0
    with pytest.raises(GalleryError, match="no case"):
        gallery.remove_case(ids[3])
    reopened = Gallery.open(gallery.path)
    assert reopened.vectors.ntotal == 9 and int(victim["row"]) not in set(reopened.vectors.ids().tolist())
    assert [a["action"] for a in reopened.audit_log()][:2] == ["remove_case", "add_cases"]


def test_relabel_and_stats(gallery: Gallery) -> None:
    cases, _ = gallery_cases(8)
    ids = gallery.add_cases(cases, "fp-a")
    gallery.relabel(ids[0], "d3", "g3")
    row = gallery.cases().set_index("case_id").loc[ids[0]]
    assert row["disorder"] == "d3" and row["gene"] == "G3"
    stats = gallery.stats()
    assert stats.cases == 8 and stats.by_disorder["d3"] == 3 and stats.index_vectors == 8 and stats.image_bytes > 0
    with pytest.raises(GalleryError, match="not in the catalogue"):
        gallery.relabel(ids[0], "nope")


def test_other_process_writes_are_seen_by_an_open_reader(gallery: Gallery) -> None:
    reader = Gallery.open(gallery.path)
    assert reader.vectors.ntotal == 0
    cases, centres = gallery_cases(12)
    gallery.add_cases(cases, "fp-a")
    assert len(reader.search(unit(centres[1]), 20)) == 12  # caught up from SQLite on search
    reader.close()


def test_stale_or_damaged_index_file_is_repaired_from_sqlite(gallery: Gallery) -> None:
    cases, _ = gallery_cases(12)
    gallery.add_cases(cases[:6], "fp-a")
    old_file = next(gallery.path.glob("index.e*.faiss"))
    saved = old_file.read_bytes()
    gallery.add_cases(cases[6:], "fp-a")
    for f in gallery.path.glob("index.e*.faiss"):
        f.unlink()
    old_file.write_bytes(saved)  # as if we crashed after the commit, before the index save
    assert Gallery.open(gallery.path).vectors.ntotal == 12
    old_file.write_bytes(b"garbage")
    assert Gallery.open(gallery.path).vectors.ntotal == 12


def _index_file_generation(path: Path) -> int:
    (only,) = path.glob("index.e*.g*.faiss")
    return int(only.name.split(".g")[1].split(".")[0])


def test_small_galleries_save_the_index_after_every_write(gallery: Gallery) -> None:
    cases, _ = gallery_cases(6)
    for case in cases:
        gallery.add_cases([case], "fp-a")
        assert gallery.unsaved_changes() == 0 and _index_file_generation(gallery.path) == gallery.generation


def test_large_galleries_defer_index_saves_and_lose_nothing(gallery: Gallery) -> None:
    """With the policy of a large gallery: saves wait for 25% unsaved changes; other openers catch up; close() saves."""
    gallery.save_policy = IndexSavePolicy(always_below_vectors=0, max_unsaved_fraction=0.25)
    cases, centres = gallery_cases(40)
    gallery.add_cases(cases[:20], "fp-a")  # no file covers them yet: saved
    assert gallery.unsaved_changes() == 0
    for i, case in enumerate(cases[20:24]):  # 1..4 unsaved, under 25% of 21..24
        gallery.add_cases([case], "fp-a")
        assert gallery.unsaved_changes() == i + 1
    gallery.remove_case(cases[0].case_id)
    assert gallery.unsaved_changes() == 5  # 5 < 0.25 * 23
    stale = _index_file_generation(gallery.path)
    assert stale < gallery.generation
    gallery.add_cases([cases[24]], "fp-a")  # 6 >= 0.25 * 24: saved
    assert gallery.unsaved_changes() == 0 and _index_file_generation(gallery.path) == gallery.generation
    gallery.add_cases(cases[25:27], "fp-a")
    other = Gallery.open(gallery.path)  # loads the lagging file and adds what SQLite has since
    assert _index_file_generation(gallery.path) < gallery.generation
    assert sorted(other.vectors.ids().tolist()) == sorted(gallery.vectors.ids().tolist()) == sorted(gallery.cases()["row"].tolist())
    query_vector = unit(centres[2])
    assert [h.row for h in other.search(query_vector, 10)] == [h.row for h in gallery.search(query_vector, 10)]
    other.close()  # a reader that wrote nothing leaves the file alone
    assert _index_file_generation(gallery.path) < gallery.generation
    gallery.close()  # the writer saves what it deferred
    reopened = Gallery.open(gallery.path)
    assert reopened.unsaved_changes() == 0 and reopened.vectors.ntotal == 26
    reopened.close()
    with pytest.raises(ValueError, match="max_unsaved_fraction"):
        IndexSavePolicy(max_unsaved_fraction=0)


def test_reembed_swaps_model_atomically(gallery: Gallery) -> None:
    cases, _ = gallery_cases(6)
    gallery.add_cases(cases, "fp-a")
    rng = np.random.default_rng(1)

    def new_model(items: list[tuple[np.ndarray, str]]) -> np.ndarray:
        assert all(p.dtype == np.uint16 for p, _ in items)
        return np.stack([unit(rng.normal(size=8)) for _ in items])

    assert gallery.reembed(new_model, "fp-b", 8) == 6
    assert gallery.model_fingerprint == "fp-b" and gallery.dim == 8 and gallery.vectors.ntotal == 6
    with pytest.raises(GalleryError, match="model"):
        gallery.add_cases(cases[:1], "fp-a")
    assert Gallery.open(gallery.path).vectors.dim == 8


def test_reembed_refuses_cases_without_images(gallery: Gallery) -> None:
    cases, _ = gallery_cases(3, pixels=False)
    gallery.add_cases(cases, "fp-a")
    with pytest.raises(GalleryError, match="no stored image"):
        gallery.reembed(lambda items: np.zeros((len(items), DIM)), "fp-b", DIM)
    assert gallery.model_fingerprint == "fp-a"


def test_snapshot_round_trip_and_tampering(gallery: Gallery, tmp_path: Path) -> None:
    cases, centres = gallery_cases(10)
    gallery.add_cases(cases, "fp-a")
    snapshot = gallery.export_snapshot(tmp_path / "snap.tar")
    copy = Gallery.import_snapshot(snapshot, tmp_path / "copy")
    assert copy.vectors.ntotal == 10 and copy.cases()["case_id"].tolist() == gallery.cases()["case_id"].tolist()
    assert [h.row for h in copy.search(unit(centres[0]), 3)] == [h.row for h in gallery.search(unit(centres[0]), 3)]
    with pytest.raises(GalleryError, match="exists"):
        Gallery.import_snapshot(snapshot, tmp_path / "copy")
    # an altered image is caught and nothing is left behind
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(snapshot) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if (
                member.name.startswith("images/")
                and member.name.endswith(".png")
                and not getattr(test_snapshot_round_trip_and_tampering, "done", False)
            ):
                import cv2

                pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                pixels[0, 0] ^= 1
                data = cv2.imencode(".png", pixels)[1].tobytes()
                test_snapshot_round_trip_and_tampering.done = True
            member.size = len(data)
            import io

            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(Exception, match="does not match its digest"):
        Gallery.import_snapshot(tampered, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(GalleryError, match="not a gallery snapshot"):
        Gallery.import_snapshot(tmp_path / "junk.tar", tmp_path / "junk")


def test_ranking_nearest_case_per_disorder_with_evidence_and_genes(gallery: Gallery) -> None:
    cases, centres = gallery_cases(80, spread=0.3)
    gallery.add_cases(cases, "fp-a")
    result = query(gallery, unit(centres[3]), top_k=5, rule=RankingRule.NEAREST)
    assert next(d.label for d in result.disorders) == "d3" and len(result.disorders) == 4
    assert [d.rank for d in result.disorders] == [1, 2, 3, 4]
    top = result.disorders[0]
    evidence_rows = gallery.cases().set_index("case_id").loc[top.nearest_cases]
    assert (evidence_rows["disorder"] == "d3").all() and top.cases_in_gallery == 20
    assert top.score == pytest.approx(result.cases[0].similarity)
    assert result.genes[0].label == "G3" and result.genes[0].nearest_cases[0] == top.nearest_cases[0]
    assert len(result.cases) == 5 and result.searched_cases == 80
    # filters restrict the evidence and the counts
    girls = query(gallery, unit(centres[3]), top_k=5, filters=Filters(sex="F"))  # odd cases: d1 and d3
    assert all(c.sex == "F" for c in girls.cases) and {d.label for d in girls.disorders} == {"d1", "d3"}
    assert girls.disorders[0].label == "d3" and girls.disorders[0].cases_in_gallery == 20
    site_b = query(gallery, unit(centres[3]), top_k=5, filters=Filters(source="site-b", disorders=("d3",)))
    assert site_b.disorders[0].cases_in_gallery == 7 and all(c.source == "site-b" for c in site_b.cases)


def test_calibration_is_informative_and_abstains_far_from_everything(gallery: Gallery) -> None:
    cases, centres = gallery_cases(160, spread=0.35)
    gallery.add_cases(cases, "fp-a")
    calibration = calibration_for(gallery)
    assert calibration is not None and calibration.queries == 160
    assert calibration.expected_calibration_error < 0.1 and calibration.reliability
    near = query(gallery, unit(centres[1]), calibration=calibration)
    assert not near.no_close_match and near.disorders[0].probability > 0.8
    lo, hi = near.disorders[0].interval
    assert lo <= near.disorders[0].probability <= hi
    far_vector = unit(np.linalg.svd(centres, full_matrices=True)[2][-1])  # orthogonal to every cluster centre
    far = query(gallery, far_vector, calibration=calibration)
    assert far.no_close_match
    # far from every case: its disorder is probably not in the gallery, so no disorder is likely;
    # each probability is the conditional one times that factor, near the clusters about 1
    assert far.in_gallery_probability < 0.05 < 0.9 < near.in_gallery_probability
    assert max(d.probability for d in far.disorders if d.probability is not None) < 0.05
    # the service reads one query's evidence from its searched cases; the evaluation reads it from the
    # whole similarity matrix: the same numbers (the gallery is smaller than the search depth)
    table = gallery.cases()
    labels = LabelIndex.of(table["disorder"].astype(str).tolist())
    similarities = gallery.vectors_of(table["row"].tolist()) @ far_vector.astype(np.float32)
    conditional = calibration.probabilities(Neighbourhood.from_similarities(similarities[None, :], labels, calibration.rule))[0]
    top = labels.names.index(far.disorders[0].label)
    assert far.disorders[0].probability == pytest.approx(conditional[top] * far.in_gallery_probability, rel=1e-3)
    # cached until the gallery changes enough
    assert calibration_for(gallery).to_json() == calibration.to_json()
    more, _ = gallery_cases(40, seed=9, spread=0.35)
    gallery.add_cases(more, "fp-a")
    assert calibration_for(gallery).queries == 200
