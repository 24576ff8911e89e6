"""Import of S5 / LRU parameter sets: the imported system reproduces the raw recurrence."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxlqo as lqo
import jaxlqo.ssm as ssm

P, H, L = 3, 2, 12


def _s5_params(rng) -> dict:
    return {
        "Lambda_re": -rng.uniform(0.1, 1.0, P),
        "Lambda_im": rng.uniform(-2.0, 2.0, P),
        "B": rng.normal(size=(P, H, 2)),
        "C": rng.normal(size=(H, P, 2)),
        "D": rng.normal(size=(H,)),
        "log_step": np.log(rng.uniform(0.05, 0.5, (P, 1))),
    }


def _lru_params(rng) -> dict:
    modulus = rng.uniform(0.5, 0.95, P)
    return {
        "nu_log": np.log(-np.log(modulus)),
        "theta_log": np.log(rng.uniform(0.1, np.pi, P)),
        "gamma_log": np.log(np.sqrt(1 - modulus**2)),
        "B_re": rng.normal(size=(P, H)),
        "B_im": rng.normal(size=(P, H)),
        "C_re": rng.normal(size=(H, P)),
        "C_im": rng.normal(size=(H, P)),
        "D": rng.normal(size=(H,)),
    }


def _s5_reference(p: dict, u: np.ndarray, *, bilinear=False, conj_sym=True) -> np.ndarray:
    """S5's recurrence, written out from the raw parameters (s5/ssm.py, apply_ssm)."""
    lam = p["Lambda_re"] + 1j * p["Lambda_im"]
    b = p["B"][..., 0] + 1j * p["B"][..., 1]
    c = p["C"][..., 0] + 1j * p["C"][..., 1]
    delta = np.exp(p["log_step"][:, 0])
    if bilinear:
        bl = 1 / (1 - delta / 2 * lam)
        lam_bar, b_bar = bl * (1 + delta / 2 * lam), (bl * delta)[:, None] * b
    else:
        lam_bar = np.exp(lam * delta)
        b_bar = (1 / lam * (lam_bar - 1))[:, None] * b
    h = np.zeros(P, complex)
    ys = []
    for u_k in u:
        h = lam_bar * h + b_bar @ u_k  # the state includes the current input
        y = (c @ h).real
        ys.append((2 * y if conj_sym else y) + p["D"] * u_k)
    return np.array(ys)


def _lru_reference(p: dict, u: np.ndarray) -> np.ndarray:
    """The LRU's recurrence from the raw parameters (minimal-LRU lru/model.py, LRU.__call__)."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    c = p["C_re"] + 1j * p["C_im"]
    h = np.zeros(P, complex)
    ys = []
    for u_k in u:
        h = lam * h + b @ u_k
        ys.append((c @ h).real + p["D"] * u_k)
    return np.array(ys)


def _impulses() -> np.ndarray:
    """One impulse per input channel: (H, L, H)."""
    u = np.zeros((H, L, H))
    for j in range(H):
        u[j, 0, j] = 1.0
    return u


def _check_impulse_response(sys, reference):
    assert isinstance(sys, lqo.DiagonalLQOSystem) and sys.dt == 1.0 and sys.n == P
    for u in _impulses():
        np.testing.assert_allclose(np.asarray(lqo.simulate(sys, u)), reference(u), atol=1e-12)


def test_s5_from_npz_impulse_response(rng, tmp_path):
    params = _s5_params(rng)
    path = tmp_path / "s5_layer.npz"
    np.savez(path, **params)
    sys = ssm.system_from_s5(path)
    _check_impulse_response(sys, lambda u: _s5_reference(params, u))
    # A random input too (not only impulses).
    u = rng.normal(size=(L, H))
    np.testing.assert_allclose(
        np.asarray(lqo.simulate(sys, u)), _s5_reference(params, u), atol=1e-12
    )


def test_s5_bilinear_and_no_conj_sym(rng):
    params = _s5_params(rng)
    bilinear = ssm.system_from_s5(params, discretization="bilinear")
    _check_impulse_response(bilinear, lambda u: _s5_reference(params, u, bilinear=True))
    plain = ssm.system_from_s5(params, conj_sym=False)
    _check_impulse_response(plain, lambda u: _s5_reference(params, u, conj_sym=False))


def test_s5_complex_parameters_and_flat_log_step(rng):
    params = _s5_params(rng)
    complex_params = dict(
        params,
        B=params["B"][..., 0] + 1j * params["B"][..., 1],
        C=params["C"][..., 0] + 1j * params["C"][..., 1],
        log_step=params["log_step"][:, 0],
    )
    _check_impulse_response(ssm.system_from_s5(complex_params), lambda u: _s5_reference(params, u))


def test_s5_step_rescale_and_clip_eigs(rng):
    params = _s5_params(rng)
    params["Lambda_re"][0] = 0.3  # an unstable eigenvalue, clipped by clip_eigs
    rescaled = dict(params, log_step=params["log_step"] + np.log(2.0))
    clipped = dict(params, Lambda_re=np.minimum(params["Lambda_re"], -1e-4))
    _check_impulse_response(
        ssm.system_from_s5(params, step_rescale=2.0), lambda u: _s5_reference(rescaled, u)
    )
    _check_impulse_response(
        ssm.system_from_s5(params, clip_eigs=True), lambda u: _s5_reference(clipped, u)
    )
    assert bool(lqo.is_stable(ssm.system_from_s5(params, clip_eigs=True)))
    assert not bool(lqo.is_stable(ssm.system_from_s5(params)))


def test_lru_from_npz_impulse_response(rng, tmp_path):
    params = _lru_params(rng)
    path = tmp_path / "lru_layer.npz"
    np.savez(path, **params)
    sys = ssm.system_from_lru(path)
    _check_impulse_response(sys, lambda u: _lru_reference(params, u))
    without_gamma = {k: v for k, v in params.items() if k != "gamma_log"}
    _check_impulse_response(
        ssm.system_from_lru(without_gamma),
        lambda u: _lru_reference(dict(params, gamma_log=np.zeros(P)), u),
    )


def test_nested_trees_and_prefixes(rng, tmp_path):
    layer0, layer1 = _lru_params(rng), _lru_params(rng)
    tree = {"params": {"encoder": {"layers_0": {"seq": layer0}, "layers_1": {"seq": layer1}}}}
    with pytest.raises(ValueError, match="2 layers.*prefix="):
        ssm.system_from_lru(tree)
    sys1 = ssm.system_from_lru(tree, prefix="params/encoder/layers_1/seq/")
    _check_impulse_response(sys1, lambda u: _lru_reference(layer1, u))
    # A flat .npz with '/'-joined keys, as written from a flattened flax tree.
    path = tmp_path / "model.npz"
    np.savez(path, **{f"layers_0/seq/{k}": v for k, v in layer0.items()})
    _check_impulse_response(ssm.system_from_lru(path), lambda u: _lru_reference(layer0, u))
    with pytest.raises(ValueError, match="no parameters"):
        ssm.system_from_lru(path, prefix="layers_1/seq/")


def test_import_errors(rng):
    s5 = _s5_params(rng)
    with pytest.raises(ValueError, match="lacks the parameters"):
        ssm.system_from_s5({k: v for k, v in s5.items() if k != "log_step"})
    with pytest.raises(ValueError, match="lacks the parameters"):
        ssm.system_from_lru(s5)
    with pytest.raises(ValueError, match=r"`B` must have shape \(3, 2, 2\)"):
        ssm.system_from_s5(dict(s5, B=s5["B"][..., 0]))
    two_readouts = dict(s5, C=np.concatenate([s5["C"], s5["C"]], axis=1))  # (H, 2P, 2)
    assert ssm.system_from_s5(two_readouts).p == 2 * H  # bidirectional, detected
    with pytest.raises(ValueError, match="bidirectional=False"):
        ssm.system_from_s5(two_readouts, bidirectional=False)
    with pytest.raises(ValueError, match="bidirectional=True"):
        ssm.system_from_s5(s5, bidirectional=True)
    with pytest.raises(ValueError, match="both"):
        ssm.system_from_s5(dict(s5, C1=s5["C"], C2=s5["C"]))
    with pytest.raises(ValueError, match="no readout"):
        ssm.system_from_s5({k: v for k, v in s5.items() if k != "C"})
    with pytest.raises(ValueError, match="'zoh' or 'bilinear'"):
        ssm.system_from_s5(s5, discretization="euler")
    with pytest.raises(TypeError, match="mapping of parameter names"):
        ssm.system_from_s5([s5])
    lru = _lru_params(rng)
    with pytest.raises(ValueError, match="C_re"):
        ssm.system_from_lru(dict(lru, C_re=lru["C_re"].T))


def test_imported_system_feeds_the_library(rng):
    params = _lru_params(rng)
    sys = ssm.system_from_lru(params)
    # The h2 norm equals the impulse-response energy of the raw recurrence.
    long = np.zeros((H, 400, H))
    for j in range(H):
        long[j, 0, j] = 1.0
    energy = sum(np.sum(_lru_reference(params, u) ** 2) for u in long)
    np.testing.assert_allclose(float(lqo.h2_norm(sys)) ** 2, energy, rtol=1e-8)
    # An SSMLayer built from it runs the same block.
    layer = ssm.SSMLayer.from_system(sys)
    u = rng.normal(size=(L, H))
    np.testing.assert_allclose(np.asarray(layer.block(u)), _lru_reference(params, u), atol=1e-10)
    rom = lqo.balanced_truncation(sys, 2).value
    assert rom.n == 2 and float(lqo.h2_error(sys, rom)) < float(lqo.h2_norm(sys))


def test_float32_parameters_give_a_float32_system(rng):
    params = {k: v.astype(np.float32) for k, v in _lru_params(rng).items()}
    sys = ssm.system_from_lru(params)
    assert sys.poles.dtype == jnp.complex64 and sys.D.dtype == jnp.float32
