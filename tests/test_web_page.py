"""The web page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium)
against the service on a real uvicorn server on loopback: sign in, upload, result, add case. The
browser talks to the app served from a thread of this process; `bone2gene serve` itself runs as a
subprocess for the test that reads the server's whole log.
Screenshots go to a temporary folder, or to the folder named by BONE2GENE_SCREENSHOTS
(`BONE2GENE_SCREENSHOTS=docs pytest tests/test_web_page.py` refreshes the ones in docs/), so a
test run never changes tracked files. Skips when Chromium or Selenium is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import copy_of_template

from api.keys import KeyStore
from index.store import Gallery

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("BONE2GENE_SCREENSHOTS")
    folder = Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    if process is not None:
        process.kill()
    pytest.fail(f"the service at {url} did not start: {log.read_text()[-2000:] if log else ''}")


@pytest.fixture(scope="module")
def serve_process(cli: list[str], gallery_template: tuple, tmp_path_factory: pytest.TempPathFactory):
    """`bone2gene serve` as a user starts it, on its own gallery copy, logging to a file (a full pipe
    would stall it). Started before the in-process server so that it gets ready (its imports, the
    model) while the browser tests run; the log test, which reads its whole log, comes last."""
    root = tmp_path_factory.mktemp("serve")
    copy_of_template(gallery_template, root)
    key, _ = KeyStore(root / "gallery" / "keys.sqlite").create("curator", "log test")
    port = free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [*cli, "serve", "--gallery", str(root / "gallery"), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, text=True
    )
    yield {"url": f"http://127.0.0.1:{port}", "key": key, "process": process, "root": root, "log": root / "server.log"}
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def server(serve_process: dict, gallery_template: tuple, tmp_path_factory: pytest.TempPathFactory):
    """The app `serve` runs (`run_service`'s `create_app` on settings), served by a real uvicorn in a
    thread of this process, which has already paid for the heavy imports and for the first UMAP
    fit's compilation (a fresh process pays about 25 s for that before its first cohort map)."""
    import threading

    import uvicorn

    from api.service import create_app
    from api.settings import ServiceSettings

    root = tmp_path_factory.mktemp("web")
    _, manifest, images = copy_of_template(gallery_template, root)
    curator, _ = KeyStore(root / "gallery" / "keys.sqlite").create("curator", "browser test")
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(ServiceSettings(gallery=root / "gallery")), port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, name="web-page-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url)
    accepted = {path.name for path in images}
    row = manifest[manifest["image"].map(lambda p: Path(p).name in accepted) & (manifest["disorder"] == "achondroplasia")].iloc[0]
    yield {
        "url": url,
        "key": curator,
        "image": gallery_template[0] / "cohort" / row["image"],
        "sex": row["sex"],
        "age_months": float(row["age_months"]),
        "gallery": root / "gallery",
        "root": root,
    }
    uvicorn_server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 120.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_sign_in_upload_result_and_add_case(server: dict, browser, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server["url"] + "/")
    browser.find_element(By.ID, "key").send_keys("b2g_not-a-key")
    browser.find_element(By.ID, "signin-button").click()
    wait_for(browser, lambda d: "not valid" in d.find_element(By.ID, "signin-error").text)

    key_field = browser.find_element(By.ID, "key")
    key_field.clear()
    key_field.send_keys(server["key"])
    browser.find_element(By.ID, "signin-button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "app").is_displayed())
    assert "curator" in browser.find_element(By.ID, "who").text

    browser.find_element(By.ID, "image").send_keys(str(server["image"]))
    Select(browser.find_element(By.ID, "sex")).select_by_value(server["sex"])
    browser.find_element(By.ID, "age-years").send_keys(str(int(server["age_months"] // 12)))
    browser.find_element(By.ID, "age-extra-months").send_keys(str(int(server["age_months"] % 12)))
    browser.find_element(By.ID, "analyse-button").click()
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "result").is_displayed() and len(d.find_elements(By.CSS_SELECTOR, "#disorders tbody tr")) >= 3,
    )
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('overlay').naturalWidth") > 0)
    assert "years" in browser.find_element(By.ID, "bone-age").text and "months" in browser.find_element(By.ID, "bone-age").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#disorders tbody tr")
    assert rows[0].find_elements(By.TAG_NAME, "td")[0].text == "1"
    calibrated = "%" in rows[0].find_elements(By.TAG_NAME, "td")[4].text  # the probability column
    in_gallery = browser.find_element(By.ID, "in-gallery").text
    assert ("is one of the gallery's" in in_gallery and "%" in in_gallery) == calibrated, in_gallery
    wait_for(
        browser, lambda d: d.execute_script("return Array.from(document.querySelectorAll('#disorders img')).every(i => i.naturalWidth > 0)")
    )
    browser.save_screenshot(str(screenshots / "web_result.png"))
    # the hand measured: landmarks drawn on the film, the pattern profile with the top disorders' typical profiles
    wait_for(browser, lambda d: "of 19 bones measured" in d.find_element(By.ID, "bones-note").text)
    assert browser.find_element(By.ID, "hand").is_displayed()
    drawn = "const c = document.getElementById(arguments[0]), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    yellow = browser.execute_script(
        drawn + "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 240 && d[i+1] > 200 && d[i+2] < 90) n++; return n;",
        "hand-canvas",
    )
    assert yellow > 37 * 5  # every landmark found is a yellow dot on the film ...
    grey = browser.execute_script(
        drawn + "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 60 && Math.abs(d[i] - d[i+2]) < 8) n++; return n;",
        "hand-canvas",
    )
    assert grey > 5000  # ... drawn on the film itself
    dark = browser.execute_script(
        drawn + "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+3] > 0 && d[i] < 40 && d[i+1] < 40) n++; return n;", "profile"
    )
    assert dark > 200 and "dashed:" in browser.find_element(By.ID, "bones-note").text  # this hand's line, and typical profiles beside it
    browser.execute_script("document.getElementById('hand').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "web_hand_measured.png"))
    wait_for(browser, lambda d: "this radiograph" in d.find_element(By.ID, "map-status").text, timeout=300)
    browser.execute_script("document.getElementById('map').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "web_cohort_map.png"))

    Select(browser.find_element(By.ID, "add-disorder")).select_by_value("achondroplasia")
    browser.find_element(By.ID, "add-gene").send_keys("FGFR3")
    browser.find_element(By.ID, "add-button").click()
    wait_for(browser, lambda d: "Added as case" in d.find_element(By.ID, "add-status").text)
    browser.execute_script("document.getElementById('curate').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "web_add_case.png"))

    # HPO terms (autocompleted from the bundled ontology) and candidate genes join the ranking
    browser.find_element(By.CSS_SELECTOR, "#evidence summary").click()
    browser.find_element(By.ID, "hpo-search").send_keys("trident")
    wait_for(browser, lambda d: d.execute_script("return document.querySelectorAll('#hpo-options option').length") > 0)
    option = browser.execute_script("return document.querySelector('#hpo-options option').value")
    assert option.startswith("HP:0004060")
    search = browser.find_element(By.ID, "hpo-search")
    search.clear()
    search.send_keys(option)  # what choosing the suggestion does: its id moves to the terms seen
    wait_for(browser, lambda d: "HP:0004060" in d.find_element(By.ID, "hpo-terms").get_attribute("value"))
    browser.find_element(By.ID, "candidate-genes").send_keys("FGFR3\nTTN")
    browser.find_element(By.ID, "analyse-button").click()
    wait_for(browser, lambda d: "in the gene list: FGFR3" in d.find_element(By.ID, "disorders").text)
    assert "combined" in browser.find_element(By.CSS_SELECTOR, "#disorders tbody tr td:nth-child(7)").text

    # a non-hand upload is refused with the reasons, in plain words
    from PIL import Image
    from skimage import data

    photo = server["image"].parent.parent / "photo.png"
    Image.fromarray(data.coffee()).save(photo)
    browser.find_element(By.ID, "image").send_keys(str(photo))
    browser.find_element(By.ID, "analyse-button").click()
    wait_for(browser, lambda d: "quality check refused" in d.find_element(By.ID, "analyse-error").text.lower())


def test_cohort_map_html_works_offline_in_chromium(server: dict, browser, screenshots: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from index.explore import cohort_map, map_table
    from index.map_figures import write_html

    gallery = Gallery.open(server["gallery"])
    cmap = cohort_map(gallery)
    table = map_table(gallery, cmap)
    vector = gallery.vectors_of(gallery.cases()["row"].tolist()[:1])
    rows = gallery.cases().set_index("row")
    nearest = [str(rows.at[h.row, "case_id"]) for h in gallery.search(vector[0], 4)]
    page = write_html(table, "disorder", tmp_path / "map.html", "Synthetic demo cohort", cmap.place(vector)[0], nearest)
    browser.get(page.as_uri())  # a local file: nothing to fetch from any network
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#legend .item")) == table["disorder"].nunique())
    painted = browser.execute_script(
        "const c=document.getElementById('c');const d=c.getContext('2d').getImageData(0,0,c.width,c.height).data;"
        "let n=0;for(let i=3;i<d.length;i+=4){if(d[i]>0)n++;}return n;"
    )
    assert painted > 500  # the points are drawn
    browser.find_elements(By.CSS_SELECTOR, "#legend .item")[0].click()  # legend toggle hides a group
    assert "off" in browser.find_elements(By.CSS_SELECTOR, "#legend .item")[0].get_attribute("class")
    browser.find_elements(By.CSS_SELECTOR, "#legend .item")[0].click()
    browser.save_screenshot(str(screenshots / "cohort_map.png"))


def test_no_patient_data_in_the_server_log(serve_process: dict, render_cohort) -> None:
    """Runs last in this module: uploads DICOMs carrying (fake) PHI, stops the server, reads its whole log."""
    import pydicom

    server = serve_process
    wait_until_up(server["url"], server["process"], server["log"])
    out, manifest = render_cohort(n=3, seed=5, size=384, format="dicom", disorders=("achondroplasia",))
    secrets = []
    for image in manifest["image"]:
        header = pydicom.dcmread(out / image)
        secrets += [str(header.PatientName), str(header.PatientID), str(header.PatientBirthDate)]
        response = httpx.post(
            f"{server['url']}/api/v1/analyses",
            headers={"Authorization": f"Bearer {server['key']}"},
            files={"image": ("scan.dcm", (out / image).read_bytes())},
            timeout=300,
        )
        assert response.status_code in (200, 422) and "PatientName" not in response.text
        assert not any(secret and secret in response.text for secret in secrets)
    server["process"].terminate()
    server["process"].wait(timeout=60)
    log = server["log"].read_text()
    assert "POST /api/v1/analyses" in log  # the log is there and was read
    leaked = [secret for secret in secrets if secret and secret in log]
    assert not leaked, leaked
