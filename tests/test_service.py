"""The HTTP API in-process (FastAPI's TestClient over the real app, model and gallery).

Security (401 without a key on every route, 403 for the wrong role, no path traversal,
deleted cases gone everywhere), the bad-input table (each answered with the right status
and a problem+json message), and the analyse -> add case -> relabel -> delete flow.
"""

from __future__ import annotations

import ast
import io
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import copy_of_template
from fastapi.testclient import TestClient
from PIL import Image

from api.keys import KeyStore
from api.service import create_app
from api.settings import ServiceSettings
from index.store import Gallery, IndexSavePolicy
from matcher.checkpoint import BUNDLED_MODEL_DIR
from matcher.io import read_radiograph

DISORDERS = ("unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia")
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def service(gallery_template: tuple, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("service")
    gallery, _, images = copy_of_template(gallery_template, root)
    keys = KeyStore(gallery / "keys.sqlite")
    secrets = {role: keys.create(role, f"test {role}")[0] for role in ("reader", "curator", "admin")}
    app = create_app(ServiceSettings(gallery=gallery, max_upload_bytes=3 * 2**20))
    return {"client": TestClient(app), "keys": secrets, "images": images, "root": root}


def auth(service: dict, role: str) -> dict:
    return {"Authorization": f"Bearer {service['keys'][role]}"}


def analyse(service: dict, path: Path, role: str = "reader", **form) -> object:
    data = {"sex": "F", "age_months": "96", **{k: str(v) for k, v in form.items()}}
    return service["client"].post(
        "/api/v1/analyses", headers=auth(service, role), files={"image": (path.name, path.read_bytes())}, data=data
    )


def is_problem(response, status: int, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    text = (body["detail"] + " " + " ".join(body.get("reasons", []))).lower()
    for word in words:
        assert word.lower() in text, (word, body)


def test_every_route_but_health_needs_a_key(service: dict) -> None:
    client = service["client"]
    assert client.get("/api/v1/health").json()["status"] == "ok"
    checked = 0
    for path, operations in client.get("/openapi.json").json()["paths"].items():  # every API route is documented
        if not path.startswith("/api/v1/") or path == "/api/v1/health":
            continue
        concrete = path.replace("{case_id}", "syn-000001").replace("{analysis_id}", "abc")
        for method in operations:
            is_problem(client.request(method, concrete), 401, "API key")
            is_problem(client.request(method, concrete, headers={"Authorization": "Bearer b2g_wrong"}), 401, "not valid")
            checked += 1
    assert checked >= 14


def test_roles_are_enforced(service: dict) -> None:
    client = service["client"]
    assert client.get("/api/v1/me", headers=auth(service, "reader")).json()["role"] == "reader"
    is_problem(
        client.post("/api/v1/cases", headers=auth(service, "reader"), json={"analysis_id": "x", "disorder": "achondroplasia"}),
        403,
        "curator",
    )
    is_problem(client.delete("/api/v1/cases/syn-000001", headers=auth(service, "reader")), 403, "curator")
    is_problem(client.post("/api/v1/disorders", headers=auth(service, "reader"), json={"id": "x1", "name": "X dysplasia"}), 403, "curator")
    is_problem(client.get("/api/v1/audit", headers=auth(service, "curator")), 403, "admin")
    assert client.get("/api/v1/audit", headers=auth(service, "admin")).status_code == 200


def test_analysis_returns_ranking_bone_age_and_images(service: dict) -> None:
    response = analyse(service, service["images"][0], top=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] is True and 0 < body["bone_age_months"] < 240 and body["sex"] == "F"
    assert body["bone_age_deviation_months"] == pytest.approx(body["bone_age_months"] - 96, abs=0.05)
    # girls' SD at 96 months in the bundled Brush Foundation table is 10.23 months
    assert body["bone_age_z"] == pytest.approx(body["bone_age_deviation_months"] / 10.23, abs=0.01) and "Brush" in body["bone_age_z_note"]
    ranking = body["ranking"]
    assert len(ranking["cases"]) == 3 and ranking["disorders"][0]["evidence"] and "not a diagnosis" in ranking["disclaimer"]
    for link in (body["links"]["thumbnail"], body["links"]["overlay"]):
        image = service["client"].get(link, headers=auth(service, "reader"))
        assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    assert [p["index"] for p in body["landmarks"]] == list(range(37)) and body["landmarks"][20]["name"] == "thumb tip"
    assert [b["bone"] for b in body["bones"]][:5] == ["MC1", "MC2", "MC3", "MC4", "MC5"] and len(body["bones"]) == 19


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _analysis(files: dict, form: dict | None = None, key: bool = True) -> Callable[[dict], httpx.Response]:
    """A request to POST /analyses, to be sent against the module's service."""

    def send(service: dict) -> httpx.Response:
        headers = auth(service, "reader") if key else {}
        return service["client"].post("/api/v1/analyses", headers=headers, files=files, data=form or {"sex": "F", "age_months": "96"})

    return send


def _real_film(service: dict) -> bytes:
    return service["images"][0].read_bytes()


def _with_film(make: Callable[[bytes], dict], form: dict | None = None, key: bool = True) -> Callable[[dict], httpx.Response]:
    """An analysis request whose files are made from a real film of the module's cohort."""
    return lambda service: _analysis(make(_real_film(service)), form, key)(service)


def _reader_json(method: str, path: str, body: object = None) -> Callable[[dict], httpx.Response]:
    return lambda service: service["client"].request(method, path, headers=auth(service, "reader"), json=body)


def _astronaut() -> dict:
    from skimage import data

    return {"image": ("photo.png", _png(data.astronaut()))}


BAD_INPUTS = [
    pytest.param(_analysis({"image": ("empty.png", b"")}), 422, ("empty",), id="empty file"),
    pytest.param(_with_film(lambda real: {"image": ("cut.png", real[: len(real) // 3])}), 422, (), id="truncated PNG"),
    pytest.param(_analysis({"image": ("notes.txt", b"patient notes, not an image")}), 422, ("not",), id="text file"),
    pytest.param(_analysis({"image": ("huge.png", b"\x89PNG" + bytes(4 * 2**20))}), 413, ("MB",), id="over the byte cap"),
    pytest.param(lambda service: _analysis(_astronaut())(service), 422, ("quality check",), id="a photograph"),
    pytest.param(
        _with_film(lambda real: {"image": ("hand.png", real)}, {"sex": "X", "age_months": "ten"}), 422, ("sex", "age_months"), id="bad form"
    ),
    pytest.param(_analysis({}, {"sex": "F"}), 422, ("image",), id="no image"),
    pytest.param(_with_film(lambda real: {"image": ("hand.png", real)}, key=False), 401, ("API key",), id="no key"),
    pytest.param(_reader_json("POST", "/api/v1/queries", {"embedding": [0.1, 0.2]}), 422, ("numbers",), id="short embedding"),
    pytest.param(_reader_json("POST", "/api/v1/queries", {"embedding": [1.0] * 256}), 422, ("unit-length",), id="unnormalised embedding"),
    pytest.param(_reader_json("POST", "/api/v1/queries", {"embedding": "abc"}), 422, ("embedding",), id="embedding not a list"),
    pytest.param(_reader_json("GET", "/api/v1/cases?limit=0"), 422, ("limit",), id="limit 0"),
    pytest.param(_reader_json("GET", "/api/v1/nowhere"), 404, (), id="unknown route"),
]


@pytest.mark.parametrize(("send", "status", "words"), BAD_INPUTS)
def test_bad_input_table(service: dict, send: Callable[[dict], httpx.Response], status: int, words: tuple[str, ...]) -> None:
    is_problem(send(service), status, *words)


def test_path_traversal_is_refused(service: dict) -> None:
    client = service["client"]
    for path in (
        "/api/v1/cases/..%2F..%2Fgallery.sqlite/thumbnail.png",
        "/api/v1/cases/../../etc/passwd/thumbnail.png",
        "/api/v1/analyses/..%2F..%2Fkeys.sqlite/overlay.png",
        "/static/../../pyproject.toml",
        "/static/..%2F..%2Fkeys.py",
        "/static/%2e%2e/%2e%2e/service.py",
    ):
        response = client.get(path, headers=auth(service, "admin"))
        assert response.status_code in (404, 422), (path, response.status_code)
        assert b"b2g_" not in response.content and b"SQLite" not in response.content and b"def " not in response.content


def test_add_relabel_and_delete_flow_and_deleted_case_is_gone_everywhere(service: dict) -> None:
    client = service["client"]
    body = analyse(service, service["images"][1], age_months=130).json()
    added = client.post(
        "/api/v1/cases",
        headers=auth(service, "curator"),
        json={
            "analysis_id": body["analysis_id"],
            "disorder": "Achondroplasia, FGFR3-related",
            "gene": "fgfr3",
            "patient_id": "pseudo-1",
            "hpo": ["HP:0004322", "hp:0004060"],
            "hpo_excluded": ["HP:0001156"],
        },
    )
    assert added.status_code == 201, added.text
    case = added.json()
    assert case["disorder"] == "achondroplasia" and case["gene"] == "FGFR3" and case["age_months"] == 130
    assert case["hpo"] == ["HP:0004060", "HP:0004322"] and case["hpo_excluded"] == ["HP:0001156"]
    packet = client.get(f"/api/v1/cases/{case['case_id']}/phenopacket", headers=auth(service, "reader")).json()
    assert packet["interpretations"][0]["diagnosis"]["disease"]["id"] == "OMIM:100800" and len(packet["phenotypicFeatures"]) == 3
    wrong = {"analysis_id": body["analysis_id"], "disorder": "achondroplasia", "hpo": ["HP:0000057"]}
    is_problem(client.post("/api/v1/cases", headers=auth(service, "curator"), json=wrong), 422, "use HP:0008665")
    case_id = case["case_id"]
    assert client.get(f"/api/v1/cases/{case_id}", headers=auth(service, "reader")).json()["patient_id"] == "pseudo-1"
    # the same image now finds itself as the nearest case
    again = analyse(service, service["images"][1]).json()
    assert again["ranking"]["cases"][0]["case_id"] == case_id and again["ranking"]["cases"][0]["similarity"] > 0.999
    relabelled = client.patch(
        f"/api/v1/cases/{case_id}", headers=auth(service, "curator"), json={"disorder": "brachydactyly_e", "gene": "PTHLH"}
    )
    assert relabelled.json()["disorder"] == "brachydactyly_e"
    is_problem(client.patch(f"/api/v1/cases/{case_id}", headers=auth(service, "curator"), json={"disorder": "nonsense"}), 422, "catalogue")
    assert client.delete(f"/api/v1/cases/{case_id}", headers=auth(service, "curator")).json() == {"deleted": case_id}
    is_problem(client.get(f"/api/v1/cases/{case_id}", headers=auth(service, "reader")), 404)
    is_problem(client.get(f"/api/v1/cases/{case_id}/thumbnail.png", headers=auth(service, "reader")), 404)
    listed = client.get("/api/v1/cases?limit=1000", headers=auth(service, "reader")).json()
    assert case_id not in {c["case_id"] for c in listed["cases"]}
    after = analyse(service, service["images"][1]).json()
    ids = {c["case_id"] for c in after["ranking"]["cases"]} | {e for d in after["ranking"]["disorders"] for e in d["evidence"]}
    assert case_id not in ids
    is_problem(client.delete(f"/api/v1/cases/{case_id}", headers=auth(service, "curator")), 404)
    is_problem(
        client.post("/api/v1/cases", headers=auth(service, "curator"), json={"analysis_id": "expired", "disorder": "achondroplasia"}),
        404,
        "analyse",
    )


def test_embedding_only_query_and_disorder_catalogue(service: dict) -> None:
    client = service["client"]
    gallery = client.app.state.runtime.gallery
    boy = gallery.cases().query("sex == 'M'").iloc[0]
    embedding = gallery.vectors_of([int(boy["row"])])[0]

    def ranked(sex: str) -> dict:
        body = {"embedding": embedding.tolist(), "top": 2, "sex": sex}
        response = client.post("/api/v1/queries", headers=auth(service, "reader"), json=body)
        assert response.status_code == 200, response.text
        return response.json()

    boys, girls = ranked("M"), ranked("F")
    assert [c["sex"] for c in boys["cases"]] == ["M", "M"] and [c["sex"] for c in girls["cases"]] == ["F", "F"]
    assert boys["cases"][0]["case_id"] == boy["case_id"] and boys["cases"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert boy["case_id"] not in {c["case_id"] for c in girls["cases"]} and girls["cases"][0]["similarity"] < 0.9999
    assert boys["disorders"][0]["label"] == boy["disorder"]  # its own case ranks its disorder first
    girl = gallery.cases().query("sex == 'F'").iloc[0]
    both = [embedding.tolist(), gallery.vectors_of([int(girl["row"])])[0].tolist()]
    pair = client.post("/api/v1/queries", headers=auth(service, "reader"), json={"embeddings": both, "top": 2})
    assert pair.status_code == 200, pair.text
    combined = (embedding + gallery.vectors_of([int(girl["row"])])[0]) / 2
    combined /= np.linalg.norm(combined)
    nearest = pair.json()["cases"][0]
    row = int(gallery.cases().set_index("case_id").at[nearest["case_id"], "row"])
    assert nearest["similarity"] == pytest.approx(
        float(gallery.vectors_of([row])[0] @ combined), abs=1e-4
    )  # the combined point was searched
    is_problem(
        client.post("/api/v1/queries", headers=auth(service, "reader"), json={"embeddings": [both[0], [1.0] * 256]}), 422, "Embedding 2"
    )
    is_problem(
        client.post("/api/v1/queries", headers=auth(service, "reader"), json={"embedding": both[0], "embeddings": both}), 422, "not both"
    )
    is_problem(client.post("/api/v1/queries", headers=auth(service, "reader"), json={"top": 2}), 422, "neither")
    with_terms = {"embedding": embedding.tolist(), "top": 2, "hpo": ["HP:0008905", "HP:0004060"], "candidate_genes": ["FGFR3"]}
    combined = client.post("/api/v1/queries", headers=auth(service, "reader"), json=with_terms)
    assert combined.status_code == 200, combined.text
    entry = next(d for d in combined.json()["disorders"] if d["label"] == "achondroplasia")
    assert entry["sources"]["gene_hits"] == ["FGFR3"] and entry["sources"]["contributions"]["phenotype"] > 0
    is_problem(
        client.post("/api/v1/queries", headers=auth(service, "reader"), json={**with_terms, "hpo": ["HP:9999999"]}), 422, "not in the HPO"
    )
    packet = client.post("/api/v1/queries/phenopacket", headers=auth(service, "reader"), json=with_terms)
    assert packet.status_code == 200, packet.text
    first = packet.json()["interpretations"][0]
    assert first["progressStatus"] == "IN_PROGRESS" and first["id"].endswith("rank-1") and "combined probability" in first["summary"]
    assert {f["type"]["id"] for f in packet.json()["phenotypicFeatures"]} == {"HP:0008905", "HP:0004060"}
    found = client.get("/api/v1/phenotypes?search=trident", headers=auth(service, "reader")).json()
    assert {"id": "HP:0004060", "name": "Trident hand"} in found
    assert client.get("/api/v1/phenotypes?search=hp:0004322", headers=auth(service, "reader")).json() == [
        {"id": "HP:0004322", "name": "Short stature"}
    ]
    is_problem(client.get("/api/v1/phenotypes?search=t", headers=auth(service, "reader")), 422, "search")
    analysed = analyse(service, service["images"][0], hpo="HP:0008905, HP:0004060", candidate_genes="FGFR3\nTTN")
    assert analysed.status_code == 200, analysed.text
    assert all("sources" in d for d in analysed.json()["ranking"]["disorders"])
    is_problem(analyse(service, service["images"][0], candidate_genes="FGFR3\nc.1138G>A"), 422, "not gene symbols")
    created = client.post(
        "/api/v1/disorders",
        headers=auth(service, "curator"),
        json={"id": "novel_dysplasia", "name": "Novel dysplasia, XYZ1-related", "genes": ["XYZ1"]},
    )
    assert created.status_code == 201 and created.json()["cases"] == 0 and created.json()["phenotypes"] == []
    obsolete = {"id": "other_dysplasia", "name": "Other dysplasia", "phenotypes": ["HP:0000057"]}
    is_problem(client.post("/api/v1/disorders", headers=auth(service, "curator"), json=obsolete), 422, "use HP:0008665")
    listed = client.get("/api/v1/disorders", headers=auth(service, "reader")).json()
    assert "HP:0004060" in next(d for d in listed if d["id"] == "achondroplasia")["phenotypes"]
    curator = auth(service, "curator")
    edited = client.patch("/api/v1/disorders/novel_dysplasia/phenotypes", headers=curator, json={"add": ["HP:0004322", "HP:0001156"]})
    assert edited.status_code == 200 and edited.json()["phenotypes"] == ["HP:0001156", "HP:0004322"], edited.text
    edited = client.patch("/api/v1/disorders/novel_dysplasia/phenotypes", headers=curator, json={"remove": ["HP:0001156"]})
    assert edited.json()["phenotypes"] == ["HP:0004322"]
    is_problem(
        client.patch("/api/v1/disorders/novel_dysplasia/phenotypes", headers=curator, json={"add": ["HP:0000057"]}), 422, "HP:0008665"
    )
    is_problem(client.patch("/api/v1/disorders/nope/phenotypes", headers=curator, json={"add": []}), 404, "catalogue")
    is_problem(client.patch("/api/v1/disorders/novel_dysplasia/phenotypes", headers=auth(service, "reader"), json={"add": []}), 403)
    is_problem(
        client.post("/api/v1/disorders", headers=auth(service, "curator"), json={"id": "novel_dysplasia", "name": "Other"}), 422, "already"
    )
    assert any(d["id"] == "novel_dysplasia" for d in client.get("/api/v1/disorders", headers=auth(service, "reader")).json())


def test_web_page_is_served_without_secrets(service: dict) -> None:
    client = service["client"]
    page = client.get("/")
    assert page.status_code == 200 and "Bone2Gene matcher" in page.text and "not a diagnosis" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "b2g_" not in page.text.replace("<code>b2g_</code>", "")


HEAVY_AT_START_UP = {"umap", "numba", "pynndescent", "matplotlib"}
OUR_PACKAGES = {"api", "matcher", "index", "training"}


def _imported_at_import_time(tree: ast.AST) -> list[str]:
    """Modules a file imports when it is itself imported: module and class bodies, not function
    bodies (the lazy imports) and not `if TYPE_CHECKING:` blocks."""
    names: list[str] = []
    pending = list(ast.iter_child_nodes(tree))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        pending.extend(ast.iter_child_nodes(node))
    return names


def _start_up_imports(*roots: str) -> dict[str, str]:
    """Every module imported by importing `roots`, as far as our own files say: name -> who imports it."""
    repo = Path(__file__).resolve().parents[1]
    seen: dict[str, str] = {root: "(start)" for root in roots}
    queue = list(roots)
    while queue:
        name = queue.pop()
        parts = name.split(".")
        path = repo.joinpath(*parts).with_suffix(".py")
        path = path if path.is_file() else repo.joinpath(*parts, "__init__.py")
        if parts[0] not in OUR_PACKAGES or not path.is_file():
            continue
        for imported in _imported_at_import_time(ast.parse(path.read_text())):
            if imported not in seen:
                seen[imported] = name
                queue.append(imported)
    return seen


def test_heavy_libraries_stay_out_of_start_up_imports() -> None:
    """Fast form of the check below: no module the service or the CLI imports at start-up imports
    UMAP, numba or matplotlib at its top level (a map or a figure imports them when needed)."""
    imported = _start_up_imports("api.service", "api.cli")
    assert "api.routes.analyses" in imported and "torch" in imported  # the walk follows our imports
    heavy = {name: by for name, by in imported.items() if name.split(".")[0] in HEAVY_AT_START_UP}
    assert not heavy, f"imported at start-up (module: imported by): {heavy}"


@pytest.mark.slow
def test_heavy_libraries_stay_out_of_start_up() -> None:
    """The real thing in a fresh interpreter: third-party imports included."""
    import subprocess
    import sys

    probe = "import sys, api.service, api.cli; print(sorted(m for m in ('umap', 'numba', 'matplotlib') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_recent_analyses_are_bounded_in_memory_and_keep_no_attention_array(service: dict) -> None:
    """Hospital radiographs are large: the analyses kept for overlays and add-to-gallery must not grow without bound."""
    bound = 2**20
    runtime = create_app(ServiceSettings(gallery=service["root"] / "gallery", analyses_memory_bytes=bound)).state.runtime
    radiograph = read_radiograph(service["images"][0].read_bytes())
    first_id, first = runtime.analyze(radiograph, "F", 96.0, True)
    assert first.analysis.attention is None and first.overlay_png is None  # drawn when first asked for
    before = first.nbytes
    png = runtime.overlay(first_id, first)
    assert png.startswith(b"\x89PNG") and runtime.overlay(first_id, first) is png  # drawn once, then kept
    assert runtime.analyses_memory[1] == first.nbytes == before + len(png) >= radiograph.pixels.nbytes
    ids = [first_id] + [runtime.analyze(radiograph, "F", 96.0, False)[0] for _ in range(bound // first.nbytes + 1)]
    count, held = runtime.analyses_memory
    kept = [runtime.analysis(i) for i in ids if runtime.analysis(i) is not None]
    assert 1 <= count == len(kept) < len(ids) and held == sum(s.nbytes for s in kept) <= bound
    assert runtime.analysis(first_id) is None and runtime.analysis(ids[-1]) is not None  # the oldest go first


def test_shutdown_saves_the_index_file_a_large_gallery_deferred(service: dict, tmp_path: Path) -> None:
    shutil.copytree(service["root"] / "gallery", tmp_path / "gallery")
    app = create_app(ServiceSettings(gallery=tmp_path / "gallery"))
    gallery = app.state.runtime.gallery
    gallery.save_policy = IndexSavePolicy(always_below_vectors=0, max_unsaved_fraction=1.0)  # as in a large gallery
    path = service["images"][3]
    with TestClient(app) as client:  # runs the app's lifespan, as uvicorn does
        analysis = client.post(
            "/api/v1/analyses",
            headers=auth(service, "reader"),
            files={"image": (path.name, path.read_bytes())},
            data={"sex": "M", "age_months": "100"},
        )
        added = client.post(
            "/api/v1/cases",
            headers=auth(service, "curator"),
            json={"analysis_id": analysis.json()["analysis_id"], "disorder": "achondroplasia"},
        )
        assert added.status_code == 201, added.text
        assert gallery.unsaved_changes() == 1
    reopened = Gallery.open(tmp_path / "gallery")
    assert reopened.unsaved_changes() == 0 and added.json()["case_id"] in set(reopened.cases()["case_id"])
    reopened.close()


def test_cohort_map_answers_at_once_after_changes_and_refits_in_the_background(service: dict, tmp_path: Path) -> None:
    shutil.copytree(service["root"] / "gallery", tmp_path / "gallery")
    client = TestClient(create_app(ServiceSettings(gallery=tmp_path / "gallery")))
    reader, curator = auth(service, "reader"), auth(service, "curator")
    first = client.get("/api/v1/cohort-map", headers=reader).json()
    assert first["placed_by_transform"] == 0 and first["fitted_generation"] == first["generation"]
    fitted = {p["case_id"]: (p["x"], p["y"]) for p in first["points"]}
    path = service["images"][4]
    analysis = client.post(
        "/api/v1/analyses", headers=reader, files={"image": (path.name, path.read_bytes())}, data={"sex": "F", "age_months": "90"}
    )
    new_id = client.post(
        "/api/v1/cases", headers=curator, json={"analysis_id": analysis.json()["analysis_id"], "disorder": "achondroplasia"}
    ).json()["case_id"]
    removed_id = first["points"][0]["case_id"]
    assert client.delete(f"/api/v1/cases/{removed_id}", headers=curator).status_code == 200
    # the last fit, brought up to date, without waiting; the analysis is placed on that same map
    second = client.get("/api/v1/cohort-map", headers=reader, params={"analysis_id": analysis.json()["analysis_id"]}).json()
    points = {p["case_id"]: (p["x"], p["y"]) for p in second["points"]}
    assert second["generation"] > first["generation"] and second["fitted_generation"] == first["generation"]
    assert second["placed_by_transform"] == 1 and new_id in points and removed_id not in points
    assert all(points[c] == fitted[c] for c in points if c != new_id)  # kept cases stay where they were
    assert np.allclose(second["query_position"], points[new_id], atol=1e-2)  # the new case sits where its radiograph lands
    deadline = time.monotonic() + 240
    while second["placed_by_transform"] or second["fitted_generation"] != second["generation"]:
        assert time.monotonic() < deadline, "the background refit never replaced the map"
        time.sleep(0.5)
        second = client.get("/api/v1/cohort-map", headers=reader).json()
    assert {p["case_id"] for p in second["points"]} == set(points)


def test_inference_slots_give_each_request_its_own_model_and_refuse_beyond_the_queue() -> None:
    from api.inference import Busy, InferenceSlots
    from matcher.analysis import AnalysisOptions
    from matcher.checkpoint import load_model

    model, _ = load_model(BUNDLED_MODEL_DIR)
    slots = InferenceSlots(model, AnalysisOptions(), slots=2, queue_limit=0, timeout_s=0.2)
    with slots.analyzer() as first, slots.analyzer() as second:
        assert first.model is not second.model  # a backward pass (attention) never shares a model
        assert first.model.state_dict()["bone_age.fc_boneage.weight"].equal(second.model.state_dict()["bone_age.fc_boneage.weight"])
        with pytest.raises(Busy, match="busy"), slots.analyzer():
            pass
    assert slots.admitted == 0

    queued = InferenceSlots(model, AnalysisOptions(), slots=1, queue_limit=1, timeout_s=0.2)
    outcome: list[str] = []

    def wait_for_a_slot() -> None:
        try:
            with queued.analyzer():
                outcome.append("ran")
        except Busy as exc:
            outcome.append(str(exc))

    with queued.analyzer():
        waiter = threading.Thread(target=wait_for_a_slot)
        waiter.start()
        waiter.join(5)
    assert outcome == ["no analysis slot became free within 0 s"] and queued.admitted == 0
    with queued.analyzer():  # the slot came back
        pass


def test_settings_come_from_the_environment_and_arguments_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("BONE2GENE_GALLERY", str(tmp_path / "g"))
    monkeypatch.setenv("BONE2GENE_INFERENCE_SLOTS", "3")
    settings = ServiceSettings()
    assert (settings.gallery, settings.inference_slots, settings.keys_path) == (tmp_path / "g", 3, tmp_path / "g" / "keys.sqlite")
    assert ServiceSettings(inference_slots=2).inference_slots == 2
    monkeypatch.setenv("BONE2GENE_QUEUE_LIMIT", "-1")
    with pytest.raises(ValidationError, match="queue_limit"):
        ServiceSettings()
    monkeypatch.delenv("BONE2GENE_QUEUE_LIMIT")
    with pytest.raises(ValidationError, match="Extra inputs"):
        ServiceSettings(inference_slot=2)  # a misspelt setting is an error, not ignored


def test_role_checks_are_dependencies_a_test_can_replace(service: dict) -> None:
    from api import deps
    from api.keys import KeyInfo

    client = service["client"]
    assert client.get("/api/v1/audit").status_code == 401
    client.app.dependency_overrides[deps.caller] = lambda: KeyInfo("k-test", "reader", "override", "now")
    try:
        assert client.get("/api/v1/me").json()["label"] == "override"
        is_problem(client.get("/api/v1/audit"), 403, "admin role")
        client.app.dependency_overrides[deps.require_admin] = lambda: KeyInfo("k-test", "admin", "override", "now")
        assert client.get("/api/v1/audit").status_code == 200
    finally:
        client.app.dependency_overrides.clear()
    assert client.get("/api/v1/me").status_code == 401


def test_serve_says_which_setting_is_missing_or_wrong(bone2gene, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BONE2GENE_GALLERY", raising=False)
    missing = bone2gene("serve")
    assert missing.returncode == 2 and "gallery: Field required" in missing.stderr and "BONE2GENE_GALLERY" in missing.stderr
    monkeypatch.setenv("BONE2GENE_INFERENCE_SLOTS", "0")
    wrong = bone2gene("serve", "--gallery", tmp_path)
    assert wrong.returncode == 2 and "inference_slots" in wrong.stderr and not (tmp_path / "keys.sqlite").exists()
