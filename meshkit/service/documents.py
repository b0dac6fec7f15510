"""A learner's file, parsed once: Istio documents for the boss's book, raw Envoy ones for overrides.

Parsing, the MeshConfig merge and `istioctl analyze`-style analysis happen here, before anything
is pushed, so every operation that takes a file (apply, delete, the xDS preview) refuses the same
inputs with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InvalidInput
from ..model import Topology
from ..model.analyze import analyze, ignored
from ..model.gateway_api import deployed, unknown_services
from ..model.istio import IstioResource, parse_istio_document
from ..model.raw import RawResource, ResourceError, is_raw_document, load_documents, parse_document
from ..model.schema import SchemaError


@dataclass(frozen=True)
class Documents:
    """The documents of one file, split by who they speak to."""

    istio: tuple[IstioResource, ...]
    raw: tuple[RawResource, ...]

    @classmethod
    def parse(cls, text: str) -> Documents:
        """Every document of `text`, or InvalidInput naming the document, the field and the fix."""
        try:
            docs = load_documents(text)
            raw = tuple(parse_document(doc, i) for i, doc in enumerate(docs) if is_raw_document(doc))
            istio = tuple(parse_istio_document(doc, i) for i, doc in enumerate(docs) if not is_raw_document(doc))
        except (ResourceError, SchemaError) as exc:
            raise InvalidInput(str(exc)) from exc
        return cls(istio, raw)

    def describe(self) -> str:
        """"VirtualService reviews, DestinationRule reviews": what a push record's reason names."""
        return ", ".join(f"{'Gateway' if r.kind == 'KubernetesGateway' else r.kind} {r.name}" for r in self.istio)


def with_istio(topology: Topology, resources: tuple[IstioResource, ...]) -> tuple[Topology, list[str]]:
    """The topology with `resources` applied (MeshConfig merged into the mesh settings) and the
    analysis warnings; InvalidInput, with every finding, if analysis finds an error."""
    mesh = topology.mesh
    for resource in resources:
        if resource.kind == "MeshConfig":
            mode = (resource.spec.get("outboundTrafficPolicy") or {}).get("mode", mesh.outbound_traffic_policy)
            mesh = replace(mesh, outbound_traffic_policy=mode)
    config = topology.istio.applied(list(resources))
    # A Gateway API Gateway of class istio brings its own Deployment and Service (automated deployment).
    candidate = deployed(replace(topology, istio=config, mesh=mesh))
    findings = analyze(candidate, config) + ignored(candidate, resources)
    errors = [str(f) for f in findings if f.level == "error" and f.blocks] + unknown_services(topology, resources)
    if errors:
        raise InvalidInput("nothing was applied:\n  " + "\n  ".join(errors), {"findings": [str(f) for f in findings]})
    return candidate, [str(f) for f in findings if not (f.level == "error" and f.blocks)]
