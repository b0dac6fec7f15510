"""The boss as certificate authority: a self-signed root and short-lived SPIFFE workload certificates.

What istiod's built-in CA (Citadel) does, reduced to pure crypto and a clock: one self-signed
root (`O=cluster.local`, like istiod's `istio-ca-secret`), and per workload an X.509 certificate
with an empty subject, the identity only in a critical URI SAN
`spiffe://cluster.local/ns/<ns>/sa/<service account>`, usable for both TLS server and client
auth. Istio's default lifetime is 24 h; meshkit's is 10 minutes so rotation is visible in a lab.
A certificate is due for rotation once half its lifetime is gone (pilot-agent's
`SECRET_GRACE_PERIOD_RATIO` 0.5). Keys are ECDSA P-256 (Istio's `ECC_SIGNATURE_ALGORITHM`
option; its default is RSA 2048) because they are fast to make.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshkit.constants import spiffe_id
from meshkit.model.constants import TRUST_DOMAIN

DEFAULT_TTL_S = 600.0
ROOT_TTL_S = 10 * 365 * 24 * 3600.0
GRACE_RATIO = 0.5  # rotate once this fraction of the lifetime is left
CLOCK_SKEW_S = 60.0  # not_before is backdated, as Istio does, so slightly skewed peers accept it


@dataclass(frozen=True)
class IssuedCert:
    """One workload certificate: PEMs, serial and validity (epoch seconds)."""

    identity: str
    cert_pem: bytes
    key_pem: bytes
    serial: int
    not_before: float
    not_after: float

    @property
    def lifetime_s(self) -> float:
        return self.not_after - self.not_before

    def rotate_at(self, ratio: float = GRACE_RATIO) -> float:
        """When the certificate is due for renewal (epoch seconds)."""
        return self.not_after - ratio * (self.not_after - self.not_before - CLOCK_SKEW_S)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class CertificateAuthority:
    """A root key and certificate, and `issue()` for workload identities."""

    def __init__(self, trust_domain: str = TRUST_DOMAIN, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.trust_domain = trust_domain
        self.ttl_s = ttl_s
        self.clock = clock
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = clock()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        self.root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_when(now - CLOCK_SKEW_S))
            .not_valid_after(_when(now + ROOT_TTL_S))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def issue(self, namespace: str, service_account: str, ttl_s: float | None = None) -> IssuedCert:
        """A fresh key and certificate for `spiffe://<td>/ns/<namespace>/sa/<service_account>`."""
        identity = spiffe_id(namespace, service_account, self.trust_domain)
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.clock()
        not_before, not_after = now - CLOCK_SKEW_S, now + (ttl_s or self.ttl_s)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(_when(not_before))
            .not_valid_after(_when(not_after))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return self._signed(cert, key, identity, not_before, not_after)

    def issue_server(self, hosts: Sequence[str], ttl_s: float | None = None) -> IssuedCert:
        """A certificate for DNS names (a gateway credential: `bookinfo.example.com`, `*.example.com`).

        What a learner would put in the Kubernetes Secret a Gateway's `credentialName` names,
        signed by the mesh root so a client can verify it with the root alone.
        """
        dns = [h for h in hosts if h and h != "*"] or ["*.example.com"]
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.clock()
        not_before, not_after = now - CLOCK_SKEW_S, now + (ttl_s or self.ttl_s)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_when(not_before))
            .not_valid_after(_when(not_after))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in dns]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return self._signed(cert, key, f"dns:{','.join(dns)}", not_before, not_after)

    def _signed(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, identity: str,
                not_before: float, not_after: float) -> IssuedCert:
        # Istio's workload chain is leaf + root (pilot-agent appends the root to the cert chain).
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.root_pem
        return IssuedCert(identity, chain, _pem_key(key), cert.serial_number, not_before, not_after)
