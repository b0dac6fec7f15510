"""`istioctl proxy-config secret` over Envoy's `/config_dump`: the certificates a sidecar holds.

Envoy's `SecretsConfigDump` section lists SDS secrets as `dynamic_active_secrets` (in use) and
`dynamic_warming_secrets` (asked for, not yet received), each with `version_info`,
`last_updated` and the `Secret` itself; private keys are redacted, certificates are shown
(base64 `inline_bytes`). istioctl (`istioctl/pkg/writer/envoy/configdump/secret.go`) prints one
row per secret: `RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER NOT BEFORE`, TYPE
`Cert Chain` for a `tls_certificate` and `CA` for a `validation_context`, the serial in lower-case
hex and times in RFC 3339. meshkit adds one column, IDENTITY: the certificate's URI SAN (the
SPIFFE id), which istioctl only shows with `-o json`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pandas as pd
from cryptography import x509

from .dump import section
from .tables import istioctl_table

__all__ = ["certificate", "secrets"]

COLUMNS = ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE", "IDENTITY"]


def certificate(secret: dict[str, Any]) -> x509.Certificate | None:
    """The first certificate of a secret (the leaf of a chain, or the root of a CA)."""
    tls, validation = secret.get("tls_certificate"), secret.get("validation_context")
    source = (tls or {}).get("certificate_chain") or (validation or {}).get("trusted_ca") or {}
    raw = source.get("inline_bytes")
    if raw:
        pem = base64.b64decode(raw)
    elif source.get("inline_string"):
        pem = source["inline_string"].encode()
    else:
        return None
    return x509.load_pem_x509_certificates(pem)[0]


def _identity(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cert.subject.rfc4514_string()
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return ",".join(uris) or cert.subject.rfc4514_string()


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secrets(dump: dict[str, Any], now: dt.datetime | None = None) -> pd.DataFrame:
    """`istioctl pc secret`: one row per SDS secret, active ones then warming ones."""
    now = now or dt.datetime.now(dt.UTC)
    part = section(dump, "SecretsConfigDump")
    rows = []
    for key, status in (("dynamic_active_secrets", "ACTIVE"), ("dynamic_warming_secrets", "WARMING"),
                        ("static_secrets", "ACTIVE")):
        for entry in part.get(key, []):
            secret = entry.get("secret") or {}
            name = entry.get("name") or secret.get("name", "")
            kind = "CA" if "validation_context" in secret else "Cert Chain"
            cert = certificate(secret)
            if cert is None:
                rows.append([name, kind, status, "false", "", "", "", ""])
                continue
            before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
            valid = "true" if before <= now <= after else "false"
            rows.append([name, kind, status, valid, f"{cert.serial_number:x}", _rfc3339(after), _rfc3339(before),
                         _identity(cert)])
    return istioctl_table(rows, COLUMNS, padding=5)
