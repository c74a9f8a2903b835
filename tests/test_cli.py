"""The command line of the main job: ``python -m skam [--help] [SECTION ...]``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skam import _demo
from skam._demo import SECTIONS, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_section_and_option():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "skam", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    ).stdout
    assert out.startswith("usage: python -m skam")
    for option in ("--list", "--no-notes", "SECTION"):
        assert option in out
    for name in SECTIONS:
        assert f"\n  {name} " in out, name


def test_unknown_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no_such_section"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_section" in err and SECTIONS[0] in err


def test_list_prints_titles_without_running(capsys, monkeypatch):
    def boom():  # a section that would fail if it were run
        raise AssertionError("--list must not run sections")

    module = __import__(f"skam._demo.{SECTIONS[0]}", fromlist=["run"])
    monkeypatch.setattr(module, "run", boom)
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == SECTIONS


def test_chosen_sections_run_in_the_given_order(capsys, monkeypatch):
    calls = []

    class Fake:
        TITLE = "fake"
        NOTE = "explains the fake table"

        def __init__(self, name):
            self.name = name

        def run(self):
            calls.append(self.name)
            return ["a", "b"], [[self.name, 1.5]]

    monkeypatch.setattr(_demo.importlib, "import_module", lambda m: Fake(m))
    monkeypatch.setattr(_demo, "SECTIONS", ["one", "two", "three"])
    assert main(["three", "one", "--no-notes"]) == 0
    assert calls == ["skam._demo.three", "skam._demo.one"]
    out = capsys.readouterr().out
    assert "explains the fake table" not in out
    assert "1.500" in out
