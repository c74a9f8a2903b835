"""One progress format for every long fit (``verbose``).

Every iterative ``fit`` of skam reports through :class:`Progress`, so all
estimators print the same line::

    [AMClustering] epoch 12/240 (5%) loss=0.0123 lr=0.01 | 3.2 s, ETA <= 58 s

(name, unit and count of total, the estimator's metrics, elapsed time and the
estimated time left, an upper bound when the fit may stop early). With
``verbose=1`` a line is printed at most every ``min_interval`` seconds (plus
the first and the last step) and every :meth:`Progress.note`; with
``verbose >= 2`` every step. When `tqdm <https://tqdm.github.io>`_ is
installed and standard output is a terminal, a progress bar replaces the
step lines; tqdm is optional and never required.

:func:`convergence_message` is the one text of the ``ConvergenceWarning`` of
a fit with early stopping that ran out of epochs: the facts (where the
monitored loss was best, where it ended, what is kept), then advice that
follows from them.
"""

import sys
import time


def _seconds(s):
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _metric(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_line(name, unit, done, total, elapsed, metrics, *, upper_bound):
    """The progress line (no trailing newline); ``total`` may be None."""
    count = f"{unit} {done}"
    if total:
        count += f"/{total} ({100 * done / total:.0f}%)"
    parts = [f"[{name}] {count}"]
    if metrics:
        parts.append(" ".join(f"{k}={_metric(v)}" for k, v in metrics.items()))
    timing = _seconds(elapsed)
    if total and 0 < done < total:
        left = elapsed / done * (total - done)
        timing += f", ETA {'<= ' if upper_bound else ''}{_seconds(left)}"
    return " ".join(parts) + " | " + timing


def convergence_message(
    name, max_epochs, n_iter_no_change, which, best_epoch, best, last, *,
    kept="memories",
):  # fmt: skip
    """The ConvergenceWarning text when ``max_epochs`` ran out before early stopping.

    ``which`` names the monitored loss ("validation" or "training"),
    ``best_epoch``/``best`` where it was lowest, ``last`` its value at the
    last epoch and ``kept`` what the estimator keeps (of the best epoch).
    """
    text = (
        f"{name}: max_epochs={max_epochs} reached before early stopping "
        f"(n_iter_no_change={n_iter_no_change} epochs without improvement). "
        f"The {which} loss was lowest at epoch {best_epoch} ({best:.4g}) and is "
        f"{last:.4g} at the last epoch; the {kept} of epoch {best_epoch} are "
        "kept. "
    )
    if best_epoch >= max_epochs - 1:
        return text + "It was still improving: consider increasing max_epochs."
    return text + (
        f"It has not improved for the last {max_epochs - best_epoch} epochs "
        "(fewer than n_iter_no_change, so early stopping did not trigger): the "
        f"kept {kept} are the best seen, and a larger max_epochs would most "
        "likely stop early at the same epoch."
    )


def _tqdm_class():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Report the progress of one fit.

    Parameters
    ----------
    name : str
        Shown first on every line (the estimator's class name).
    total : int or None
        Number of steps planned (an upper bound when ``upper_bound``).
    verbose : int
        0 prints nothing, 1 throttled lines, >= 2 one line per step.
    unit : str, default="epoch"
        What a step is.
    upper_bound : bool, default=True
        ``total`` is a maximum (early stopping may end sooner): the ETA is
        printed as ``ETA <= ...``.
    min_interval : float, default=2.0
        Seconds between two step lines at ``verbose=1``.
    bar : {"auto", True, False}, default="auto"
        Use a tqdm bar: "auto" when tqdm is installed and the stream is a
        terminal.
    stream : file-like, default=None
        Where to write (``sys.stdout`` at the time of the call when None).
    clock : callable, default=time.perf_counter
        Seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        name,
        total,
        verbose,
        *,
        unit="epoch",
        upper_bound=True,
        min_interval=2.0,
        bar="auto",
        stream=None,
        clock=time.perf_counter,
    ):
        self.name, self.total, self.verbose = name, total, int(verbose or 0)
        self.unit, self.upper_bound = unit, upper_bound
        self.min_interval = min_interval
        self.stream = sys.stdout if stream is None else stream
        self.clock = clock
        self.start = clock()
        self.done = 0
        self._last_print = None
        self._bar = None
        if self.verbose and bar:
            tqdm = _tqdm_class()
            tty = getattr(self.stream, "isatty", lambda: False)()
            if tqdm is not None and (bar is True or tty):
                self._bar = tqdm(
                    total=total, desc=name, unit=unit, file=self.stream, leave=True
                )

    @property
    def elapsed(self):
        """Seconds since the fit started."""
        return self.clock() - self.start

    def line(self, **metrics):
        """The current progress line."""
        return format_line(
            self.name,
            self.unit,
            self.done,
            self.total,
            self.elapsed,
            metrics,
            upper_bound=self.upper_bound,
        )

    def _write(self, text):
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def step(self, n=1, **metrics):
        """Advance by ``n`` steps and report ``metrics`` (name=value)."""
        self.done += n
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.update(n)
            if metrics:
                self._bar.set_postfix(
                    {k: _metric(v) for k, v in metrics.items()}, refresh=False
                )
            return
        now = self.clock()
        due = (
            self.verbose >= 2
            or self._last_print is None
            or now - self._last_print >= self.min_interval
            or (self.total is not None and self.done >= self.total)
        )
        if due:
            self._last_print = now
            self._write(self.line(**metrics))

    def note(self, text):
        """A message worth a line of its own at ``verbose >= 1``."""
        if self.verbose:
            self._write(f"[{self.name}] {text} | {_seconds(self.elapsed)}")

    def close(self, text=None):
        """End the report (closes the bar); ``text`` is a final note."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if text is not None:
            self.note(text)
