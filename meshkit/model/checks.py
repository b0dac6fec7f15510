"""Value checks for strings whose meaning the schema alone cannot see, with Kubernetes' and
Istio's own wording where they have one.

Each check returns what is wrong (a sentence that says the fix) or None, so `schema.Text`
can use it at any field. The object-name rules quote Kubernetes' apimachinery validation
(`IsDNS1123Subdomain`, `IsDNS1123Label`) word for word, so a learner who later meets
`kubectl apply` sees the same sentence.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from .schema import Text, shown

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{DNS1123_LABEL_FMT}')"
)
DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    f"is '{DNS1123_SUBDOMAIN_FMT}')"
)
_LABEL = re.compile(DNS1123_LABEL_FMT)
_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)


def dns1123_subdomain(value: str) -> list[str]:
    """Kubernetes' `IsDNS1123Subdomain`: what it says is wrong with `value` (empty when fine)."""
    errors = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not _SUBDOMAIN.fullmatch(value):
        errors.append(DNS1123_SUBDOMAIN_MESSAGE)
    return errors


def dns1123_label(value: str) -> list[str]:
    """Kubernetes' `IsDNS1123Label`: what it says is wrong with `value` (empty when fine)."""
    errors = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not _LABEL.fullmatch(value):
        errors.append("must not contain dots" if _SUBDOMAIN.fullmatch(value) else DNS1123_LABEL_MESSAGE)
    return errors


def object_name_problems(name: object, namespace: object) -> list[str]:
    """`metadata.name` (a DNS-1123 subdomain) and `metadata.namespace` (a DNS-1123 label), in
    Kubernetes' words: `metadata.name: Invalid value: "x": <rule>`."""
    problems = []
    if name == "":
        problems.append("metadata.name: Required value: name or generateName is required")
    elif isinstance(name, str):
        problems += [f"metadata.name: Invalid value: {_quoted(name)}: {e}" for e in dns1123_subdomain(name)]
    if isinstance(namespace, str):
        problems += [f"metadata.namespace: Invalid value: {_quoted(namespace)}: {e}" for e in dns1123_label(namespace)]
    return problems


def _quoted(value: str) -> str:
    text = value if len(value) <= 80 else value[:77] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# RE2, Envoy's regex engine, has no lookaround and no backreferences; Python's `re` has both.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")


def regex_problem(value: str, presence: bool = False) -> str | None:
    """Why `value` is not a regular expression Envoy can compile (RE2 syntax), or None.

    `presence`: Istio reads `regex: "*"` in a header or query match as "is present".
    """
    if presence and value == "*":
        return None
    if _NOT_RE2.search(value):
        return (f"{shown(value)} uses lookaround or a backreference, which RE2 (Envoy's regex engine) "
                "does not support; rewrite it without them")
    try:
        re.compile(value)
    except re.error as exc:
        return f"{shown(value)} is not a valid regular expression ({exc}); escape literal characters with \\"
    except (RecursionError, OverflowError, ValueError):
        return f"{shown(value)} is too complex a regular expression; simplify it"
    return None


def cidr_problem(value: str) -> str | None:
    """An IP address or CIDR range (`10.0.0.1`, `10.0.0.0/16`, `2001:db8::/32`)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{shown(value)} is not an IP address or CIDR range like '10.0.0.0/16'"
    return None


def port_text_problem(value: str) -> str | None:
    """A port number written as a string, as AuthorizationPolicy `ports` are."""
    if value.isascii() and value.isdigit() and 1 <= int(value) <= 65535:
        return None
    return f"{shown(value)} is not a port number from 1 to 65535 (write it as a string, e.g. \"8080\")"


def base64_problem(value: str) -> str | None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"{shown(value)} is not base64 (use `body.string` for plain text)"
    return None


_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?")


def host_problem(value: str) -> str | None:
    """Istio's `ValidateWildcardDomain`: a short name, an FQDN or an IP, optionally `*.`-prefixed, or `*`."""
    if value == "*":
        return None
    name = value[2:] if value.startswith("*.") else value
    if not name or len(value) > 255 or not all(_HOST_LABEL.fullmatch(part) for part in name.split(".")):
        return (f"{shown(value)} is not a host name: use a short name ('reviews'), an FQDN "
                "('reviews.default.svc.cluster.local'), '*.example.com' or '*'")
    return None


def address_problem(value: str) -> str | None:
    """A ServiceEntry endpoint address: an IP, a host name, or a `unix://` socket path."""
    if value.startswith("unix://") and len(value) > len("unix://"):
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if value != "*" and not value.startswith("*") and host_problem(value) is None:
        return None
    return f"{shown(value)} is not an IP address, host name or unix:// path"


REGEX = Text(regex_problem, "a regular expression")
MATCH_REGEX = Text(lambda v: regex_problem(v, presence=True), "a regular expression or '*'")
CIDR = Text(cidr_problem, "an IP address or CIDR range")
PORT_TEXT = Text(port_text_problem, "a port number")
BASE64 = Text(base64_problem, "base64 text")
HOST = Text(host_problem, "a host name")
ADDRESS = Text(address_problem, "an address")
