"""DiscreteDenseAM: the sign dynamics against brute-force energy evaluations."""

import math
from fractions import Fraction

import numpy as np
import pytest
import sklearn

from skam import DiscreteDenseAM, HopfieldNetwork
from skam.datasets import flip_bits

SEPARATIONS = [
    ("quadratic", 2),
    ("poly", 2),
    ("poly", 3),
    ("poly", 4),
    ("rectified_poly", 3),
    ("exp", 3),
]


def _raw_F(x, separation, degree, beta):
    """The tutorial's separation functions, written out (no normalisation).

    Polynomials in exact rational arithmetic (``x`` is an integer overlap),
    so that ties are ties.
    """
    if separation in ("quadratic", "poly"):
        return Fraction(x) ** degree / degree
    if separation == "rectified_poly":
        return Fraction(max(x, 0)) ** degree / degree
    return math.exp(beta * x)


def _brute_energy(s, patterns, weights, separation, degree, beta):
    """``-sum_mu w_mu F(xi_mu . s)`` of one state, one pattern at a time."""
    exact = separation != "exp"
    total = Fraction(0) if exact else 0.0
    for mu in range(patterns.shape[0]):
        m = int(round(float(patterns[mu] @ s)))
        w = Fraction(float(weights[mu])) if exact else float(weights[mu])
        total += w * _raw_F(m, separation, degree, beta)
    return -total


def _brute_sync_step(S, patterns, weights, separation, degree, beta):
    """Every neuron to the sign of lower brute-force energy (ties: +1)."""
    out = np.empty_like(S)
    for r, s in enumerate(S):
        for i in range(S.shape[1]):
            up, down = s.copy(), s.copy()
            up[i], down[i] = 1.0, -1.0
            e_up = _brute_energy(up, patterns, weights, separation, degree, beta)
            e_down = _brute_energy(down, patterns, weights, separation, degree, beta)
            out[r, i] = 1.0 if e_up <= e_down else -1.0
    return out


def _random_problem(seed, K=25, D=10, n=12, weighted=False):
    rng = np.random.RandomState(seed)
    patterns = np.sign(rng.randn(K, D))
    S = np.sign(rng.randn(n, D))
    weights = rng.uniform(0.5, 2.0, K) if weighted else np.ones(K)
    return patterns, S, weights


def _model(separation, degree, **params):
    if separation == "quadratic":
        return DiscreteDenseAM(separation="quadratic", **params)
    return DiscreteDenseAM(separation=separation, degree=degree, **params)


@pytest.mark.parametrize("separation, degree", SEPARATIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_sync_step_matches_brute_force_energy_difference(separation, degree, weighted):
    beta = 0.7
    for seed in range(3):
        patterns, S, w = _random_problem(seed, weighted=weighted)
        am = _model(separation, degree, beta=beta, update="sync", max_iter=1)
        am.fit(patterns, sample_weight=w if weighted else None)
        expected = _brute_sync_step(S, patterns, w, separation, degree, beta)
        np.testing.assert_array_equal(am.transform(S), expected)


def _naive_async(S, patterns, weights, separation, degree, beta, seed, max_iter):
    """Async sweeps in the estimator's neuron orders, brute-force energies."""
    rng = np.random.RandomState(seed)
    S = S.copy()
    for _ in range(max_iter):
        before = S.copy()
        for i in rng.permutation(S.shape[1]):
            for s in S:
                up, down = s.copy(), s.copy()
                up[i], down[i] = 1.0, -1.0
                e_up = _brute_energy(up, patterns, weights, separation, degree, beta)
                e_down = _brute_energy(
                    down, patterns, weights, separation, degree, beta
                )
                s[i] = 1.0 if e_up <= e_down else -1.0
        if np.array_equal(S, before):
            break
    return S


@pytest.mark.parametrize("separation, degree", SEPARATIONS)
def test_async_dynamics_match_a_naive_loop(separation, degree):
    patterns, S, w = _random_problem(4, K=30, D=9, n=8, weighted=True)
    beta = 0.5
    am = _model(separation, degree, beta=beta, random_state=3, max_iter=20)
    am.fit(patterns, sample_weight=w)
    seed = np.random.RandomState(3).randint(np.iinfo(np.int32).max)
    expected = _naive_async(S, patterns, w, separation, degree, beta, seed, 20)
    np.testing.assert_array_equal(am.transform(S), expected)


@pytest.mark.parametrize("separation, degree", SEPARATIONS)
def test_async_energy_never_increases_and_ends_at_a_fixed_point(separation, degree):
    rng = np.random.RandomState(7)
    D = 40
    patterns = np.sign(rng.randn(300, D))  # far above capacity: rough landscape
    Q = np.sign(rng.randn(30, D))
    am = _model(separation, degree, beta=0.3, random_state=0).fit(patterns)
    # energy after every single sweep: never up
    previous = am.energy(Q)
    state = Q
    for _ in range(6):
        state = am.set_params(max_iter=1).transform(state)
        now = am.energy(state)
        assert np.all(now <= previous + 1e-9 * np.abs(previous).max())
        previous = now
    result = am.set_params(max_iter=100).descend(Q)
    assert result.converged.all()
    # a fixed point: no single flip lowers the brute-force energy
    for s in result.states[:5]:
        e = _brute_energy(s, patterns, np.ones(300), separation, degree, 0.3)
        for i in range(D):
            t = s.copy()
            t[i] *= -1
            assert _brute_energy(
                t, patterns, np.ones(300), separation, degree, 0.3
            ) >= (e - 1e-9 * abs(e))


@pytest.mark.parametrize("separation, degree", SEPARATIONS)
def test_energy_matches_brute_force(separation, degree):
    patterns, S, w = _random_problem(5, weighted=True)
    D = patterns.shape[1]
    am = _model(separation, degree, beta=0.4).fit(patterns, sample_weight=w)
    got = am.energy(S)
    if separation == "quadratic":  # -1/2 s W s, W = Xi^T diag(w) Xi / D, zero diagonal
        raw = np.array([float(_brute_energy(s, patterns, w, "poly", 2, 0)) for s in S])
        expected = (raw * 2 + w.sum() * D) / (2 * D)
    elif separation == "exp":  # -(1/beta) log sum_mu w_mu exp(beta m)
        raw = np.array([_brute_energy(s, patterns, w, "exp", 0, 0.4) for s in S])
        expected = -np.log(-raw) / 0.4
    else:  # F(x) = (D/n)(x/D)^n: the tutorial's x^n/n times D^(1-n)
        raw = np.array(
            [float(_brute_energy(s, patterns, w, separation, degree, 0)) for s in S]
        )
        expected = raw * D ** (1 - degree)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_quadratic_is_the_hopfield_network_and_poly_degree_two():
    rng = np.random.RandomState(8)
    patterns = np.sign(rng.randn(12, 50))
    Q = flip_bits(patterns, 0.2, random_state=0)
    for update in ("async", "sync"):
        hop = HopfieldNetwork(update=update, random_state=1).fit(patterns)
        quad = DiscreteDenseAM(separation="quadratic", update=update, random_state=1)
        poly = DiscreteDenseAM(
            separation="poly", degree=2, update=update, random_state=1
        )
        out = hop.transform(Q)
        np.testing.assert_array_equal(quad.fit(patterns).transform(Q), out)
        np.testing.assert_array_equal(poly.fit(patterns).transform(Q), out)
        np.testing.assert_allclose(quad.energy(Q), hop.energy(Q))
        # same energy up to the constant of the zero diagonal
        np.testing.assert_allclose(poly.energy(Q), hop.energy(Q) - 12 / 2)


def test_exponential_separation_never_overflows():
    rng = np.random.RandomState(9)
    D = 3000  # exp(beta * D) overflows float64 (and float32) many times over
    patterns = np.sign(rng.randn(20, D))
    for dtype in (np.float64, np.float32):
        am = DiscreteDenseAM(separation="exp", beta=10.0, update="sync")
        am.fit(patterns.astype(dtype))
        Q = flip_bits(patterns, 0.3, random_state=0).astype(dtype)
        out = am.transform(Q)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, patterns)
        energy = am.energy(Q)
        assert np.all(np.isfinite(energy))
        # -(1/beta) log sum exp(beta m) = -max m up to log(K)/beta
        m = (Q @ patterns.T).max(axis=1)
        np.testing.assert_allclose(energy, -m, atol=math.log(20) / 10 + 1e-3 * D)


def test_high_degree_polynomial_is_finite_in_float32():
    rng = np.random.RandomState(10)
    patterns = np.sign(rng.randn(50, 200)).astype(np.float32)
    am = DiscreteDenseAM(degree=30, update="sync").fit(patterns)
    Q = flip_bits(patterns, 0.2, random_state=0).astype(np.float32)
    np.testing.assert_array_equal(am.transform(Q), patterns)
    assert np.all(np.isfinite(am.energy(Q)))


@pytest.mark.parametrize("update", ["async", "sync"])
def test_results_do_not_depend_on_the_chunk_size(update):
    rng = np.random.RandomState(11)
    patterns = np.sign(rng.randn(400, 60))
    Q = np.sign(rng.randn(40, 60))
    am = DiscreteDenseAM(degree=3, update=update, random_state=0).fit(patterns)
    full = am.descend(Q)
    with sklearn.config_context(working_memory=0.05):  # a few queries per chunk
        small = am.descend(Q)
    np.testing.assert_array_equal(small.states, full.states)
    np.testing.assert_array_equal(small.n_iter, full.n_iter)


def test_float32_stays_float32_and_agrees_with_float64():
    rng = np.random.RandomState(12)
    patterns = np.sign(rng.randn(150, 64))
    Q = flip_bits(patterns, 0.15, random_state=0)
    am64 = DiscreteDenseAM(degree=4, random_state=0).fit(patterns)
    am32 = DiscreteDenseAM(degree=4, random_state=0).fit(patterns.astype(np.float32))
    out = am32.transform(Q.astype(np.float32))
    assert (
        out.dtype == np.float32
        and am32.energy(Q.astype(np.float32)).dtype == np.float32
    )
    np.testing.assert_array_equal(out, am64.transform(Q))


def test_fixed_random_state_is_deterministic_and_orders_differ():
    rng = np.random.RandomState(13)
    patterns = np.sign(rng.randn(80, 30))  # above capacity: order matters
    Q = np.sign(rng.randn(50, 30))
    a = DiscreteDenseAM(degree=2, random_state=5).fit(patterns).transform(Q)
    b = DiscreteDenseAM(degree=2, random_state=5).fit(patterns).transform(Q)
    c = DiscreteDenseAM(degree=2, random_state=6).fit(patterns).transform(Q)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sync_update_can_two_cycle_and_reports_it():
    # two anti-aligned halves: the synchronous update swaps them forever
    patterns = np.array([[1.0, 1.0, -1.0, -1.0]])
    am = DiscreteDenseAM(separation="quadratic", update="sync", max_iter=10)
    result = am.fit(patterns).descend(np.array([[1.0, -1.0, 1.0, -1.0]]))
    if not result.converged[0]:
        assert result.n_iter[0] == 10
    async_result = am.set_params(update="async", random_state=0).descend(
        np.array([[1.0, -1.0, 1.0, -1.0]])
    )
    assert async_result.converged[0]


def test_partial_fit_equals_fit_and_weights_equal_repetition():
    rng = np.random.RandomState(14)
    patterns = np.sign(rng.randn(60, 32))
    Q = flip_bits(patterns, 0.2, random_state=0)
    for separation in ("poly", "quadratic", "exp"):
        full = DiscreteDenseAM(separation=separation, random_state=0).fit(patterns)
        part = DiscreteDenseAM(separation=separation, random_state=0)
        part.partial_fit(patterns[:25]).partial_fit(patterns[25:])
        np.testing.assert_array_equal(part.transform(Q), full.transform(Q))
        np.testing.assert_allclose(part.energy(Q), full.energy(Q))
        w = rng.randint(0, 3, 60)
        w[0] = 1
        weighted = DiscreteDenseAM(separation=separation, random_state=0)
        weighted.fit(patterns, sample_weight=w)
        repeated = DiscreteDenseAM(separation=separation, random_state=0)
        repeated.fit(np.repeat(patterns, w, axis=0))
        np.testing.assert_array_equal(weighted.transform(Q), repeated.transform(Q))
        np.testing.assert_allclose(weighted.energy(Q), repeated.energy(Q))


def test_predict_names_the_recalled_pattern():
    rng = np.random.RandomState(15)
    patterns = np.sign(rng.randn(50, 100))
    am = DiscreteDenseAM(degree=3, random_state=0).fit(patterns)
    Q = flip_bits(patterns, 0.1, random_state=0)
    np.testing.assert_array_equal(am.predict(Q), np.arange(50))
    # inverted pattern: odd degree breaks the E(-s) = E(s) symmetry, but a
    # state equal to no stored pattern is -1
    assert np.all(am.predict(-patterns[:3]) != np.arange(3))
    w = np.ones(50)
    w[4] = 0.0  # a zero-weight pattern is not a memory
    assert (
        DiscreteDenseAM(degree=3)
        .fit(patterns, sample_weight=w)
        .predict(patterns[[4]])[0]
        != 4
    )


def test_fit_runs_no_dynamics(monkeypatch):
    import skam.discrete

    def boom(*args, **kwargs):
        raise AssertionError("fit must not run the dynamics")

    monkeypatch.setattr(skam.discrete, "run_dynamics", boom)
    DiscreteDenseAM().fit(np.sign(np.random.RandomState(0).randn(30, 10)))
    HopfieldNetwork().fit(np.sign(np.random.RandomState(0).randn(30, 10)))


@pytest.mark.parametrize(
    "separation, degree", [("poly", 3), ("exp", 3), ("quadratic", 2)]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_array_api_strict_offload_matches_numpy(separation, degree, dtype):
    rng = np.random.RandomState(16)
    patterns = np.sign(rng.randn(40, 24)).astype(dtype)
    Q = flip_bits(patterns, 0.2, random_state=0).astype(dtype)
    w = rng.uniform(0.5, 1.5, 40)
    for update in ("async", "sync"):
        params = dict(
            separation=separation, degree=degree, update=update, random_state=0
        )
        ref = DiscreteDenseAM(**params).fit(patterns, sample_weight=w)
        off = DiscreteDenseAM(backend="array_api_strict", **params)
        off.fit(patterns, sample_weight=w)
        for method in ("transform", "predict", "energy"):
            a, b = getattr(ref, method)(Q), getattr(off, method)(Q)
            assert type(b) is np.ndarray and b.dtype == a.dtype
            np.testing.assert_allclose(
                b, a, rtol=1e-5 if dtype == np.float32 else 1e-12
            )


def test_array_api_input_is_followed(strict_input):
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.RandomState(17)
    patterns = np.sign(rng.randn(40, 24))
    Q = flip_bits(patterns, 0.2, random_state=0)
    ref = DiscreteDenseAM(random_state=0).fit(patterns).transform(Q)
    with sklearn.config_context(array_api_dispatch=True):
        am = DiscreteDenseAM(random_state=0).fit(strict_input(patterns))
        out = am.transform(strict_input(Q))
        assert out.device == xps.Device("device1")
    np.testing.assert_array_equal(
        np.asarray(xps.asarray(out, device=xps.Device("CPU_DEVICE"))), ref
    )


def test_bad_parameters_name_the_parameter():
    from sklearn.utils._param_validation import InvalidParameterError

    X = np.sign(np.random.RandomState(0).randn(5, 4))
    for params, name in [
        ({"separation": "lse"}, "separation"),
        ({"degree": 1}, "degree"),
        ({"beta": 0.0}, "beta"),
        ({"update": "random"}, "update"),
    ]:
        with pytest.raises(InvalidParameterError, match=name):
            DiscreteDenseAM(**params).fit(X)


def test_hopfield_is_importable_from_its_old_home():
    from skam.memory import HopfieldNetwork as Old

    assert Old is HopfieldNetwork and issubclass(HopfieldNetwork, DiscreteDenseAM)
