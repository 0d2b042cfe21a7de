"""Synthetic paediatric hand radiographs with known ground truth.

No patient images can be had, so the project renders its own: a parametric left-hand
skeleton that matures with bone age (`maturation`), grows with chronological age
(`anatomy`), is deformed by declarative disorder specs (`spec`), laid out in a pose
(`geometry`), projected like an X-ray (`raster`, `xray`) and written as PNG or DICOM
with a case manifest (`writers`, `cohort`).
"""
