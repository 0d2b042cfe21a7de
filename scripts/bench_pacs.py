"""PACS node throughput: films per minute through `bone2gene pacs listen`'s pipeline against bare
analysis of the same films, in one run (issue 37's target: the node adds <= 20% per film).

    python scripts/bench_pacs.py [--films 16] [--size 1024] [--rounds 2] [--out benchmarks/pacs.md]

Bare: `read_radiograph` + `Analyzer.analyze` of each DICOM film, back to back (what `bone2gene
analyze` does per film). Node: the same films C-STOREd over loopback to the node's Storage SCP in
one association by a modality in another process, then analysed, ranked against a 28-case gallery,
answered (SR and SC, queued on disk) and C-STOREd to a peer SCP in a third process that accepts and
discards (a real DICOM association; the PACS's own storage time is not counted), until every answer
is delivered. The peers run in their own processes, as they do in a hospital, so their DICOM work
does not compete with the node for this interpreter. Rounds alternate bare and node, so drift in
the machine's speed falls on both.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from api.pacs.runner import NodeRunner, build_node
from api.pacs.scp import StorageSCP
from api.pacs.settings import NodeSettings
from api.use_cases import synthetic_gallery
from matcher.io import read_radiograph
from training.synth.cohort import CohortConfig, generate_cohort

DISORDERS = ("unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SINK = """
import sys
from pynetdicom import AE, AllStoragePresentationContexts, evt
ae = AE(ae_title="SINK")
for context in AllStoragePresentationContexts:
    ae.add_supported_context(context.abstract_syntax)
ae.maximum_pdu_size = 4 * 2**20
ae.start_server(("127.0.0.1", int(sys.argv[1])), block=True, evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
"""

MODALITY = """
import sys
import pydicom
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ComputedRadiographyImageStorage
films = [pydicom.dcmread(path) for path in sys.argv[3:]]
print("ready", flush=True)
sys.stdin.readline()
ae = AE(ae_title="MODALITY")
ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title=sys.argv[2])
statuses = [assoc.send_c_store(film).Status for film in films]
assoc.release()
sys.exit(0 if all(status == 0 for status in statuses) else 1)
"""


def start_sink(port: int) -> subprocess.Popen:
    """A peer, in its own process, that accepts every answer over DICOM and keeps none of it."""
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    time.sleep(3)  # its imports
    return sink


def bare_seconds(runner: NodeRunner, films: list[Path]) -> float:
    analyzer = runner.node.answerer.analyzer
    start = time.perf_counter()
    for film in films:
        analyzer.analyze(read_radiograph(film.read_bytes()))
    return time.perf_counter() - start


def accepted(runner: NodeRunner, films: list[Path]) -> list[Path]:
    """The films the quality gate accepts (the node answers only those); also the warm-up."""
    return [film for film in films if runner.node.answerer.analyzer.analyze(read_radiograph(film.read_bytes())).accepted]


def stage_seconds(node, films: list[Path]) -> dict[str, float]:
    """Per film, the node's own work in stages, run one after another in this thread (no network)."""
    from api.pacs.film_header import answer_header
    from api.pacs.findings import gather_findings
    from api.pacs.secondary_capture import findings_picture, secondary_capture
    from api.pacs.structured_report import structured_report
    from api.use_cases import hand_profile, rank_gallery

    totals: dict[str, float] = {}

    def timed(name: str, work):
        start = time.perf_counter()
        value = work()
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return value

    answerer = node.answerer
    for film in films:
        encoded = film.read_bytes()
        header = timed("read the header", lambda e=encoded: answer_header(pydicom.dcmread(io.BytesIO(e))))
        analysis = timed("read and analyse (bare)", lambda e=encoded: answerer.analyzer.analyze(read_radiograph(e)))
        profile = hand_profile(analysis)
        result = timed("rank against the gallery", lambda a=analysis, p=profile: rank_gallery(answerer.gallery, a.embedding, 5, hand=[p]))
        findings = gather_findings(analysis, result, answerer.card, answerer._gene_of, 5)
        sr = timed("Structured Report (highdicom)", lambda f=findings, h=header: structured_report(f, h))
        radiograph = read_radiograph(encoded)
        picture = timed("picture for the capture", lambda r=radiograph, a=analysis, f=findings: findings_picture(r.pixels, a, f))
        sc = timed("Secondary Capture (highdicom)", lambda p=picture, h=header: secondary_capture(p, h))
        job = timed("outbox (write, sync)", lambda r=sr, c=sc: node.outbox.put([r, c]))
        node.outbox.delivered(job)
    return {name: total / len(films) for name, total in totals.items()}


def new_instances(films: list[Path], folder: Path) -> list[Path]:
    """Copies of `films` as new SOP instances, so that the node analyses them again (not duplicates)."""
    folder.mkdir(parents=True)
    copies = []
    for film in films:
        ds = pydicom.dcmread(film)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / film.name, enforce_file_format=True)
        copies.append(folder / film.name)
    return copies


def node_seconds(runner: NodeRunner, settings: NodeSettings, films: list[Path]) -> float:
    """From the first C-STORE to the last answer delivered, with the node's loop in its own thread."""
    sent_before = runner.node.ledger.counts()["sent"]
    answered_before = runner.node.ledger.counts()["analysed"]
    runner.stopping.clear()
    worker = threading.Thread(target=runner.run, kwargs={"idle_s": 0.02}, daemon=True)
    modality = subprocess.Popen(
        [sys.executable, "-c", MODALITY, str(settings.port), settings.ae_title, *map(str, films)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert modality.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    worker.start()
    modality.stdin.write("go\n")
    modality.stdin.flush()
    while True:
        counts = runner.node.ledger.counts()
        handled = counts["analysed"] - answered_before
        if handled >= len(films) and counts["sent"] - sent_before >= 2 * handled and len(runner.node.outbox) == 0:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    runner.stopping.set()
    worker.join()
    if modality.wait(timeout=60) != 0:
        raise RuntimeError("the modality's C-STOREs were not all accepted")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--films", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/pacs.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    synthetic_gallery(CohortConfig(n=28, out=root / "cohort", seed=8, size=384, disorders=DISORDERS, workers=2), root / "gallery")
    films_config = CohortConfig(n=args.films, out=root / "films", seed=31, size=args.size, disorders=DISORDERS, format="dicom", workers=2)
    manifest = generate_cohort(films_config)
    films = [root / "films" / image for image in manifest["image"]]
    sink_port = free_port()
    sink = start_sink(sink_port)
    settings = NodeSettings(
        gallery=root / "gallery", state=root / "state", port=free_port(), allowed_calling_aes=["MODALITY"],
        peer_ae_title="SINK", peer_host="127.0.0.1", peer_port=sink_port,
    )  # fmt: skip
    node, inbox = build_node(settings)
    runner = NodeRunner(node, inbox, status_every_s=1e9)
    scp = StorageSCP(settings, inbox, node.ledger)
    scp.start()
    films = accepted(runner, films)
    node.answerer.answer(films[0].read_bytes(), pydicom.dcmread(films[0])).datasets()  # warm-up: the calibration, highdicom
    stages = stage_seconds(node, films)
    bare, through_node = [], []
    for round_index in range(args.rounds):
        bare.append(bare_seconds(runner, films))
        through_node.append(node_seconds(runner, settings, new_instances(films, root / f"round{round_index}")))
        print(f"round {round_index + 1}: bare {bare[-1]:.1f} s, node {through_node[-1]:.1f} s", flush=True)
    scp.stop()
    sink.terminate()
    write_report(args, len(films), bare, through_node, node.ledger.counts(), stages)


def write_report(
    args: argparse.Namespace, n: int, bare: list[float], through_node: list[float], counts: dict[str, int], stages: dict[str, float]
) -> None:
    per_bare, per_node = statistics.mean(bare) / n, statistics.mean(through_node) / n
    ratio = statistics.mean(n / b for n, b in zip(through_node, bare, strict=True))
    lines = [
        "# PACS node throughput",
        "",
        f"`python scripts/bench_pacs.py --films {args.films} --size {args.size} --rounds {args.rounds}` on {platform.machine()}, "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; the node in this process, the modality and the receiving peer in two others, nothing else running.",
        "",
        "| path | per film | films per minute |",
        "| --- | --- | --- |",
        f"| bare analysis (`read_radiograph` + `Analyzer.analyze`) | {per_bare:.2f} s | {60 / per_bare:.1f} |",
        f"| through the node (C-STORE in, analyse, rank, SR + SC, disk queues, C-STORE out) | {per_node:.2f} s | {60 / per_node:.1f} |",
        "",
        f"**The node takes {ratio:.2f}x the bare analysis time per film** (mean of {args.rounds} paired rounds: "
        + ", ".join(f"{n / b:.2f}" for n, b in zip(through_node, bare, strict=True))
        + f"); target <= 1.20. Counters at the end: {counts}.",
        "",
        f"Films: the {n} of {args.films} synthetic DICOM CR films ({args.size} px high, 12 bit, fake PHI, 4 disorders) the quality gate "
        "accepts; gallery: 28 cases.",
        "",
        "Where a film's time goes (the node's own stages, one after another in one thread, no network):",
        "",
        "| stage | ms per film |",
        "| --- | --- |",
        *[f"| {name} | {seconds * 1000:.0f} |" for name, seconds in stages.items()],
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
