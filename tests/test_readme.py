"""The README's example code runs as written."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    text = README.read_text()
    code = text.split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert 0.9 < namespace["search"].best_score_ <= 1.0
    assert set(namespace["labels"]) == {0, 1}


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    commands = [line for line in lines[:8] if line.startswith("pip install")]
    assert commands[0].startswith("pip install -e . && python -m skam")
    assert commands[1].startswith('pip install -e ".[test]" && pytest')
