"""The shared progress format of long fits, and honest convergence warnings."""

import io
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skam import (
    DenseAMClassifier,
    DiffusionAM,
    EnergyTransformer,
    HierarchicalAM,
    HierarchicalAMClassifier,
)
from skam._progress import Progress, format_line


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_line_has_counts_metrics_elapsed_and_eta():
    line = format_line(
        "Est", "epoch", 10, 40, 20.0, {"loss": 0.123456, "k": 3}, upper_bound=True
    )
    assert line == "[Est] epoch 10/40 (25%) loss=0.1235 k=3 | 20.0 s, ETA <= 1 min 00 s"
    exact = format_line("Est", "step", 1, 4, 2.0, {}, upper_bound=False)
    assert exact == "[Est] step 1/4 (25%) | 2.0 s, ETA 6.0 s"
    # no ETA once done, or without a total
    assert "ETA" not in format_line("E", "epoch", 4, 4, 8.0, {}, upper_bound=True)
    assert format_line("E", "epoch", 3, None, 8.0, {}, upper_bound=True) == (
        "[E] epoch 3 | 8.0 s"
    )


def test_verbose_1_throttles_verbose_2_prints_every_step():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress("Est", 10, 1, stream=out, clock=clock, min_interval=2.0)
    for _ in range(10):
        clock.now += 0.5
        progress.step(loss=1.0)
    lines = out.getvalue().splitlines()
    # first step, then every 2 s (4 steps of 0.5 s), and the last step
    assert [int(re.search(r"epoch (\d+)/", x).group(1)) for x in lines] == [1, 5, 9, 10]
    assert lines[0].endswith("| 0.5 s, ETA <= 4.5 s")
    out2 = io.StringIO()
    progress = Progress("Est", 3, 2, stream=out2, clock=FakeClock())
    for _ in range(3):
        progress.step()
    assert len(out2.getvalue().splitlines()) == 3


def test_silent_at_verbose_0_and_notes_at_1():
    out = io.StringIO()
    progress = Progress("Est", 5, 0, stream=out)
    progress.step(loss=1.0)
    progress.close("done")
    assert out.getvalue() == ""
    clock = FakeClock()
    progress = Progress("Est", 5, 1, stream=out, clock=clock)
    clock.now += 3.0
    progress.close("done: kept epoch 2")
    assert out.getvalue() == "[Est] done: kept epoch 2 | 3.0 s\n"


def test_optional_tqdm_bar():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    progress = Progress("Est", 4, 1, stream=out, bar=True)
    for _ in range(4):
        progress.step(loss=0.5)
    progress.close("finished")
    text = out.getvalue()
    assert "4/4" in text and "loss=0.5" in text and "[Est] finished" in text
    # "auto" uses no bar when the stream is not a terminal
    assert Progress("Est", 4, 1, stream=io.StringIO())._bar is None


def test_parametric_fit_reports_and_warns_with_the_facts(capsys):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    clf = DenseAMClassifier(
        mode="parametric", max_epochs=4, n_iter_no_change=10, verbose=2, random_state=0
    )
    with pytest.warns(ConvergenceWarning) as record:
        clf.fit(X, y)
    (message,) = [str(w.message) for w in record]
    curve = clf.validation_loss_curve_
    best = int(np.argmin(curve)) + 1
    assert f"lowest at epoch {best} ({min(curve):.4g})" in message
    assert f"is {curve[-1]:.4g} at the last epoch" in message
    if best >= 3:
        assert "still improving" in message
    else:
        assert "still improving" not in message
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out[:4]] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("val_loss=" in line for line in out[:4])
    assert out[-1].startswith(
        f"[DenseAMClassifier] max_epochs=4 reached; kept epoch {best}"
    )


def test_early_stopping_is_reported_without_warning(capsys):
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = DenseAMClassifier(
            mode="parametric",
            max_epochs=200,
            n_iter_no_change=2,
            learning_rate=0.2,
            verbose=1,
            random_state=0,
        ).fit(X, y)
    assert clf.n_iter_ < 200
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"stopped early at epoch {clf.n_iter_}" in last


LAYERS = [("visible", "identity", None), ("hidden", "softmax", 16)]


def _digits(n):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


@pytest.mark.parametrize(
    "make, needs_y",
    [
        pytest.param(
            lambda: HierarchicalAM(layers=LAYERS, max_epochs=3, random_state=0),
            False,
            id="HierarchicalAM",
        ),
        pytest.param(
            lambda: HierarchicalAMClassifier(
                layers=LAYERS, max_epochs=3, random_state=0
            ),
            True,
            id="HierarchicalAMClassifier",
        ),
        pytest.param(
            lambda: DiffusionAM(n_memories=8, beta=20.0, max_epochs=3, random_state=0),
            False,
            id="DiffusionAM",
        ),
        pytest.param(
            lambda: EnergyTransformer(
                image_shape=(8, 8),
                patch_shape=(4, 4),
                token_dim=8,
                n_heads=1,
                head_dim=4,
                n_memories=8,
                max_epochs=3,
                random_state=0,
            ),
            False,
            id="EnergyTransformer",
        ),
    ],
)
def test_every_long_fit_reports_in_the_one_format(make, needs_y, capsys):
    X, y = _digits(120)
    est = make().set_params(verbose=2)
    est.fit(X, y) if needs_y else est.fit(X)
    name = type(est).__name__
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if re.match(rf"\[{name}\] epoch \d+/3 ", line)]
    assert len(steps) == est.n_iter_ == 3
    for k, line in enumerate(steps, start=1):
        assert line.startswith(f"[{name}] epoch {k}/3 ({100 * k / 3:.0f}%) loss=")
        loss = float(re.search(r"loss=(\S+)", line).group(1))
        assert loss == pytest.approx(est.loss_curve_[k - 1], rel=1e-3)
        assert re.search(r"\| \d+\.\d s(, ETA \d+\.\d s)?$", line)
    assert "ETA" in steps[0] and "ETA" not in steps[-1]
    # silent by default
    est.set_params(verbose=0)
    est.fit(X, y) if needs_y else est.fit(X)
    assert capsys.readouterr().out == ""
