"""The VAE experiment: data, encoder families, test bounds, amortization gap, sweep to report.

One small VAE (200 graph-mode steps, 4-d latent) is trained once per encoder family the tests
need; the bounds are checked on it against their Monte Carlo standard errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from harness import cli, tracking
from harness.engines import amortized as vae
from harness.families import FAMILIES
from harness.figures import vae_images
from harness.models import MODELS
from harness.models.vae_digits import NUM_TEST, binarized_digits
from harness.spec import Cell, FitSettings, MetricSettings

# z-score beyond which a Monte Carlo comparison fails: ~1e-4 false alarms per check.
Z = 4.0
SETTINGS = FitSettings(num_steps=200, sample_size=1, learning_rate=0.01, jit_compile=False)
MODEL_ARGS = (
    ("gap_num_points", 20),
    ("gap_num_steps", 100),
    ("hidden_units", 32),
    ("latent_size", 4),
)
ENCODERS = ("encoder_diagonal", "encoder_full_covariance", "encoder_iaf")


def _cell(family: str, seed: int = 0, settings: FitSettings = SETTINGS) -> Cell:
    return Cell(
        "test_vae",
        "vae_digits",
        MODEL_ARGS,
        family,
        tuple(sorted(FAMILIES[family].hyperparameters.items())),
        settings,
        seed,
        MetricSettings(iw_elbo_k=1000),
    )


@pytest.fixture(scope="module")
def model():
    return MODELS["vae_digits"](**dict(MODEL_ARGS))


@pytest.fixture(scope="module")
def trained(model):
    """family → (encoder, decoder) after 200 steps."""
    out = {}
    for family in ("encoder_diagonal", "encoder_full_covariance"):
        result = vae.train(_cell(family), model)
        assert np.all(np.isfinite(np.concatenate(result["losses"])))
        out[family] = result["encoder"], result["decoder"]
    return out


def test_data_is_binarized_with_a_fixed_split():
    data = binarized_digits()
    assert data["x_train"].shape == (1797 - NUM_TEST, 64)
    assert data["x_test"].shape == (NUM_TEST, 64)
    for x in (data["x_train"], data["x_test"]):
        assert set(np.unique(x)) == {0.0, 1.0}
    # Both halves hold every digit, and some pixels are on in every image.
    assert set(data["y_test"]) == set(range(10)) == set(data["y_train"])
    assert np.all(data["x_test"].sum(axis=1) > 0)
    binarized_digits.cache_clear()
    np.testing.assert_array_equal(binarized_digits()["x_test"], data["x_test"])


def test_encoder_families_apply_to_amortized_models_only(model):
    assert model.kind == "amortized" and model.reference is None
    banana = MODELS["banana"]()
    for family in ENCODERS:
        assert FAMILIES[family].kind == "amortized"
        assert FAMILIES[family].supports(model)
        with pytest.raises(ValueError, match=f"{family}.*banana"):
            FAMILIES[family].check(banana)
    with pytest.raises(ValueError, match="amortized model"):
        model.unnormalized_log_prob(np.zeros((1, 4)))


def test_amortized_models_are_listed_for_the_contract_tests():
    from harness.models import AMORTIZED_MODELS

    assert AMORTIZED_MODELS == {n for n in MODELS if MODELS[n]().kind == "amortized"}


def test_draw_layout_matches_the_figures():
    assert list(vae.DRAW_ROWS.values()) == list(vae_images.VAE_IMAGE_ROWS.values())


@pytest.mark.parametrize("family", ENCODERS)
def test_encoder_samples_and_densities(model, family):
    """Shapes, finiteness, and log q equal to the density of the draws where TFP has it."""
    encoder = FAMILIES[family].build(model, seed=tf.constant([1, 2]), hidden_units=16)
    x = tf.constant(model.data["x_test"][:5], tf.float32)
    params = encoder.local_parameters(x)
    z, log_q = encoder.sample_and_log_prob(params, 3, seed=[3, 4])
    assert z.shape == (3, 5, 4) and log_q.shape == (3, 5)
    assert np.all(np.isfinite(log_q.numpy()))
    if family != "encoder_iaf":
        np.testing.assert_allclose(log_q, encoder.base_distribution(params).log_prob(z), rtol=1e-5)
    else:
        # The IAF's steps start near (not at) the identity and change the density.
        base = encoder.base_distribution(params)
        assert not np.allclose(log_q, base.log_prob(z))


def test_iaf_density_matches_change_of_variables_in_one_dimension():
    """1-d IAF: z = s·ε + (1 − s)·m with s, m constant in ε, so log q(z) = log N(ε) − log s."""
    one_d = MODELS["vae_digits"](latent_size=1)
    encoder = FAMILIES["encoder_iaf"].build(one_d, seed=tf.constant([5, 6]), num_layers=1)
    x = tf.constant(one_d.data["x_test"][:4], tf.float32)
    params = encoder.local_parameters(x)
    z, log_q = encoder.sample_and_log_prob(params, 6, seed=[1, 1])
    eps, base_log_q = encoder.base_distribution(params).experimental_sample_and_log_prob(
        6, seed=[1, 1]
    )
    layer = encoder.flows[0]
    # A 1-d MADE output sees no input (mask), only the bias: s = sigmoid(b_s) after init.
    gate = tf.sigmoid(layer["b_s"])
    np.testing.assert_allclose(
        z[..., 0], gate * eps[..., 0] + (1 - gate) * layer["b_m"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(log_q, base_log_q - np.log(gate.numpy()[0]), rtol=1e-5)


def test_iw_bound_is_above_the_elbo_and_increases_with_k(model, trained):
    encoder, decoder = trained["encoder_diagonal"]
    x = tf.constant(model.data["x_test"][:100], tf.float32)
    terms = vae.test_log_weights(
        encoder, decoder, x, encoder.local_parameters(x), 1000, seed=tf.constant([7, 8])
    )
    elbo, elbo_se = vae.mean_bound(terms["log_weights"])
    # K = 1 is the ELBO on the same draws.
    assert vae.iw_bound(terms["log_weights"], 1)[0] == pytest.approx(elbo, rel=1e-12)
    previous, previous_se = elbo, elbo_se
    for k in (10, 100, 1000):
        bound, se = vae.iw_bound(terms["log_weights"], k)
        assert bound - previous > -Z * np.hypot(se, previous_se), (k, bound, previous)
        previous, previous_se = bound, se
    # And it does increase: the largest K is well above the ELBO.
    assert previous - elbo > Z * np.hypot(previous_se, elbo_se)


@pytest.mark.parametrize("family", ["encoder_diagonal", "encoder_full_covariance"])
def test_both_elbo_forms_agree_within_monte_carlo_error(model, trained, family):
    encoder, decoder = trained[family]
    x = tf.constant(model.data["x_test"], tf.float32)
    terms = vae.test_log_weights(
        encoder, decoder, x, encoder.local_parameters(x), 200, seed=tf.constant([9, 10])
    )
    monte_carlo, se_mc = vae.mean_bound(terms["log_weights"])
    analytic, se_analytic = vae.mean_bound(terms["log_likelihood"], terms["kl_to_prior"])
    assert abs(monte_carlo - analytic) <= Z * np.hypot(se_mc, se_analytic)
    assert se_mc > 0 and se_analytic > 0


def test_amortization_gap_is_nonnegative_and_zero_without_steps(model, trained):
    encoder, decoder = trained["encoder_diagonal"]
    x = tf.constant(model.data["x_test"][:20], tf.float32)
    amortized = vae.test_log_weights(
        encoder, decoder, x, encoder.local_parameters(x), 500, seed=tf.constant([11, 12])
    )["log_weights"]
    cell = _cell("encoder_diagonal")
    gap, se = vae.amortization_gap(
        encoder, decoder, x, amortized, cell, 100, tf.constant([13, 14]), jit=False
    )
    assert gap > -Z * se
    assert gap > Z * se  # 100 steps of a per-image q do improve on the encoder's output
    untouched, se0 = vae.amortization_gap(
        encoder, decoder, x, amortized, cell, 0, tf.constant([13, 14]), jit=False
    )
    assert abs(untouched) <= Z * se0


def test_bad_training_settings_are_an_error_result():
    from harness.fit import fit

    result = fit(
        _cell(
            "encoder_diagonal",
            settings=FitSettings(num_steps=10, importance_sample_size=4, jit_compile=False),
        )
    )
    assert result.status == "error" and "importance_sample_size" in result.reason
    mismatch = Cell(
        "test_vae", "vae_digits", MODEL_ARGS, "mean_field", (("initial_scale", 0.1),), SETTINGS, 0
    )
    result = fit(mismatch)
    assert result.status == "error" and "encoder family" in result.reason


@pytest.mark.slow
def test_tiny_sweep_runs_into_mlflow_and_the_report(tmp_path, tracking_uri):
    """experiments/vae.toml shrunk, with a posterior model and family added: the spec pairs the
    VAE with the encoders only, and the report draws both kinds of figures."""
    models = (
        'models=[{name="vae_digits", latent_size=2, hidden_units=16, gap_num_points=5, '
        'gap_num_steps=10}, "banana"]'
    )
    families = f"families={list(ENCODERS) + ['mean_field']}".replace("'", '"')
    code = cli.main(
        [
            "run",
            "experiments/vae.toml",
            "--executor",
            "serial",
            "--set",
            "fit.num_steps=20",
            "--set",
            "fit.jit_compile=false",
            "--set",
            "seeds=[0]",
            "--set",
            "metrics.iw_elbo_k=50",
            "--set",
            models,
            "--set",
            families,
            "--tracking-uri",
            tracking_uri,
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 0
    everything = pd.read_csv(tmp_path / "results" / "vae" / "cells.csv")
    assert set(everything["status"]) == {"ok"}
    assert set(zip(everything["model"], everything["family"], strict=True)) == {
        *(("vae_digits", f) for f in ENCODERS),
        ("banana", "mean_field"),
    }
    table = everything[everything["model"] == "vae_digits"]
    for column in (
        "test_elbo",
        "test_elbo_standard_error",
        "test_iw_elbo",
        "test_iw_elbo_standard_error",
        "amortization_gap",
        "amortization_gap_standard_error",
        "fit_seconds",
        "steps_per_second",
    ):
        assert table[column].notna().all(), column
    # The analytic-KL form exists for the Gaussian encoders only.
    iaf = table["family"] == "encoder_iaf"
    assert table.loc[~iaf, "test_elbo_likelihood_kl"].notna().all()
    assert table.loc[iaf, "test_elbo_likelihood_kl"].isna().all()
    # The IW bound (K = 50) is above the ELBO in every cell, within Monte Carlo error.
    assert np.all(
        table["test_iw_elbo"] - table["test_elbo"]
        > -Z * np.hypot(table["test_iw_elbo_standard_error"], table["test_elbo_standard_error"])
    )
    logged = tracking.load_draws(table["run_id"].iloc[0], tracking_uri)
    assert logged["draws"].shape == (48, 64)
    assert np.all((logged["draws"] >= 0) & (logged["draws"] <= 1))
    runs = table[["run_id"]].assign(start_time=pd.to_datetime(table["start_time"]))
    histories = tracking.loss_histories(runs, tracking_uri)
    assert len(histories) == 3 * 20
    figures = tmp_path / "results" / "vae" / "figures"
    for stem in (
        "vae_likelihood_vs_time",
        "vae_amortization_gap",
        "vae_images_vae_digits",
        "elbo_vs_time",
        "quality_vs_speed",
        "khat",
        "marginals_banana",
    ):
        assert (figures / f"{stem}.png").stat().st_size > 1000, stem
    # Posterior-quality figures (they need a reference) are for the banana cell only.
    assert not list(figures.glob("marginals_vae*"))
    summary = (tmp_path / "results" / "vae" / "tables" / "summary.md").read_text()
    assert "test log-lik" in summary and "Banana" in summary


def test_spec_pairs_a_vae_with_encoder_families_only(write_spec):
    from harness import spec

    mixed = spec.load(
        write_spec(
            'models = ["vae_digits", "banana"]\nfamilies = ["mean_field", "encoder_diagonal"]\n'
        )
    )
    assert {(c.model, c.family) for c in mixed.cells()} == {
        ("vae_digits", "encoder_diagonal"),
        ("banana", "mean_field"),
    }
    with pytest.raises(spec.SpecError, match="'mean_field' applies to none.*not amortized"):
        spec.load(
            write_spec(
                'models = ["vae_digits"]\nfamilies = ["mean_field", "encoder_diagonal"]\n',
                "vae_only.toml",
            )
        )


def test_training_is_reproducible_from_the_cell_seed(model):
    settings = FitSettings(num_steps=5, sample_size=1, jit_compile=False)
    first, again, other = (
        vae.train(_cell("encoder_diagonal", seed, settings), model)["losses"] for seed in (0, 0, 1)
    )
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
