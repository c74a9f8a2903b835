"""numpydoc validation of every public docstring, as rendered at import time.

The docstrings of skam are assembled from shared snippets
(:mod:`skam._docstrings`), so a check of the source text would miss what the
reader sees. This test imports each public object and validates its final
``__doc__`` with the checks configured in ``[tool.numpydoc_validation]`` of
pyproject.toml.
"""

import inspect
import re
import tomllib
from pathlib import Path

import pytest

import skam
import skam.datasets

validate = pytest.importorskip("numpydoc.validate")

_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_CONFIG = tomllib.loads(_PYPROJECT.read_text())["tool"]["numpydoc_validation"]
_CHECKS = validate.get_validation_checks(set(_CONFIG["checks"]))
_EXCLUDE = [re.compile(pattern) for pattern in _CONFIG.get("exclude", [])]


def _public_names():
    """Import paths of skam's public classes, their methods and functions."""
    names = []
    for module in (skam, skam.datasets):
        for attr in module.__all__:
            obj = getattr(module, attr)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            path = f"{module.__name__}.{attr}"  # where users import it from
            names.append(path)
            if not inspect.isclass(obj):
                continue
            for member_name, member in vars(obj).items():
                # methods written in skam (scikit-learn's inherited ones are
                # validated upstream), properties included
                if member_name.startswith("_"):
                    continue
                if inspect.isfunction(member) or isinstance(member, property):
                    names.append(f"{path}.{member_name}")
    return sorted(set(names))


PUBLIC = _public_names()


def test_the_public_api_is_collected():
    # the test below must not pass vacuously
    assert "skam.DenseAM.fit" in PUBLIC
    assert "skam.RandomFeatureAM.energy" in PUBLIC
    assert "skam.datasets.flip_bits" in PUBLIC
    assert len(PUBLIC) > 50


@pytest.mark.parametrize("name", PUBLIC)
def test_rendered_docstring_passes_numpydoc(name):
    if any(pattern.search(name) for pattern in _EXCLUDE):
        pytest.skip("excluded in [tool.numpydoc_validation]")
    result = validate.validate(name)
    errors = [
        f"{code}: {message}" for code, message in result["errors"] if code in _CHECKS
    ]
    assert not errors, f"{name}:\n" + "\n".join(errors)
