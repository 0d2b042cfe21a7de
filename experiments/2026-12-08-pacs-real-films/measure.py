"""Real full-resolution films wrapped as DICOM CR (sex in the header) through the node's answerer; SR vs analyze."""

import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from api.pacs.answering import FilmAnswerer
from index.store import Gallery
from matcher.analysis import Analyzer
from matcher.checkpoint import BUNDLED_MODEL_DIR, load_model

root = Path("/work/shared/real_hands_labelled")
labels = pd.read_csv(root / "labels.csv")
model, card = load_model(BUNDLED_MODEL_DIR)
an = Analyzer(model)
answerer = FilmAnswerer(an, Gallery.open(Path(sys.argv[1])), card)
rows = []
for _, r in labels.iterrows():
    img = cv2.imread(str(root / f"{r['id']}.png"), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.BodyPartExamined = "HAND"
    ds.PatientName = "Test^Real"
    ds.PatientID = "R1"
    ds.PatientSex = "M" if str(r.get("male", r.get("sex"))) in ("True", "M", "1") else "F"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated = ds.BitsStored = 8 if img.dtype == np.uint8 else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = img.tobytes()
    b = io.BytesIO()
    ds.save_as(b, enforce_file_format=True)
    enc = b.getvalue()
    answer = answerer.answer(enc, pydicom.dcmread(io.BytesIO(enc)))
    direct = an.analyze(enc)
    if answer.findings is None:
        rows.append((r["id"], "refused", None, None))
        continue
    sr = answer.datasets()[0]

    def find(items, name):
        for it in items:
            if it.ConceptNameCodeSequence[0].CodeMeaning == name:
                return float(it.MeasuredValueSequence[0].NumericValue)
            v = find(it.get("ContentSequence", []), name)
            if v is not None:
                return v

    rows.append((r["id"], find(sr.ContentSequence, "Bone age"), direct.bone_age_months, r.get("boneage", r.get("bone_age"))))
for row in rows:
    print(row)
ok = [r for r in rows if r[1] != "refused"]
print(
    "answered",
    len(ok),
    "of",
    len(rows),
    "; max |SR - analyze|",
    max(abs(a - b) for _, a, b, _ in ok),
    "; MAD vs label",
    np.mean([abs(a - c) for _, a, _, c in ok]),
)
