"""The service's version (the OpenAPI document and /health report it)."""

VERSION = "0.1.0"
