"""Offline checks of a rendered cluster folder: nothing here needs a cluster, an engine or a network."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from pkgutil import iter_modules
from typing import Any

import yaml

from ..errors import RuntimeProblem
from .config import KindConfig
from .rendering import BOOTSTRAP_FILE


def parse_bootstrap(data: dict[str, Any]) -> Any:
    """Strictly parse an Envoy bootstrap dict into `envoy.config.bootstrap.v3.Bootstrap`."""
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from google.protobuf import json_format

    for type_url in _any_types(data):
        package = type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for module in iter_modules(import_module(package).__path__):
            if module.name.endswith("_pb2"):
                import_module(f"{package}.{module.name}")
    return json_format.ParseDict(data, bootstrap_pb2.Bootstrap())


def _any_types(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["@type"]} if "@type" in value else set()
        return found.union(*(_any_types(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_any_types(v) for v in value))
    return set()


def validate(out: Path) -> list[str]:
    """Check a rendered folder offline; return what was checked, raise RuntimeProblem on any error.

    The kind config against kind's fields, every object against the node's Kubernetes version with
    kubernetes-validate (strict), every bootstrap and `--config-yaml` override with xds-protos.
    """
    config = KindConfig.load(out / "kind.yaml")
    version = config.kubernetes_version
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    errors, objects, bootstraps = [], 0, 0
    for path in sorted((out / "manifests").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            objects += 1
            where = f"{path.name}: {obj['kind']}/{obj['metadata']['name']}"
            if kubernetes_validate is not None:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    errors.append(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    errors.append(f"{where}: {e.message}")
            for text in _bootstrap_texts(obj):
                bootstraps += 1
                try:
                    parse_bootstrap(json.loads(text))
                except Exception as e:  # ParseError, json errors, missing Any types: all mean "broken"
                    errors.append(f"{where}: bootstrap does not parse: {e}")
    if errors:
        raise RuntimeProblem("rendered manifests are invalid:\n  " + "\n  ".join(errors),
                             "this is a meshkit bug: report it with the lines above")
    schema = (f"{objects} objects valid for Kubernetes {version} (strict)" if kubernetes_validate
              else f"{objects} objects NOT schema-checked: pip install kubernetes-validate")
    return [f"kind config ok ({config.node_image})", schema, f"{bootstraps} Envoy bootstraps parse"]


def _bootstrap_texts(obj: dict[str, Any]) -> list[str]:
    if obj["kind"] == "ConfigMap":
        return [obj["data"][BOOTSTRAP_FILE]]
    if obj["kind"] != "Deployment":
        return []
    spec = obj["spec"]["template"]["spec"]  # a sidecar's Envoy is an init container, a gateway's a container
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    return [c["args"][c["args"].index("--config-yaml") + 1] for c in containers if "--config-yaml" in c.get("args", [])]
