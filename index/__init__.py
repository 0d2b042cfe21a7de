"""The gallery of confirmed cases: storage (SQLite + FAISS), search and cohort exploration."""
