"""Release readiness: ``python -m build`` gives an sdist and a wheel that carry
the licence and metadata, and the wheel installs and works in a clean venv.

The build runs without isolation (``--no-isolation``: the build backend comes
from the test extra, nothing is downloaded); the clean environment is a fresh
venv that receives the wheel with ``pip install --no-deps --no-index`` and
borrows only the *dependencies* (NumPy, SciPy, scikit-learn, ...) from this
interpreter through a ``.pth`` line, so the test works offline.
"""

import email
import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_spec("build") is None or find_spec("hatchling") is None,
        reason="needs the `build` and `hatchling` packages (test extra)",
    ),
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    (wheel,) = out.glob("skam-*.whl")
    (sdist,) = out.glob("skam-*.tar.gz")
    return wheel, sdist


def _wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name)), zf.namelist()


def test_wheel_ships_licence_package_and_metadata(dist):
    wheel, _ = dist
    meta, names = _wheel_metadata(wheel)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "skam/__init__.py" in names and "skam/_demo/__init__.py" in names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Author"] or meta["Author-email"]
    assert "associative memory" in meta["Keywords"]
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3" in classifiers
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)
    assert meta.get_all("Project-URL")
    requires = " ".join(meta.get_all("Requires-Dist"))
    for dependency in ("numpy", "scipy", "scikit-learn", "array-api-compat"):
        assert dependency in requires


def test_sdist_ships_licence_citation_and_docs(dist):
    _, sdist = dist
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for required in (
        "LICENSE",
        "CITATION.cff",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "README.md",
        "pyproject.toml",
        "skam/__init__.py",
        "docs/conf.py",
    ):
        assert required in names, required
    assert not any(n.startswith(("docs/_build/", "docs/auto_examples/")) for n in names)


def test_wheel_installs_and_runs_in_a_clean_venv(dist, tmp_path):
    wheel, _ = dist
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = str(env_dir / bindir / "python")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         str(wheel)],
        check=True, capture_output=True, env=clean,
    )  # fmt: skip
    # the venv's own site-packages (holding skam) come first; the dependencies
    # are found in this interpreter's site-packages, appended after it
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=clean,
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_skam_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    smoke = (
        "import skam, numpy as np\n"
        "from pathlib import Path\n"
        f"assert Path(skam.__file__).is_relative_to({str(env_dir)!r}), skam.__file__\n"
        "X = np.sign(np.random.RandomState(0).normal(size=(5, 16)))\n"
        "am = skam.DenseAM().fit(X)\n"
        "assert (np.sign(am.transform(X)) == X).all()\n"
        "print(skam.__version__)\n"
    )
    out = subprocess.run(
        [python, "-c", smoke], check=True, capture_output=True, text=True,
        env=clean, cwd=tmp_path,
    ).stdout  # fmt: skip
    import skam

    assert out.strip() == skam.__version__
    helped = subprocess.run(
        [python, "-m", "skam", "--help"], check=True, capture_output=True,
        text=True, env=clean, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "usage: python -m skam" in helped
