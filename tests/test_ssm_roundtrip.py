"""S5 / LRU round trips: import → (reduce) → export → the codebases' own forward pass.

The reference forward passes below are written in plain NumPy from the published layer
definitions (S5: Smith et al., ICLR 2023, `s5/ssm.py`: zoh / bilinear discretisation,
`conj_sym`, `bidirectional`, `step_rescale`, `clip_eigs`; LRU: Orvieto et al., ICML 2023,
`lru/model.py`: the exp-exp pole map and the γ normalisation). They share no code with jaxlqo:
every equality below is between an S5 / LRU layer run on the exported parameters and jaxlqo's
own simulation of the system it claims they hold.
"""

from functools import partial

import equinox as eqx
import numpy as np
import pytest

import jaxlqo as lqo
import jaxlqo.ssm as ssm

P, H, L = 4, 3, 10  # few distinct shapes: every test shares them (compiled once)
ATOL = 1e-10
# Compiled once per shape: eager dispatch of the closed forms is slower than compiling them.
h2_error, simulate = eqx.filter_jit(lqo.h2_error), eqx.filter_jit(lqo.simulate)


# ---------------------------------------------------------------- reference layers (NumPy)


def _complex(x):
    x = np.asarray(x)
    return x if np.iscomplexobj(x) else x[..., 0] + 1j * x[..., 1]


def s5_forward(p, u, *, conj_sym=True, discretization="zoh", step_rescale=1.0, clip_eigs=False):
    """S5SSM.__call__: discretise, scan forwards (and backwards), `Re(C̃ x)` (×2), `+ D ⊙ u`."""
    lam_re = np.asarray(p["Lambda_re"])
    if clip_eigs:
        lam_re = np.minimum(lam_re, -1e-4)
    lam = lam_re + 1j * np.asarray(p["Lambda_im"])
    n = lam.shape[0]
    b_tilde = _complex(p["B"])
    if "C1" in p:
        c_tilde = np.concatenate([_complex(p["C1"]), _complex(p["C2"])], axis=1)
    else:
        c_tilde = _complex(p["C"])
    bidirectional = c_tilde.shape[1] == 2 * n
    delta = step_rescale * np.exp(np.reshape(p["log_step"], (n, -1))[:, 0])
    if discretization == "zoh":
        lam_bar = np.exp(lam * delta)
        b_bar = ((lam_bar - 1) / lam)[:, None] * b_tilde
    else:
        inverse = 1 / (1 - delta / 2 * lam)
        lam_bar, b_bar = inverse * (1 + delta / 2 * lam), (inverse * delta)[:, None] * b_tilde
    drive = u @ b_bar.T  # (L, n)
    forward = np.zeros_like(drive)
    state = np.zeros(n, complex)
    for k in range(len(u)):  # x_k = Λ̄ x_{k-1} + B̄ u_k: the state includes the current input
        state = lam_bar * state + drive[k]
        forward[k] = state
    states = forward
    if bidirectional:  # the same recurrence run from the end (associative_scan(reverse=True))
        backward = np.zeros_like(drive)
        state = np.zeros(n, complex)
        for k in reversed(range(len(u))):
            state = lam_bar * state + drive[k]
            backward[k] = state
        states = np.concatenate([forward, backward], axis=1)
    y = (states @ c_tilde.T).real
    return (2 * y if conj_sym else y) + np.asarray(p["D"]) * u


def lru_forward(p, u):
    """LRU.__call__: `λ = exp(−e^ν + i e^θ)`, `B = (B_re + i B_im) γ`, `y = Re(C h) + D ⊙ u`."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b = p["B_re"] + 1j * p["B_im"]
    if "gamma_log" in p:
        b = b * np.exp(p["gamma_log"])[:, None]
    c = p["C_re"] + 1j * p["C_im"]
    state = np.zeros(lam.shape[0], complex)
    ys = []
    for u_k in u:
        state = lam * state + b @ u_k
        ys.append((c @ state).real + p["D"] * u_k)
    return np.array(ys)


def _impulse_energy(forward, first, second=None, K=200):
    """Σ over lags |i| ≤ K of ‖kernel(first) − kernel(second)‖²_F (`forward(params, u)`)."""
    total = 0.0
    for j in range(H):
        u = np.zeros((2 * K + 1, H))
        u[K, j] = 1.0  # an impulse at the centre: lags −K … K
        other = 0.0 if second is None else forward(second, u)
        total += np.sum((forward(first, u) - other) ** 2)
    return total


# ---------------------------------------------------------------- parameter sets


def s5_params(rng, layout="uni", n=P):
    """A random S5 layer in S5's layout; `layout`: "uni", "C1C2" or "C2P" (bidirectional)."""
    delta = rng.uniform(0.2, 0.6, n)
    p = {
        # |Λ̄| = exp(Re Λ Δ) in about [0.55, 0.9]: kernels decay well within the test horizons
        "Lambda_re": -rng.uniform(0.25, 1.0, n) / delta,
        "Lambda_im": rng.uniform(-3.0, 3.0, n),
        "B": rng.normal(size=(n, H, 2)),
        "D": rng.normal(size=(H,)),
        "log_step": np.log(delta)[:, None],
    }
    if layout == "uni":
        p["C"] = rng.normal(size=(H, n, 2))
    elif layout == "C1C2":
        p["C1"], p["C2"] = rng.normal(size=(H, n, 2)), rng.normal(size=(H, n, 2))
    else:
        p["C"] = rng.normal(size=(H, 2 * n, 2))
    return p


def lru_params(rng, gamma=True, n=P):
    modulus = rng.uniform(0.5, 0.9, n)
    p = {
        "nu_log": np.log(-np.log(modulus)),
        "theta_log": np.log(rng.uniform(0.1, 2 * np.pi, n)),
        "B_re": rng.normal(size=(n, H)),
        "B_im": rng.normal(size=(n, H)),
        "C_re": rng.normal(size=(H, n)),
        "C_im": rng.normal(size=(H, n)),
        "D": rng.normal(size=(H,)),
    }
    if gamma:
        p["gamma_log"] = np.log(np.sqrt(1 - modulus**2)) + rng.normal(scale=0.1, size=n)
    return p


def _bt(sys, r=2):
    """Balanced truncation, through the compiled path the whole-model functions use.

    (`compress_layer(..., method="bt")` is `lqo.balanced_truncation` of the block under one
    `filter_jit`; sharing it keeps this file to one compilation per shape.)
    """
    return ssm.compress_layer(sys, r, method="bt").value


def _run(sys, u):
    """jaxlqo's simulation of a (possibly bidirectional, p = 2m) layer."""
    if sys.p == 2 * sys.m:
        return np.asarray(ssm.simulate_bidirectional(sys, u))
    return np.asarray(simulate(sys, u))


# ---------------------------------------------------------------- S5


@pytest.mark.parametrize("layout", ["uni", "C1C2", "C2P"])
@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_s5_import_reduce_export(rng, discretization, conj_sym, layout):
    settings = dict(conj_sym=conj_sym, discretization=discretization, step_rescale=1.5)
    params = s5_params(rng, layout)
    u = rng.normal(size=(L, H))

    sys = ssm.system_from_s5(params, **settings)
    assert sys.p == (H if layout == "uni" else 2 * H) and sys.n == P
    np.testing.assert_allclose(_run(sys, u), s5_forward(params, u, **settings), atol=ATOL)

    # Export as it is, with another step per state: S5's forward pass runs the same layer.
    stacked = layout == "C2P"
    out = ssm.system_to_s5(sys, step=rng.uniform(0.1, 1.0, P), stacked_readout=stacked, **settings)
    assert set(out) == set(params) and all(out[k].shape == params[k].shape for k in out)
    np.testing.assert_allclose(s5_forward(out, u, **settings), _run(sys, u), atol=ATOL)
    again = ssm.system_from_s5(out, **settings)
    np.testing.assert_allclose(np.asarray(again.D), np.asarray(sys.D), atol=ATOL)
    np.testing.assert_allclose(np.asarray(again.poles), np.asarray(sys.poles), atol=ATOL)

    # Reduce, make exact for the layer, export, run S5 with P' = 2 states.
    rom = _bt(sys)
    with pytest.raises(ValueError, match="exportable"):
        ssm.system_to_s5(rom, **settings)  # D̂ = D is not an S5 layer's feedthrough
    layer = ssm.exportable(rom)
    out = ssm.system_to_s5(layer, step=0.4, stacked_readout=stacked, **settings)
    assert out["Lambda_re"].shape == (2,) and out["B"].shape == (2, H, 2)
    reference = s5_forward(out, u, **settings)
    np.testing.assert_allclose(reference, _run(layer, u), atol=ATOL)
    # exportable changes lag 0 only, and only where the layer's elementwise D cannot reach.
    for field in ("poles", "B", "C"):
        np.testing.assert_array_equal(getattr(layer, field), getattr(rom, field))
    dropped = np.asarray(rom.D - layer.D)
    if layout != "uni":  # the map sees the two directions' lag-0 terms added up
        dropped = dropped[:H] + dropped[H:]
    np.testing.assert_allclose(np.diag(dropped), 0, atol=1e-13)
    assert np.linalg.norm(dropped) > 1e-3


def test_s5_export_options(rng):
    params = s5_params(rng)
    u = rng.normal(size=(L, H))
    sys = ssm.system_from_s5(params)
    # clip_eigs: an exported Re Λ above −1e-4 would be clipped by S5; a small step keeps it out.
    with pytest.raises(ValueError, match="smaller `step`"):
        ssm.system_to_s5(sys, clip_eigs=True, step=1e5)
    out = ssm.system_to_s5(sys, clip_eigs=True, step=0.5)
    np.testing.assert_allclose(s5_forward(out, u, clip_eigs=True), _run(sys, u), atol=ATOL)
    # step_rescale is applied on top of exp(log_step), as S5 does.
    out = ssm.system_to_s5(sys, step=0.5, step_rescale=4.0)
    np.testing.assert_allclose(out["log_step"][:, 0], np.log(0.125), atol=1e-15)
    np.testing.assert_allclose(s5_forward(out, u, step_rescale=4.0), _run(sys, u), atol=ATOL)
    with pytest.raises(ValueError, match="'zoh' or 'bilinear'"):
        ssm.system_to_s5(sys, discretization="euler")
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        ssm.system_to_s5(sys, step=np.ones(3))
    with pytest.raises(ValueError, match="bidirectional=True"):
        ssm.system_to_s5(sys, bidirectional=True)
    zero_pole = lqo.DiagonalLQOSystem(
        np.array([0.0, 0.5]), np.ones((2, H)), np.ones((H, 2)), dt=1.0
    )
    with pytest.raises(ValueError, match="zero pole"):
        ssm.system_to_s5(zero_pole)
    with pytest.raises(TypeError, match="discrete-time"):
        ssm.system_to_s5(lqo.DiagonalLQOSystem(sys.poles, sys.B, sys.C, sys.D, dt=None))


# ---------------------------------------------------------------- bidirectional layers


def _check_bidirectional_reduction(params, sys, roms, u):
    """Each reduced stacked system: one (λ̂, B̂), the error of both directions, S5 runs it."""
    forward, backward = ssm.split_directions(sys)
    for name, rom in roms.items():
        assert rom.n == 2 and rom.p == 2 * H and bool(lqo.is_stable(rom)), name
        stacked = float(h2_error(sys, rom))
        f, b = ssm.split_directions(rom)
        both = float(h2_error(forward, f)) ** 2 + float(h2_error(backward, b)) ** 2
        np.testing.assert_allclose(stacked**2, both, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(float(ssm.bidirectional_h2_error(sys, rom)), stacked, rtol=1e-9)
        # Exported, S5 runs the reduced layer; its true error is the map's, measured by S5.
        layer = ssm.exportable(rom)
        out = ssm.system_to_s5(layer)
        np.testing.assert_allclose(s5_forward(out, u), _run(layer, u), atol=ATOL, err_msg=name)
        energy = _impulse_energy(s5_forward, out, params)
        np.testing.assert_allclose(
            float(ssm.bidirectional_h2_error(sys, layer)) ** 2, energy, rtol=1e-6, err_msg=name
        )


@pytest.fixture(scope="module")
def bidirectional():
    params = s5_params(np.random.default_rng(1), "C1C2")
    sys = ssm.system_from_s5(params)
    return params, sys, _bt(sys)  # lqo.balanced_truncation, compiled (see _bt)


def test_bidirectional_truncations(rng, bidirectional):
    params, sys, bt = bidirectional
    np.testing.assert_allclose(  # the bidirectional h2 norm is that of the map S5 runs
        float(ssm.bidirectional_h2_norm(sys)) ** 2, _impulse_energy(s5_forward, params), rtol=1e-9
    )
    roms = {"balanced_truncation": bt, "modal_truncation": lqo.modal_truncation(sys, 2).value}
    _check_bidirectional_reduction(params, sys, roms, rng.normal(size=(L, H)))


@pytest.mark.slow  # two L-BFGS compilations (~40 s of CPU on 2 cores); run by CI
def test_bidirectional_optimising_reducers(rng, bidirectional):
    params, sys, bt = bidirectional
    roms = {
        "reduce": lqo.reduce(sys, 2, init=bt, max_steps=5).value,
        "tlh2": lqo.tlh2(sys, 2, horizon=3 * L, init=bt, max_steps=5).value,
    }
    _check_bidirectional_reduction(params, sys, roms, rng.normal(size=(L, H)))


def test_simulate_bidirectional_is_forward_plus_reversed_backward(rng):
    sys = ssm.system_from_s5(s5_params(rng, "C2P"))
    u = rng.normal(size=(L, H))
    forward, backward = ssm.split_directions(sys)
    expected = np.asarray(simulate(forward, u)) + np.asarray(simulate(backward, u[::-1]))[::-1]
    np.testing.assert_allclose(np.asarray(ssm.simulate_bidirectional(sys, u)), expected, atol=1e-13)
    with pytest.raises(ValueError, match="even number of outputs"):
        ssm.simulate_bidirectional(lqo.DiagonalLQOSystem(sys.poles, sys.B, sys.C[:3], dt=1.0), u)


# ---------------------------------------------------------------- LRU


@pytest.mark.parametrize("gamma", [True, False])
def test_lru_import_reduce_export(rng, gamma):
    params = lru_params(rng, gamma)
    u = rng.normal(size=(L, H))
    sys = ssm.system_from_lru(params)
    np.testing.assert_allclose(_run(sys, u), lru_forward(params, u), atol=ATOL)
    out = ssm.system_to_lru(sys, gamma=gamma)
    assert set(out) == set(params)
    np.testing.assert_allclose(lru_forward(out, u), _run(sys, u), atol=ATOL)
    if gamma:  # the LRU's normalisation γ = sqrt(1 − |λ|²) is written out
        modulus = np.exp(-np.exp(out["nu_log"]))
        np.testing.assert_allclose(np.exp(out["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-12)
    layer = ssm.exportable(_bt(sys))
    out = ssm.system_to_lru(layer, gamma=gamma)
    assert out["nu_log"].shape == (2,) and out["C_re"].shape == (H, 2)
    np.testing.assert_allclose(lru_forward(out, u), _run(layer, u), atol=ATOL)


def test_lru_export_phases_and_errors(rng):
    # A real positive, a real negative and a lower-half-plane pole: the LRU's phase is positive.
    poles = np.array([0.7, -0.6, 0.5 * np.exp(-2.0j), 0.3j])
    sys = lqo.DiagonalLQOSystem(
        poles,
        rng.normal(size=(4, H)) + 1j * rng.normal(size=(4, H)),
        rng.normal(size=(H, 4)) + 1j * rng.normal(size=(H, 4)),
        np.diag(rng.normal(size=H)),
        dt=1.0,
    )
    layer = ssm.exportable(sys)
    out = ssm.system_to_lru(layer)
    assert np.all(np.exp(out["theta_log"]) > 0) and np.all(np.exp(out["theta_log"]) <= 2 * np.pi)
    u = rng.normal(size=(L, H))
    np.testing.assert_allclose(lru_forward(out, u), _run(layer, u), atol=ATOL)
    unstable = lqo.DiagonalLQOSystem(np.array([1.2, 0.5]), np.ones((2, H)), np.ones((H, 2)), dt=1.0)
    with pytest.raises(ValueError, match=r"\|λ\| < 1"):
        ssm.system_to_lru(ssm.exportable(unstable))
    bidirectional = ssm.system_from_s5(s5_params(rng, "C1C2"))
    with pytest.raises(ValueError, match="system_to_s5"):
        ssm.system_to_lru(bidirectional)
    # float32 parameters stay float32 (to float32 rounding).
    single = {k: v.astype(np.float32) for k, v in lru_params(rng).items()}
    out = ssm.system_to_lru(ssm.system_from_lru(single))
    assert all(v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(lru_forward(out, u), lru_forward(single, u), atol=1e-4)


# ---------------------------------------------------------------- whole models


def _s5_tree(rng):
    """An S5 classifier's parameter tree: an encoder, a unidirectional and a bidirectional layer."""
    return {
        "params": {
            "encoder": {"encoder": {"kernel": rng.normal(size=(2, H)), "bias": np.zeros(H)}},
            "layers_0": {"seq": s5_params(rng, "uni"), "norm": {"scale": np.ones(H)}},
            "layers_1": {"seq": s5_params(rng, "C1C2"), "norm": {"scale": np.ones(H)}},
            "decoder": {"kernel": rng.normal(size=(H, 5))},
        }
    }


def _layer_inputs(tree, x, settings):
    """The inputs each SSM sees in a stand-in model (encoder, SSM, tanh, SSM): (N, L, H) each."""
    enc = tree["params"]["encoder"]["encoder"]
    first = x @ enc["kernel"] + enc["bias"]
    second = np.tanh(
        np.stack([s5_forward(tree["params"]["layers_0"]["seq"], s, **settings) for s in first])
    )
    return [first, second]


@pytest.mark.parametrize("method", ["modal", "bt-input"])
def test_compress_s5_whole_model(rng, tmp_path, method):
    settings = dict(conj_sym=True, discretization="bilinear", step_rescale=1.0)
    tree = _s5_tree(rng)
    moments = None
    if method.endswith("-input"):  # what a user computes with their own model
        inputs = _layer_inputs(tree, rng.normal(size=(8, L, 2)), settings)
        moments = [ssm.input_second_moment(s) for s in inputs]
    new, info = ssm.compress_s5(tree, 2, method=method, second_moments=moments, **settings)
    prefixes = ["params/layers_0/seq/", "params/layers_1/seq/"]
    assert info["layers"] == prefixes and info["bidirectional"] == dict(
        zip(prefixes, [False, True], strict=True)
    )
    # Everything else passes through untouched; the SSM leaves have P' = 2 states.
    assert (
        new["params"]["encoder"]["encoder"]["kernel"]
        is tree["params"]["encoder"]["encoder"]["kernel"]
    )
    assert new["params"]["decoder"]["kernel"] is tree["params"]["decoder"]["kernel"]
    assert set(new["params"]["layers_1"]["seq"]) == set(tree["params"]["layers_1"]["seq"])
    assert new["params"]["layers_1"]["seq"]["C1"].shape == (H, 2, 2)
    u = rng.normal(size=(L, H))
    for pre, name in zip(prefixes, ["layers_0", "layers_1"], strict=True):
        old_layer, new_layer = tree["params"][name]["seq"], new["params"][name]["seq"]
        layer = info["systems"][pre]
        np.testing.assert_allclose(s5_forward(new_layer, u, **settings), _run(layer, u), atol=ATOL)
        # The reported error is the exported layer's, as S5 itself runs it.
        energy = _impulse_energy(partial(s5_forward, **settings), new_layer, old_layer)
        np.testing.assert_allclose(info["h2_errors"][pre] ** 2, energy, rtol=1e-6)
        assert 0 < info["h2_errors"][pre] < info["h2_norms"][pre]
    # A flat .npz of the same tree gives a flat dict of the same values.
    flat = tmp_path / "model.npz"
    layers = {
        pre: tree["params"][name]["seq"]
        for pre, name in zip(prefixes, ["layers_0", "layers_1"], strict=True)
    }
    np.savez(flat, **{pre + k: v for pre, layer in layers.items() for k, v in layer.items()})
    new_flat, info_flat = ssm.compress_s5(
        flat, [2, 2], method=method, second_moments=moments, **settings
    )
    np.testing.assert_allclose(
        new_flat["params/layers_1/seq/C2"], new["params"]["layers_1"]["seq"]["C2"]
    )
    assert info_flat["h2_errors"] == pytest.approx(info["h2_errors"], rel=1e-12)


def test_compress_lru_whole_model(rng):
    tree = {
        "encoder": {
            "layers_0": {"seq": lru_params(rng)},
            "layers_1": {"seq": lru_params(rng, False)},
        }
    }
    ranks = {"encoder/layers_0/seq/": 2, "encoder/layers_1/seq/": 2}
    new, info = ssm.compress_lru(tree, ranks, method="modal")
    first, second = new["encoder"]["layers_0"]["seq"], new["encoder"]["layers_1"]["seq"]
    assert first["nu_log"].shape == (2,) and second["C_re"].shape == (H, 2)
    assert "gamma_log" in first and "gamma_log" not in second  # the input's own layout
    u = rng.normal(size=(L, H))
    layer = info["systems"]["encoder/layers_0/seq/"]
    np.testing.assert_allclose(lru_forward(first, u), _run(layer, u), atol=ATOL)
    energy = _impulse_energy(lru_forward, first, tree["encoder"]["layers_0"]["seq"])
    np.testing.assert_allclose(info["h2_errors"]["encoder/layers_0/seq/"] ** 2, energy, rtol=1e-6)


def test_compress_s5_keeps_the_input_layout(rng):
    """Complex `B`, `C` and a flat `log_step` (layouts S5 ports use) come back in that layout."""
    layer = s5_params(rng)
    layer = dict(
        layer, B=_complex(layer["B"]), C=_complex(layer["C"]), log_step=layer["log_step"][:, 0]
    )
    new, info = ssm.compress_s5({"seq": layer}, 2, method="modal")
    out = new["seq"]
    assert np.iscomplexobj(out["B"]) and out["B"].shape == (2, H) and out["C"].shape == (H, 2)
    assert out["log_step"].shape == (2,)
    u = rng.normal(size=(L, H))
    np.testing.assert_allclose(s5_forward(out, u), _run(info["systems"]["seq/"], u), atol=ATOL)


def test_compress_errors(rng):
    tree = {"layers_0": {"seq": s5_params(rng)}}
    with pytest.raises(ValueError, match="not available for a parameter tree"):
        ssm.compress_s5(tree, 2, method="bound-input")
    with pytest.raises(ValueError, match="needs `second_moments`"):
        ssm.compress_s5(tree, 2, method="bt-input")
    with pytest.raises(ValueError, match="ignores `second_moments`"):
        ssm.compress_s5(tree, 2, method="bt", second_moments=[np.eye(H)])
    with pytest.raises(ValueError, match="between 1 and its 4 states"):
        ssm.compress_s5(tree, 5)
    with pytest.raises(ValueError, match="one entry per SSM layer"):
        ssm.compress_s5(tree, [2, 2])
    with pytest.raises(ValueError, match="no entry for the layers"):
        ssm.compress_s5(tree, {"layers_1/seq/": 2})
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        ssm.compress_s5(tree, 2, method="bt-input", second_moments=[np.eye(2)])
    with pytest.raises(ValueError, match="no LRU layer"):
        ssm.compress_lru(tree, 2)
