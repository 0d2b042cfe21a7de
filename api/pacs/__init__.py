"""The DICOM node: Bone2Gene beside the hospital PACS.

Films arrive by C-STORE (`scp`, a Storage SCP) or are fetched from a DICOMweb PACS (`watcher`,
QIDO-RS then WADO-RS); both hand the file to one pipeline (`node.Node`): the hand-film filter,
the once-per-SOP-instance ledger, the same analysis and ranking the CLI and the service run,
then a Structured Report and a Secondary Capture in the film's own study (`structured_report`,
`secondary_capture`), queued on disk (`outbox`) and delivered by C-STORE or STOW-RS (`senders`).
Settings come from `bone2gene pacs` flags or `BONE2GENE_PACS_*` variables (`settings`).
"""
