"""Speed benchmarks of the harness (issue-free numbers for docs/benchmarks.md).

    python -m benchmarks.speed [bare] [numpyro] [vectorized] [workers] [quickstart] [--repeats N]

* ``bare``: a harness cell against a hand-written ``tfp.vi.fit_surrogate_posterior(
  jit_compile=True)`` loop on the same model, surrogate, steps and particles (target ≤ 1.05).
* ``numpyro``: harness vs NumPyro SVI (AutoNormal / AutoMultivariateNormal) on one logistic
  regression (n = 1,000, d = 25, 20,000 steps, 8 particles); in-process wall time including
  compilation, and steady-state steps/s (needs the ``bench`` extra).
* ``vectorized``: 8 seeds fitted as one batch against 1 seed (target ≤ 2× the wall time).
* ``workers``: 1 vs 2 local workers on two 12-cell sweeps, compile-bound and fit-bound
  (target ≥ 1.8×).
* ``quickstart``: cold ``harness run experiments/quickstart.toml`` wall time (target < 3 min).

Each ratio is measured side by side in one run, alternating the two arms, and the medians of
``--repeats`` runs are reported.  Results are printed and written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import markdown_table, median, write_section

REPO = Path(__file__).resolve().parents[1]
N, D, STEPS, PARTICLES, LEARNING_RATE = 1000, 25, 20_000, 8, 0.01


def logistic_data(seed: int = 0):
    """Synthetic logistic-regression data: X ~ N(0, 1), w ~ N(0, 1), y ~ Bernoulli(σ(Xw))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    w = rng.normal(size=D).astype(np.float32)
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-x @ w))).astype(np.float32)
    return x, y


def logistic_model():
    """The benchmark's logistic regression as a harness Model (prior w ~ N(0, I))."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    from harness.models.base import Model

    x, y = logistic_data()
    x_t, y_t = tf.constant(x), tf.constant(y)

    def unnormalized_log_prob(w):
        logits = tf.einsum("nd,...d->...n", x_t, w)
        log_lik = tf.reduce_sum(y_t * logits - tf.math.softplus(logits), axis=-1)
        return log_lik - 0.5 * tf.reduce_sum(w**2, axis=-1)

    return Model(
        name="bench_logistic_regression",
        pretty_name="Logistic regression (bench)",
        dimension=D,
        dtype=tf.float32,
        default_event_space_bijector=tfp.bijectors.Identity(),
        unnormalized_log_prob=unnormalized_log_prob,
        reference=None,
    )


def _register_bench_model():
    from harness.models import MODELS

    MODELS["bench_logistic_regression"] = logistic_model


def _cell(model, family, num_steps, sample_size, seed=0):
    from harness.spec import Cell, FitSettings

    # A fixed number of steps at a fixed rate from the uniform start: the loop a bare
    # fit_surrogate_posterior call runs (no pilots, no mode search, no early stop).
    settings = FitSettings(
        num_steps=num_steps,
        sample_size=sample_size,
        learning_rate=LEARNING_RATE,
        learning_rate_schedule="constant",
        initialization="uniform",
        stopping="budget",
    )
    return Cell("bench", model, (), family, (), settings, seed)


def _harness_fit(cell):
    from harness import fit
    from harness.engines import svi

    svi._LAST_COMPILED = None  # every repeat pays compilation, like the bare loop
    t0 = time.perf_counter()
    result = fit.fit(cell)
    total = time.perf_counter() - t0
    assert result.status == "ok", result.reason
    m = result.metrics
    return {
        "total": total,
        # The fitting loop only: its compilation and steps, as in the bare loop.
        "fit": m.get("compile_seconds", 0.0)
        - m.get("evaluation_compile_seconds", 0.0)
        + m["fit_seconds"],
        "steps_per_second": m["steps_per_second"],
    }


def _bare_fit(model_name, family, num_steps, sample_size, seed=0):
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    from harness.families import FAMILIES
    from harness.models import MODELS

    model = MODELS[model_name]()
    q = FAMILIES[family].build(model, seed=tf.constant([seed, 0]))
    optimizer = tf_keras.optimizers.Adam(LEARNING_RATE)
    t0 = time.perf_counter()
    losses = tfp.vi.fit_surrogate_posterior(
        model.unnormalized_log_prob,
        q,
        optimizer,
        num_steps=num_steps,
        sample_size=sample_size,
        jit_compile=True,
        seed=[seed, 1],
    )
    losses.numpy()
    return time.perf_counter() - t0


def bench_bare(repeats: int) -> list[dict]:
    """Harness cell vs bare fit_surrogate_posterior(jit_compile=True), same everything."""
    _register_bench_model()
    rows = []
    for model, family in [
        ("bench_logistic_regression", "mean_field"),
        ("bench_logistic_regression", "full_rank"),
        ("eight_schools", "mean_field"),
    ]:
        bare, harness_fit, harness_total = [], [], []
        for _ in range(repeats):
            bare.append(_bare_fit(model, family, STEPS, PARTICLES))
            h = _harness_fit(_cell(model, family, STEPS, PARTICLES))
            harness_fit.append(h["fit"])
            harness_total.append(h["total"])
        rows.append(
            {
                "model": model,
                "family": family,
                "steps": STEPS,
                "bare TFP (s)": median(bare),
                "harness fit (s)": median(harness_fit),
                "ratio fit": median(harness_fit) / median(bare),
                "harness cell incl. metrics (s)": median(harness_total),
                "ratio cell": median(harness_total) / median(bare),
            }
        )
    return rows


def bench_numpyro(repeats: int) -> list[dict]:
    """Harness vs NumPyro SVI on the same logistic regression."""
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    _register_bench_model()
    x, y = logistic_data()

    def model(x, y):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([D]).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)

    def run_numpyro(guide_class, num_steps):
        guide = guide_class(model)
        svi = SVI(
            model, guide, numpyro.optim.Adam(LEARNING_RATE), Trace_ELBO(num_particles=PARTICLES)
        )
        t0 = time.perf_counter()
        result = svi.run(jax.random.PRNGKey(0), num_steps, x, y, progress_bar=False)
        jax.block_until_ready(result.losses)
        return time.perf_counter() - t0

    rows = []
    for family, guide_class in [("mean_field", AutoNormal), ("full_rank", AutoMultivariateNormal)]:
        numpyro_wall, numpyro_rate, harness_fit, harness_cell, harness_rate = [], [], [], [], []
        for _ in range(repeats):
            cold = run_numpyro(guide_class, STEPS)
            # Steady state: a second run of the same shapes reuses the compiled loop.
            warm = run_numpyro(guide_class, STEPS)
            numpyro_wall.append(cold)
            numpyro_rate.append(STEPS / warm)
            h = _harness_fit(_cell("bench_logistic_regression", family, STEPS, PARTICLES))
            harness_fit.append(h["fit"])
            harness_cell.append(h["total"])
            harness_rate.append(h["steps_per_second"])
        rows.append(
            {
                "family": family,
                "NumPyro guide": guide_class.__name__,
                "NumPyro svi.run incl. compile (s)": median(numpyro_wall),
                "harness fit incl. compile (s)": median(harness_fit),
                "ratio fit harness/NumPyro": median(harness_fit) / median(numpyro_wall),
                "harness cell incl. evaluation + metrics (s)": median(harness_cell),
                "ratio cell harness/NumPyro": median(harness_cell) / median(numpyro_wall),
                "NumPyro steps/s": median(numpyro_rate),
                "harness steps/s": median(harness_rate),
            }
        )
    return rows


def bench_vectorized(repeats: int) -> list[dict]:
    """8 seeds as one batched fit vs 1 seed (wall time of the whole cells: compile, fit and
    the metrics of every seed), plus 8 seeds one after another sharing the compiled loop."""
    from harness import fit
    from harness.engines import svi

    _register_bench_model()
    rows = []
    for model in ("bench_logistic_regression", "eight_schools"):
        for family in ("mean_field", "full_rank"):
            one, eight, sequential = [], [], []
            for _ in range(repeats):
                cells = [_cell(model, family, STEPS, PARTICLES, seed) for seed in range(8)]
                svi._LAST_COMPILED = None
                t0 = time.perf_counter()
                results = fit.fit_replicates(cells[:1])
                one.append(time.perf_counter() - t0)
                svi._LAST_COMPILED = None
                t0 = time.perf_counter()
                results = fit.fit_replicates(cells)
                eight.append(time.perf_counter() - t0)
                assert all(r.status == "ok" for r in results)
                svi._LAST_COMPILED = None
                t0 = time.perf_counter()
                results = [fit.fit(cell) for cell in cells]
                sequential.append(time.perf_counter() - t0)
            rows.append(
                {
                    "model": model,
                    "family": family,
                    "1 seed (s)": median(one),
                    "8 seeds batched (s)": median(eight),
                    "ratio": median(eight) / median(one),
                    "8 seeds in turn, shared compile (s)": median(sequential),
                }
            )
    return rows


def _run_cli(args, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        check=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


WORKERS_SPECS = {
    # Quickstart-sized cells: ~2–4 s of XLA compilation each, < 0.1 s of steps.
    "compile-bound": """
name = "bench_workers"
seeds = [0, 1]
models = ["correlated_gaussian", "banana"]
families = ["mean_field", "full_rank", "iaf"]
[fit]
num_steps = 2000
sample_size = 16
learning_rate = 0.01
initialization = "uniform"
stopping = "budget"
""",
    # Research-sized fits: 200,000 steps on real-data regressions and a 32-d time series.
    "fit-bound": """
name = "bench_workers_fit"
seeds = [0, 1]
models = ["logistic_regression_breast_cancer", "hierarchical_regression_wine",
          "brownian_motion_unknown_scales"]
families = ["mean_field", "full_rank"]
[fit]
num_steps = 200000
sample_size = 8
learning_rate = 0.01
initialization = "uniform"
stopping = "budget"
""",
}


def bench_workers(repeats: int) -> list[dict]:
    """1 vs 2 local workers on two 12-cell sweeps (fresh store each time: every cell runs),
    end to end (`harness run`) and the process pool alone."""
    from harness import executors
    from harness import spec as spec_module

    rows = []
    for kind, text in WORKERS_SPECS.items():
        one, two, pool_one, pool_two = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "workers.toml"
            spec.write_text(text)
            cells = spec_module.load(spec).cells()
            for i in range(repeats):
                for workers, times in ((1, one), (2, two)):
                    store = Path(tmp) / f"w{workers}-{i}"
                    times.append(
                        _run_cli(
                            [
                                "run",
                                str(spec),
                                "--workers",
                                str(workers),
                                "--tracking-uri",
                                f"sqlite:///{store}/mlflow.db",
                                "--results-dir",
                                str(store),
                            ]
                        )
                    )
                for workers, times in ((1, pool_one), (2, pool_two)):
                    t0 = time.perf_counter()
                    results = list(executors.run_local(cells, workers))
                    times.append(time.perf_counter() - t0)
                    assert all(r.status == "ok" for r in results)
        for what, a, b in (
            ("harness run (driver start, fits, MLflow, report)", one, two),
            ("process pool only (spawn, TF import, fits)", pool_one, pool_two),
        ):
            rows.append(
                {
                    "sweep": kind,
                    "what": what,
                    "cells": len(cells),
                    "1 worker (s)": median(a),
                    "2 workers (s)": median(b),
                    "speed-up": median(a) / median(b),
                }
            )
    return rows


def bench_quickstart(repeats: int) -> list[dict]:
    """Cold `harness run experiments/quickstart.toml` (installed venv, empty store)."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            store = Path(tmp) / f"q{i}"
            times.append(
                _run_cli(
                    [
                        "run",
                        "experiments/quickstart.toml",
                        "--tracking-uri",
                        f"sqlite:///{store}/mlflow.db",
                        "--results-dir",
                        str(store),
                    ]
                )
            )
    return [
        {
            "cells": 18,
            "wall (s)": median(times),
            "min (s)": min(times),
            "max (s)": max(times),
            "target (s)": 180,
        }
    ]


BENCHMARKS = {
    "bare": ("Harness cell vs bare TFP loop", bench_bare),
    "numpyro": ("Harness vs NumPyro SVI (logistic regression, n=1000, d=25)", bench_numpyro),
    "vectorized": ("8 seeds vectorized vs 1 seed", bench_vectorized),
    "workers": ("1 vs 2 workers on a 12-cell sweep", bench_workers),
    "quickstart": ("Cold quickstart", bench_quickstart),
}


# What the numbers of a benchmark mean, written under its table.
NOTES = {
    "numpyro": (
        "*ratio fit* compares like with like: NumPyro's `svi.run` (guide set-up, JIT "
        "compilation, the steps) against the harness's fitting loop (tracing, XLA compilation, "
        "the steps).  The harness takes each step faster; its fixed cost is TensorFlow's: about"
        " 0.8 s of XLA compilation even for a trivial target, about half of it the stateless "
        "random-number generator (`auto_select`, Philox on CPU: 0.4 s to compile a loop of "
        "normal draws and seed splits, 0.2 s with `threefry`, which TFP's samplers give no way "
        "to choose), against about 0.1 s for JAX.  *ratio cell* adds what NumPyro's run does "
        "not do: 4,096 fresh draws of q and every metric."
    ),
    "vectorized": (
        "A batch of replicates saves the per-step overhead (dispatch, random numbers, optimizer"
        " bookkeeping), not the model's own arithmetic.  Eight schools' step is mostly "
        "overhead, so 8 replicates cost well under 2×; the logistic regression's step is "
        "dominated by 8 particles × 1,000 observations of matmul and softplus, which 8 "
        "replicates multiply by 8, so the batch costs ~4× (bounded below by 8 / cores) and is "
        "no faster than the 8 seeds in turn."
    ),
    "workers": (
        "The pool starts before the spec is checked, so the workers import TensorFlow while the"
        " driver does its own set-up, and driver and workers skip the interpreter teardown at "
        "exit (the compile-bound sweep fell from 32 to 22 s end to end with the same fits).  "
        "The speed-up from a second worker is still bounded on 2 cores: XLA compiles on threads"
        " of its own (one compiling worker keeps ~1.2 cores busy), so compile-bound sweeps "
        "cannot gain 2×; on the fit-bound sweep the pool scales 1.7–1.8×, while ~10 s of "
        "start-up (three processes importing TensorFlow on two cores) and ~3 s of report stay "
        "serial: with S ≈ 13 s serial and F ≈ 88 s of fitting, (S + F) / (S + F / 1.8) ≈ 1.5."
    ),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    unknown = [w for w in args.which if w not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for key in args.which or list(BENCHMARKS):
        title, function = BENCHMARKS[key]
        rows = function(args.repeats)
        table = markdown_table(rows)
        print(f"\n## {title}\n\n{table}", flush=True)
        note = f"\n\n{NOTES[key]}" if key in NOTES else ""
        write_section(title, f"Median of {args.repeats} runs.\n\n{table}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
