"""One contract: every protocol operation exists on the boss, the client, both transports and the fake.

An operation declared in `meshkit.protocol` and forgotten anywhere fails here, not at a
learner's first call. The fake is checked like the real transports: same argument validation,
results with the shapes the protocol declares.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import pytest

from meshkit import protocol as p
from meshkit.client import mesh as client_mesh
from meshkit.client.fake import FakeTransport
from meshkit.client.kind import KindTransport
from meshkit.client.mesh import Mesh
from meshkit.daemon import Daemon
from meshkit.errors import InvalidInput
from meshkit.service import PlaneService, PodService, handlers

SOURCE = Path(client_mesh.__file__).read_text()


@pytest.mark.parametrize("name", sorted(p.OPERATIONS))
def test_every_operation_has_a_mesh_method_that_sends_it(name: str) -> None:
    constant = name.upper()
    assert getattr(p, constant) is p.OPERATIONS[name]
    if name == "down":  # the transport stops its mesh its own way (kind: `meshkit cluster down`)
        assert "self.transport.down()" in SOURCE
        return
    assert re.search(rf"self\._call\(p\.{constant}\b", SOURCE), f"no Mesh method sends {name!r}"


@pytest.mark.parametrize("name", sorted(p.OPERATIONS))
def test_every_operation_is_answered_by_the_service_it_belongs_to(name: str) -> None:
    op = p.OPERATIONS[name]
    owner = {p.Scope.PLANE: PlaneService, p.Scope.POD: PodService}[op.scope]
    method = getattr(owner, name, None) or (getattr(Daemon, name) if name == "down" else None)
    assert method is not None and inspect.iscoroutinefunction(method), f"{owner.__name__} does not answer {name!r}"
    params = [n for n in inspect.signature(method).parameters if n != "self"]
    assert set(params) == set(op.fields), f"{name}: handler takes {params}, the protocol says {op.fields}"


def test_a_handler_table_missing_an_operation_refuses_to_build() -> None:
    class Partial:
        async def ping(self) -> None: ...

    with pytest.raises(TypeError, match="no service answers the protocol operation"):
        handlers(Partial(), scopes=(p.Scope.PLANE,))


def test_the_kind_transport_does_every_pod_operation_but_down_itself() -> None:
    pod_ops = {name for name, op in p.OPERATIONS.items() if op.scope is p.Scope.POD} - {"down", "pods"}
    methods = {name for name in pod_ops if callable(getattr(KindTransport, f"_{name}", None))}
    assert methods == pod_ops


def _keys(shape: object) -> set[str] | None:
    hints = typing.get_type_hints(shape) if isinstance(shape, type) and issubclass(shape, dict) else None
    return set(hints) if hints else None


def _check_shape(result: object, shape: object) -> None:
    origin = typing.get_origin(shape)
    if origin is list:
        (item,) = typing.get_args(shape)
        assert isinstance(result, list)
        for each in result:
            _check_shape(each, item)
        return
    keys = _keys(shape)
    if keys is not None:
        assert isinstance(result, dict)
        required = {k for k in keys if k in getattr(shape, "__required_keys__", keys)}
        assert required <= set(result) <= keys, f"{shape}: {sorted(result)} vs {sorted(keys)}"
        return
    assert isinstance(result, origin or shape)  # type: ignore[arg-type]


ARGS = {"apply": {"text": "x"}, "delete": {"text": "x"}, "get": {"kind": "VirtualService"},
        "xds": {"pod": "productpage-v1"}, "boss": {"action": "stop"}, "admin": {"pod": "p", "path": "/ready"},
        "curl": {"pod": "p", "url": "http://reviews:9080/"}, "tcp": {"pod": "p", "host": "h", "port": 1},
        "pod_info": {"pod": "p"}, "push_diff": {"a": 1, "b": 2}, "replay": {"push_id": 1},
        "set_xds": {"pod": "p", "variant": "sotw"}}


@pytest.mark.parametrize("name", sorted(p.OPERATIONS))
def test_the_fake_answers_every_operation_in_the_declared_shape(name: str) -> None:
    fake = FakeTransport()
    op = p.OPERATIONS[name]
    _check_shape(fake.call(op, dict(ARGS.get(name, {}))), op.result)


def test_the_fake_refuses_what_the_real_boss_refuses() -> None:
    mesh = Mesh(FakeTransport())
    with pytest.raises(InvalidInput, match="unknown argument"):
        mesh._call(p.APPLY, text="x", pod="productpage-v1")  # `pods`, not `pod`
