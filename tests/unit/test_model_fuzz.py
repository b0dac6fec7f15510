"""Every input either parses or is refused with the model's own error, never a Python exception.

Property tests (Hypothesis, derandomized so CI sees the same examples) mutate the repository's
valid Istio and Envoy documents and throw random YAML at the parsers the daemon calls; whatever
parses must also analyze and translate. Focused tests pin the limits and the wording.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshkit.model.documents import MAX_ALIASES, MAX_DEPTH, MAX_DOCUMENTS
from meshkit.model.istio import parse_istio
from meshkit.model.raw import ResourceError, parse_resources
from meshkit.model.schema import ModelError, SchemaError

from ..fuzzing import BOMB, NAMED_VS, PYTHON_NOISE, gently_mutated, mutated_text, outcome, translate

FUZZ = settings(derandomize=True, deadline=None, max_examples=300, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_clean(text: str) -> str:
    """Parse as the daemon does; a refusal must read as meshkit's, a success must translate."""
    kind, value = outcome(text)
    if kind == "refused":
        assert not PYTHON_NOISE.search(value), value  # type: ignore[arg-type]
        assert value.strip(), "an empty message"  # type: ignore[union-attr]
    else:
        translate(value[1])  # type: ignore[index]
    return kind


# A seed per example: every example is a different mutation (Hypothesis' own `randoms()` start
# from zeros and mostly repeat the first choice); the seed in a failure reproduces it.
SEEDS = st.integers(min_value=0, max_value=2**32)
KINDS_SEEN: dict[str, set[str]] = {"istio": set(), "envoy": set()}


@FUZZ
@given(SEEDS)
def test_mutated_istio_documents_parse_or_are_refused(seed: int):
    KINDS_SEEN["istio"].add(assert_clean(mutated_text(random.Random(seed), raw=False)))


@settings(FUZZ, max_examples=200)
@given(SEEDS)
def test_mutated_envoy_documents_parse_or_are_refused(seed: int):
    KINDS_SEEN["envoy"].add(assert_clean(mutated_text(random.Random(seed), raw=True)))


@settings(FUZZ, max_examples=200)
@given(SEEDS)
def test_edge_values_that_parse_also_translate(seed: int):
    assert_clean(gently_mutated(random.Random(seed)))


def test_the_mutations_reach_both_outcomes():
    """Run after the two above (file order): a fuzz that only ever refuses tests nothing."""
    if not all(KINDS_SEEN.values()):
        pytest.skip("run with the mutation tests")
    assert all(seen == {"parsed", "refused"} for seen in KINDS_SEEN.values()), KINDS_SEEN


@settings(FUZZ, max_examples=150)
@given(st.text(alphabet=st.sampled_from([*"ab:-[]{}&*!|>'\"#%@ \n\t,?.0123456789", "\ud800", "\x00"]),
               max_size=80))
def test_random_yaml_text_is_parsed_or_refused(text: str):
    assert_clean(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ENVELOPES = st.sampled_from([
    ("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1beta1", "ServiceEntry"), ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"), ("v1", "MeshConfig"),
])


@settings(FUZZ, max_examples=150)
@given(ENVELOPES, st.text(max_size=20), JSONISH)
def test_random_specs_under_istio_kinds_are_parsed_or_refused(envelope, name, spec):
    import json

    version, kind = envelope
    doc = {"apiVersion": version, "kind": kind, "metadata": {"name": name}, "spec": spec}
    assert_clean(json.dumps(doc))


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(["type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "type.googleapis.com/envoy.config.listener.v3.Listener",
                        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"]),
       st.dictionaries(st.sampled_from(["name", "cluster_name", "type", "connect_timeout", "address",
                                        "virtual_hosts", "endpoints", "filter_chains", "lb_policy", "x"]),
                       JSONISH, max_size=4))
def test_random_envoy_fields_are_parsed_or_refused(type_url, body):
    import json

    assert_clean(json.dumps({"@type": type_url, **body}))


# -- limits and wording ---------------------------------------------------------------------------------

VS = NAMED_VS


@pytest.mark.parametrize("name", ["../../etc/passwd", "not a regex (", "UPPER", "-dash", "a" * 254])
def test_names_kubernetes_refuses_are_refused_with_its_rule(name):
    with pytest.raises(SchemaError) as error:
        parse_istio(VS % (f'"{name}"', "default"))
    message = str(error.value)
    assert message.startswith("document 1 (VirtualService ")
    assert "metadata.name: Invalid value" in message
    assert "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and " \
           "must start and end with an alphanumeric character" in message or "no more than 253" in message


def test_empty_name_is_required():
    with pytest.raises(SchemaError, match=r"metadata\.name: Required value: name or generateName is required"):
        parse_istio(VS % ('""', "default"))


@pytest.mark.parametrize("namespace", ["*", "a.b", "Default", "-x"])
def test_namespaces_must_be_dns_labels(namespace):
    with pytest.raises(SchemaError) as error:
        parse_istio(VS % ("reviews", f'"{namespace}"'))
    message = str(error.value)
    assert "metadata.namespace: Invalid value" in message
    assert "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'" in message \
        or "must not contain dots" in message


def test_names_kubernetes_accepts_are_accepted():
    # Kubernetes' own rules: a subdomain may be all digits and dots, a label may start with a digit
    [vs] = parse_istio(VS % ('"0.0.0.0"', '"1s"'))
    assert vs.key == ("VirtualService", "1s", "0.0.0.0")


def test_invalid_regex_is_refused_at_parse_time_with_its_path():
    with pytest.raises(SchemaError) as error:
        parse_istio(VS.replace("  - route:", '  - match:\n    - uri: {regex: "not a regex ("}\n    route:')
                    % ("reviews", "default"))
    assert "spec.http[0].match[0].uri.regex: 'not a regex (' is not a valid regular expression" in str(error.value)


def test_header_presence_regex_is_still_accepted():
    parse_istio(VS.replace("  - route:", '  - match:\n    - headers: {end-user: {regex: "*"}}\n    route:')
                % ("reviews", "default"))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("timeout", "99999999999999h", "is out of range: this duration is from 0s to 315576000000s"),
    ("timeout", "10 seconds", "is not a duration like '2s'"),
    ("retries", "{perTryTimeout: 1h30m, attempts: 2}", None),
    ("retries", "{attempts: -1}", "-1 is out of range: use a whole number from 0 to"),
    ("fault", "{abort: {httpStatus: 1000, percentage: {value: 50}}}", "1000 is out of range"),
    ("fault", "{abort: {httpStatus: 500, percentage: {value: .nan}}}", "is not a finite number"),
    ("mirrorPercentage", "{value: 101}", "101 is out of range: use a number from 0 to 100"),
    ("directResponse", "{status: 200, body: {bytes: 'not base64!'}}", "is not base64"),
    ("mirror", "{host: [reviews]}", "spec.http[0].mirror.host: expected a string, got a list"),
])
def test_values_out_of_range_name_the_field(field, value, expected):
    text = VS.replace("  - route:", f"  - {field}: {value}\n    route:") % ("reviews", "default")
    if expected is None:  # in range: accepted
        parse_istio(text)
        return
    with pytest.raises(SchemaError) as error:
        parse_istio(text)
    assert f"spec.http[0].{field}" in str(error.value) and expected in str(error.value)


def test_wrong_kind_type_is_refused_not_crashed():
    with pytest.raises(SchemaError, match=r"kind \['VirtualService'\] is not one meshkit knows"):
        parse_istio("apiVersion: networking.istio.io/v1\nkind: [VirtualService]\nmetadata: {name: x}\n")


def test_alias_bomb_is_refused_quickly():
    with pytest.raises(ResourceError, match=r"expands to more than|aliases"):
        parse_istio(BOMB)
    many = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ResourceError, match=f"more than {MAX_ALIASES} aliases"):
        parse_istio(many)


def test_deep_nesting_is_refused():
    with pytest.raises(ResourceError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_istio("a: " + "[" * 200 + "]" * 200)


def test_size_and_document_limits_are_said():
    with pytest.raises(ResourceError, match="at most 1024 KiB per apply"):
        parse_istio("a: " + "x" * (1024 * 1024))
    with pytest.raises(ResourceError, match=f"at most {MAX_DOCUMENTS} per apply"):
        parse_istio("---\n".join([VS % ("reviews", "default")] * (MAX_DOCUMENTS + 1)))
    # a file of 1,000 resources, as the boss at scale applies them, is no attack
    assert len(parse_istio("---\n".join(VS % (f"reviews-{i}", "default") for i in range(1000)))) == 1000


def test_raw_type_errors_are_said_in_yaml_terms():
    with pytest.raises(ResourceError) as error:
        parse_resources('{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "x", '
                        '"type": {"a": 1}}')
    assert "document 1 (CDS x): Cluster.type: expected a name or a number" in str(error.value)


def test_raw_any_type_never_imports_other_packages():
    with pytest.raises(ResourceError, match="document 1 \\(LDS l\\)"):
        parse_resources('{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l", '
                        '"filter_chains": [{"filters": [{"name": "f", "typed_config": '
                        '{"@type": "type.googleapis.com/antigravity.Fly"}}]}]}')


def test_every_refusal_is_a_model_error():
    assert issubclass(SchemaError, ModelError) and issubclass(ResourceError, ModelError)


def test_http_rule_without_an_action_is_refused_before_envoy_nacks_it():
    text = (VS % ("reviews", "default")).replace("  - route:\n    - destination: {host: reviews}\n", "  - {}\n")
    with pytest.raises(SchemaError, match=r"spec\.http\[0\]: give it a route, a redirect, a directResponse or a"):
        parse_istio(text)


def test_a_virtual_service_without_hosts_is_a_delegate_and_takes_no_gateways():
    (delegate,) = parse_istio((VS % ("reviews", "default")).replace("hosts: [reviews]", "hosts: []"))
    assert delegate.spec.get("hosts") in (None, [])
    with pytest.raises(SchemaError, match="delegate virtual service must have no gateways"):
        parse_istio((VS % ("reviews", "default")).replace("hosts: [reviews]", "hosts: []\n  gateways: [mesh]"))


def test_keepalive_times_fit_envoys_whole_seconds():
    rule = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {tcpKeepalive: {time: 315576000000s}}}
"""
    with pytest.raises(SchemaError, match=r"spec\.trafficPolicy\.connectionPool\.tcp\.tcpKeepalive\.time: "
                                          r"'315576000000s' is out of range: this duration is from 0s to 4294967295s"):
        parse_istio(rule)


def test_duplicate_subset_names_are_refused_as_istio_does():
    rule = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1, labels: {version: v2}}
"""
    with pytest.raises(SchemaError, match=r"spec\.subsets: the name 'v1' is used more than once"):
        parse_istio(rule)
