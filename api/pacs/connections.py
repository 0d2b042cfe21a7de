"""How the node reaches the PACS: TLS contexts for DICOM and an authenticated DICOMweb client.

Secrets are read from `SecretStr` only here, at the moment a connection is made.
"""

from __future__ import annotations

import ssl

import requests
from dicomweb_client import DICOMwebClient

from api.pacs.settings import NodeSettings


def server_tls(settings: NodeSettings) -> ssl.SSLContext | None:
    """The SCP's TLS context: our certificate; peers must present one signed by `tls_ca` when given."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_certificate), str(settings.tls_key))
    if settings.tls_ca is not None:
        context.load_verify_locations(str(settings.tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(settings: NodeSettings) -> ssl.SSLContext | None:
    """The SCU's TLS context: verifies the peer against `tls_ca` (else the system's CAs), shows our certificate."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=None if settings.tls_ca is None else str(settings.tls_ca))
    context.load_cert_chain(str(settings.tls_certificate), str(settings.tls_key))
    return context


def dicomweb_client(settings: NodeSettings, timeout_s: float = 30.0) -> DICOMwebClient:
    """A DICOMweb client of `settings.dicomweb_url` with its basic or bearer authentication."""
    if not settings.dicomweb_url:
        raise ValueError("no DICOMweb URL is configured (--dicomweb-url or BONE2GENE_PACS_DICOMWEB_URL)")
    session = requests.Session()
    if settings.dicomweb_token is not None:
        session.headers["Authorization"] = f"Bearer {settings.dicomweb_token.get_secret_value()}"
    elif settings.dicomweb_username:
        password = settings.dicomweb_password.get_secret_value() if settings.dicomweb_password else ""
        session.auth = (settings.dicomweb_username, password)
    return DICOMwebClient(settings.dicomweb_url.rstrip("/"), session=session, timeout=timeout_s)
