"""The public surface, pinned: what `import meshkit` and `meshkit.widgets` offer, and that each name resolves."""

from __future__ import annotations

import meshkit
import meshkit.widgets

MESHKIT = ["EnvironmentProblem", "InternalError", "InvalidInput", "Mesh", "MeshError", "Nack", "NotFound",
           "NotRunning", "Starting", "Timeout", "Unsupported", "connect", "doctor", "down", "home_dir", "lab", "up",
           "widgets"]


def test_meshkit_public_names() -> None:
    assert meshkit.__all__ == MESHKIT
    for name in meshkit.__all__:
        assert getattr(meshkit, name) is not None


def test_widgets_public_names() -> None:
    expected = sorted(meshkit.widgets._PUBLIC)
    assert meshkit.widgets.__all__ == expected
    for name in expected:
        assert callable(getattr(meshkit.widgets, name))


def test_errors_are_one_tree() -> None:
    for name in MESHKIT:
        value = getattr(meshkit, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, meshkit.MeshError)
