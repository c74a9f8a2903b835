"""The docs' build helpers (docs/_ext): Markdown results -> reST, and the
offline intersphinx inventories."""

import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "docs" / "_ext"
sys.path.insert(0, str(EXT))

# the helpers are Sphinx extensions: they need the docs extra
pytest.importorskip("docutils")
import benchmark_tables  # noqa: E402

MARKDOWN = """# Title of the file

Intro with `code`s and **bold** (target: at least 2x). Target: ratio <= 1.3 at d = 784.

## Scores

| model | accuracy |
|---|---|
| knn | 0.95 |
| am `beta=1` | 0.96 |

- first point (baselines.md 5.4)
- second point -- memories_; inertia_ and `cluster_centers_`

![accuracy against beta](figure.png)

## Targets

- speed: 1.3x (NOT met)

## After

Kept.
"""


def test_markdown_results_become_rst_tables_rubrics_and_images():
    rst = "\n".join(
        benchmark_tables.markdown_to_rst(
            MARKDOWN, skip_sections=["Targets"], drop_title=True, base="../r/"
        )
    )
    assert "Title of the file" not in rst
    assert ".. rubric:: Scores" in rst and ".. rubric:: After" in rst
    assert ".. list-table::" in rst and "   * - knn" in rst and "     - 0.96" in rst
    assert "``code``\\ s" in rst and "``beta=1``" in rst
    assert ".. image:: ../r/figure.png" in rst and ":alt: accuracy against beta" in rst
    assert "* first point" in rst and "baselines.md" not in rst
    assert "(target" not in rst and "NOT met" not in rst and "Targets" not in rst
    assert "Kept." in rst
    # fitted attributes are text, not reST references
    assert "memories\\_; inertia\\_ and ``cluster_centers_``" in rst
    assert "|" not in rst.replace("\\|", "")


def test_rendered_rst_parses_without_warnings():
    docutils = pytest.importorskip("docutils.core")
    rst = "\n".join(benchmark_tables.markdown_to_rst(MARKDOWN, drop_title=True))
    html = docutils.publish_string(
        rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 2}
    ).decode()
    assert "<table" in html and "0.96" in html
    assert "memories_; inertia_" in html


def test_offline_inventories_resolve_real_names(tmp_path):
    inventory = pytest.importorskip("sphinx.util.inventory")
    import offline_inventories

    mapping = offline_inventories.write_all(tmp_path)
    assert set(mapping) == {"sklearn", "numpy", "scipy"}
    url, path = mapping["sklearn"]
    with open(path, "rb") as f:
        data = inventory.InventoryFile.load(f, url, lambda base, uri: base + uri)
    data = getattr(data, "data", data)
    kde = data["py:class"]["sklearn.neighbors.KernelDensity"]
    location = kde[2] if isinstance(kde, tuple) else kde.uri
    assert location == (
        "https://scikit-learn.org/stable/modules/generated/"
        "sklearn.neighbors.KernelDensity.html#sklearn.neighbors.KernelDensity"
    )
    assert "sklearn.neighbors.KernelDensity.score" in data["py:method"]
    assert "meta-estimator" in data["std:term"]
    assert "metadata_routing" in data["std:label"]


def test_docstring_fixups_keep_initials_and_attributes_as_text():
    docutils = pytest.importorskip("docutils.core")
    import docstring_fixups

    from skam import DenseAM

    lines = DenseAM.__doc__.splitlines()
    refs = [line.strip() for line in lines if line.strip().startswith(".. [")]
    assert any(line.startswith(".. [2] H. Ramsauer") for line in refs)
    text = "\n".join(refs + ["", "memories of shape (n_features_in_,) here"])

    def render(rst):
        return docutils.publish_string(
            rst, writer="html", settings_overrides={"report_level": 1}
        ).decode()

    fixed = "\n".join(docstring_fixups.fix_line(line) for line in text.splitlines())
    assert "<ol" in render(text)  # "H." would start a list lettered from H
    html = render(fixed)
    assert "<ol" not in html and "H. Ramsauer" in html
    assert "n_features_in_" in html and 'class="problematic"' not in html


def test_docs_check_flags_a_reference_rendered_as_a_list():
    sys.path.insert(0, str(EXT.parent))
    import check

    label = '<span class="label"><span class="fn-bracket">[</span>2'
    label += '<span class="fn-bracket">]</span></span>'
    page = f'<div class="citation" role="doc-biblioentry">\n{label}\n<p>H. R.</p>'
    assert check._CITATION_LIST.findall(page) == []
    listed = page.replace("<p>H. R.</p>", '<ol class="upperalpha" start="8">')
    assert check._CITATION_LIST.findall(listed) == ["2"]
