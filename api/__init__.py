"""User-facing entry points: the `bone2gene` command line (and later the HTTP service)."""
