"""NUTS sampler core and ``harness reference``: reproducible, checked, agreeing with closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import cli, reference
from harness.baselines import nuts
from harness.models import MODELS
from harness.models.base import REFERENCE_DIR, load_reference_file

# Small but sufficient: the conjugate normal mean mixes fast (ESS ≈ number of draws), so
# 2 chains × 700 draws clear the ESS > 1,000 bar.
SMALL = {"num_chains": 2, "num_warmup": 200, "num_draws": 700, "seed": 3}
SMALL_ARGS = ["--chains", "2", "--warmup", "200", "--draws", "700", "--seed", "3"]


@pytest.fixture(scope="module")
def small_run():
    return reference.run("conjugate_normal_mean", **SMALL)


@pytest.mark.slow
def test_small_run_converges_and_agrees_with_the_closed_form(small_run):
    assert small_run.ok, small_run.failures
    exact = MODELS["conjugate_normal_mean"]().reference
    a = small_run.arrays
    z = (a["mean"] - exact.mean) / a["mean_standard_error"]
    z_sd = (a["standard_deviation"] - exact.standard_deviation) / a[
        "standard_deviation_standard_error"
    ]
    # 4.5 sigma over 3 coordinates: a false alarm has probability < 1e-4.
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(np.abs(z_sd) < 4.5), z_sd
    m = small_run.metadata
    assert m["potential_scale_reduction_max"] < 1.01 and m["effective_sample_size_min"] > 1000
    assert len(m["potential_scale_reduction"]) == 3 and len(m["step_size"]) == 2
    assert m["num_leapfrog_steps"] >= 2 * (200 + 700)
    assert m["seed"] == 3 and "tensorflow-probability" in m["versions"] and m["date"]
    assert a["draws"].shape == (1400, 3)


@pytest.mark.slow
def test_cli_writes_the_same_reference_for_the_same_seed(small_run, tmp_path, capsys):
    out = tmp_path / "ref.npz"
    assert cli.main(["reference", "conjugate_normal_mean", *SMALL_ARGS, "--out", str(out)]) == 0
    ref = load_reference_file(out)
    assert ref.kind == "nuts"
    # Reproducible: the same seed gives bit-identical draws in a fresh compiled run.
    np.testing.assert_array_equal(ref.mean, small_run.arrays["mean"])
    np.testing.assert_array_equal(ref.draws, small_run.arrays["draws"].astype(np.float32))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["command"] == (
        "harness reference conjugate_normal_mean "
        + " ".join(SMALL_ARGS)
        + f" --target-accept 0.8 --out {out}"
    )
    assert sidecar["command"] in ref.provenance
    assert f"reference: {out}" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_refuses_to_write_an_unconverged_reference(tmp_path, capsys):
    out = tmp_path / "short.npz"
    code = cli.main(
        [
            "reference",
            "conjugate_normal_mean",
            "--chains",
            "2",
            "--warmup",
            "50",
            "--draws",
            "40",
            "--out",
            str(out),
        ]
    )
    assert code == cli.EXIT_FAILED_CELLS
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert "bulk ESS" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["reference", "no_such_model"],
        ["reference", "banana", "--draws", "0"],
        ["reference", "banana", "--out", "x.txt"],
    ],
)
def test_cli_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", sorted(p.stem for p in REFERENCE_DIR.glob("*.npz")))
def test_shipped_reference_files_record_a_converged_run(name):
    path = REFERENCE_DIR / f"{name}.npz"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["model"] == name and meta["command"].startswith(f"harness reference {name}")
    assert meta["potential_scale_reduction_max"] < reference.MAX_POTENTIAL_SCALE_REDUCTION
    assert meta["effective_sample_size_min"] > reference.MIN_EFFECTIVE_SAMPLE_SIZE
    ref = MODELS[name]().reference
    assert ref.kind == "nuts" and "harness reference" in ref.provenance
    assert ref.draws.shape[0] <= reference.MAX_DRAWS_KEPT
    assert meta["dimension"] == ref.dimension
    # Small enough to commit: float32 draws (4 bytes a number) plus a little overhead.
    assert path.stat().st_size < 4 * ref.draws.size + 50_000


def test_noncentered_eight_schools_reference_agrees_with_inference_gym_centered():
    """Two independent references of one posterior: our NUTS file (non-centered) and
    inference_gym's published moments (centered).  avg_effect and log_stddev are shared
    coordinates; school effects are derived from the non-centered draws."""
    ours = MODELS["eight_schools_noncentered"]().reference
    gym = MODELS["eight_schools"]().reference
    z = (ours.mean[:2] - gym.mean[:2]) / np.hypot(
        ours.mean_standard_error[:2], gym.mean_standard_error[:2]
    )
    z_sd = (ours.standard_deviation[:2] - gym.standard_deviation[:2]) / np.hypot(
        ours.standard_deviation_standard_error[:2], gym.standard_deviation_standard_error[:2]
    )
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(np.abs(z_sd) < 4.5), z_sd
    draws = ours.draws
    effects = draws[:, :1] + np.exp(draws[:, 1:2]) * draws[:, 2:]
    se = np.hypot(effects.std(0) / np.sqrt(len(effects)), gym.mean_standard_error[2:])
    z_effects = (effects.mean(0) - gym.mean[2:]) / se
    assert np.all(np.abs(z_effects) < 4.5), z_effects


def test_noncentered_and_centered_densities_differ_by_the_jacobian():
    """Same data and priors: log p_nc(a, l, s) = log p_c(a, l, a + e^l s) + 8 l (deterministic)."""
    nc, c = MODELS["eight_schools_noncentered"](dtype="float64"), MODELS["eight_schools"]()
    rng = np.random.default_rng(0)
    z = np.concatenate(
        [rng.normal(5, 3, (6, 1)), rng.normal(2, 0.5, (6, 1)), rng.normal(size=(6, 8))], axis=1
    )
    theta = z[:, :1] + np.exp(z[:, 1:2]) * z[:, 2:]
    centered = np.concatenate([z[:, :2], theta], axis=1).astype(np.float32)
    np.testing.assert_allclose(
        nc.unnormalized_log_prob(z).numpy(),
        c.unnormalized_log_prob(centered).numpy() + 8 * z[:, 1],
        rtol=1e-5,
    )


@pytest.mark.slow
def test_nuts_on_unknown_noise_regression_matches_the_closed_form_marginals():
    """NUTS through the Exp bijector returns constrained draws whose moments (weights and the
    variance) agree with the normal-inverse-gamma formulas within MCSE."""
    model = MODELS["linear_regression_unknown_noise"]()
    result = nuts.sample(model, num_chains=4, num_warmup=300, num_draws=600, seed=11)
    assert result.draws.shape == (4, 600, model.dimension)
    assert np.all(result.draws[..., -1] > 0)
    assert np.all(result.potential_scale_reduction < 1.02)
    flat = result.draws.reshape(-1, model.dimension)
    exact = model.reference
    z = (flat.mean(0) - exact.mean) / result.mean_standard_error
    z_sd = (
        flat.std(0, ddof=1) - exact.standard_deviation
    ) / result.standard_deviation_standard_error
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(np.abs(z_sd) < 4.5), z_sd
    assert result.num_leapfrog_steps > 4 * 900 and result.wall_seconds > 0
    assert result.step_size.shape == (4,) and np.all(result.step_size > 0)
