"""Bad input: every malformed spec or flag exits 2 with one line naming the file, the key and what
is allowed, before anything is fitted, logged or written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import cli

OK_MODELS = 'models = ["banana"]\nfamilies = ["mean_field"]\n'
FIT = OK_MODELS + "[fit]\n"

# (spec text, extra CLI arguments, substrings the one-line message must contain).  "{path}" in
# a substring stands for the spec file's path.
CASES = {
    # --- the file itself
    "malformed_toml": (
        'models = ["banana"\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "malformed TOML", "line 2"],
    ),
    "duplicate_toml_key": (
        OK_MODELS + 'models = ["banana"]\n',
        [],
        ["{path}", "malformed TOML", "line 3"],
    ),
    "not_utf8": (b"\xff\xfe\x00models", [], ["{path}", "UTF-8"]),
    "missing_file": (None, [], ["{path}", "no such spec file"]),
    # --- unknown keys and names, with the closest valid one
    "unknown_top_key": (
        'modles = ["banana"]\n' + OK_MODELS,
        [],
        ["{path}", "'modles'", "did you mean 'models'"],
    ),
    "unknown_fit_key": (
        FIT + "num_step = 3\n",
        [],
        ["{path}", "'fit.num_step'", "did you mean 'num_steps'"],
    ),
    "unknown_metrics_key": (
        OK_MODELS + "[metrics]\niw_elbo = 8\n",
        [],
        ["{path}", "'metrics.iw_elbo'", "did you mean 'iw_elbo_k'"],
    ),
    "unknown_resources_key": (
        OK_MODELS + "[resources]\ncpus = 1\n",
        [],
        ["{path}", "'resources.cpus'", "cpus_per_task"],
    ),
    "unknown_model": (
        'models = ["bananna"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "did you mean 'banana'"],
    ),
    "unknown_model_far_from_any": (
        'models = ["qqqqqqqqqq"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "unknown model 'qqqqqqqqqq'", "valid: banana", "in all)"],
    ),
    "unknown_family": (
        'models = ["banana"]\nfamilies = ["full_rnk"]\n',
        [],
        ["{path}", "'families[0]'", "did you mean 'full_rank'"],
    ),
    "unknown_model_argument": (
        'models = [{ name = "banana", curvatur = 0.1 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].curvatur'", "did you mean 'curvature'"],
    ),
    "unknown_hyperparameter": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", num_layer = 2 }]\n',
        [],
        ["{path}", "'families[0].num_layer'", "did you mean 'num_layers'"],
    ),
    # --- wrong types
    "num_steps_string": (
        FIT + 'num_steps = "many"\n',
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "num_steps_bool": (
        FIT + "num_steps = true\n",
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "num_steps_float": (
        FIT + "num_steps = 10.5\n",
        [],
        ["{path}", "'fit.num_steps'", "expected an integer"],
    ),
    "learning_rate_string": (
        FIT + 'learning_rate = "fast"\n',
        [],
        ["{path}", "'fit.learning_rate'", "expected a number"],
    ),
    "jit_compile_string": (
        FIT + 'jit_compile = "yes"\n',
        [],
        ["{path}", "'fit.jit_compile'", "expected true or false"],
    ),
    "hyperparameter_float": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", num_layers = 1.5 }]\n',
        [],
        ["{path}", "'families[0].num_layers'", "expected an integer"],
    ),
    "model_argument_string": (
        'models = [{ name = "correlated_gaussian", dimension = "five" }]\n'
        'families = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "expected an integer"],
    ),
    "fit_not_table": (OK_MODELS + "fit = 3\n", [], ["{path}", "'fit'", "expected a table"]),
    "models_not_list": (
        'models = "banana"\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models'", "non-empty list"],
    ),
    "model_entry_without_name": (
        'models = [{ dimension = 3 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "table with 'name'"],
    ),
    "description_number": (
        OK_MODELS + "description = 3\n",
        [],
        ["{path}", "'description'", "expected a string"],
    ),
    "seeds_string": (
        OK_MODELS + 'seeds = "0"\n',
        [],
        ["{path}", "'seeds'", "list of integers >= 0"],
    ),
    # --- out of range
    "num_steps_zero": (FIT + "num_steps = 0\n", [], ["{path}", "'fit.num_steps'", "must be > 0"]),
    "num_steps_negative": (
        FIT + "num_steps = -5\n",
        [],
        ["{path}", "'fit.num_steps'", "must be > 0"],
    ),
    "learning_rate_zero": (
        FIT + "learning_rate = 0.0\n",
        [],
        ["{path}", "'fit.learning_rate'", "must be > 0"],
    ),
    "learning_rate_negative_in_grid": (
        FIT + "learning_rate = [0.01, -1.0]\n",
        [],
        ["{path}", "'fit.learning_rate'", "must be > 0"],
    ),
    "sample_size_zero": (
        FIT + "sample_size = 0\n",
        [],
        ["{path}", "'fit.sample_size'", "must be > 0"],
    ),
    "elbo_sample_size_small": (
        FIT + "elbo_sample_size = 10\n",
        [],
        ["{path}", "'fit.elbo_sample_size'", "must be > 999"],
    ),
    "empty_grid": (
        FIT + "learning_rate = []\n",
        [],
        ["{path}", "'fit.learning_rate'", "empty list"],
    ),
    "model_argument_zero": (
        'models = [{ name = "correlated_gaussian", dimension = 0 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "must be in [1, 1000]"],
    ),
    "importance_sample_size_zero": (
        OK_MODELS + "[metrics]\niw_elbo_k = 0\n",
        [],
        ["{path}", "'metrics.iw_elbo_k'", "must be > 0"],
    ),
    "cpus_per_task_zero": (
        OK_MODELS + "[resources]\ncpus_per_task = 0\n",
        [],
        ["{path}", "'resources.cpus_per_task'", "must be > 0"],
    ),
    "negative_seed": (OK_MODELS + "seeds = [-1]\n", [], ["{path}", "'seeds'", ">= 0"]),
    "duplicate_seeds": (OK_MODELS + "seeds = [0, 0]\n", [], ["{path}", "'seeds'", "duplicate"]),
    "empty_seeds": (OK_MODELS + "seeds = []\n", [], ["{path}", "'seeds'", "non-empty"]),
    "empty_models": (
        'models = []\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models'", "non-empty"],
    ),
    "empty_families": (
        'models = ["banana"]\nfamilies = []\n',
        [],
        ["{path}", "'families'", "non-empty"],
    ),
    "missing_models": ('families = ["mean_field"]\n', [], ["{path}", "'models'", "banana"]),
    "duplicate_model": (
        'models = ["banana", "banana"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[1]'", "duplicate"],
    ),
    # --- names that would become paths
    "name_parent_dir": (
        'name = "../x"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_with_slash": (
        'name = "a/b"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_absolute": (
        'name = "/tmp/x"\n' + OK_MODELS,
        [],
        ["{path}", "'name'", "no path separators"],
    ),
    "name_dots": ('name = ".."\n' + OK_MODELS, [], ["{path}", "'name'", "no path separators"]),
    # --- user models and their reference files (files written by _write_zoo)
    "user_model_missing_file": (
        'models = ["zoo/nope.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "no such file"],
    ),
    "user_model_no_attribute": (
        'models = ["zoo/good.py:nope"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "has no attribute 'nope'"],
    ),
    "user_model_without_attribute": (
        'models = ["zoo/good.py:"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "'path/to/file.py:attr'"],
    ),
    "user_model_missing_module": (
        'models = ["no_such_package.models:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "cannot import module"],
    ),
    "user_model_syntax_error": (
        'models = ["zoo/broken.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "SyntaxError"],
    ),
    "user_model_not_a_model": (
        'models = ["zoo/not_a_model.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "returned a int", "Model"],
    ),
    "user_model_nan_log_prob": (
        'models = ["zoo/nan_model.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "not finite"],
    ),
    "user_model_extra_argument": (
        'models = [{ name = "zoo/good.py:target", dimension = 3 }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0].dimension'", "only 'reference'"],
    ),
    "user_reference_wrong_shape": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/draws_3d.npz" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "draws_3d.npz", "expected [n, 2]"],
    ),
    "user_reference_not_numeric": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/words.csv" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "not a numeric CSV"],
    ),
    "user_reference_missing": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/none.npz" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", "no such reference file"],
    ),
    "user_reference_wrong_suffix": (
        'models = [{ name = "zoo/good.py:target", '
        'reference = "zoo/good.py" }]\nfamilies = ["mean_field"]\n',
        [],
        ["{path}", "'models[0]'", ".npz or .csv"],
    ),
    # --- --set and flags
    "set_without_equals": (
        OK_MODELS,
        ["--set", "fit.num_steps"],
        ["{path}", "--set 'fit.num_steps'", "expected key=value"],
    ),
    "set_out_of_range": (
        OK_MODELS,
        ["--set", "fit.num_steps=0"],
        ["{path}", "'fit.num_steps'", "must be > 0"],
    ),
    "set_unknown_key": (
        OK_MODELS,
        ["--set", "fit.num_stepz=10"],
        ["{path}", "'fit.num_stepz'", "did you mean 'num_steps'"],
    ),
    "set_into_non_table": (
        OK_MODELS + "seeds = [0]\n",
        ["--set", "seeds.first=1"],
        ["{path}", "--set seeds.first", "'seeds' is not a table"],
    ),
    "set_unknown_model": (
        OK_MODELS,
        ["--set", 'models=["nope"]'],
        ["{path}", "'models[0]'", "unknown model 'nope'"],
    ),
    "workers_zero": (OK_MODELS, ["--workers", "0"], ["--workers", ">= 1", "got 0"]),
    "max_groups_per_worker_zero": (
        OK_MODELS,
        ["--max-groups-per-worker", "0"],
        ["--max-groups-per-worker", ">= 1"],
    ),
    "worker_memory_nan": (OK_MODELS, ["--worker-memory-mb", "nan"], ["--worker-memory-mb", "> 0"]),
    "worker_memory_negative": (
        OK_MODELS,
        ["--worker-memory-mb", "-5"],
        ["--worker-memory-mb", "> 0"],
    ),
    # --- numbers that are not finite, overflow an int32 or exceed a resource limit
    "learning_rate_nan": (FIT + "learning_rate = nan\n", [], ["'fit.learning_rate'", "finite"]),
    "learning_rate_inf": (FIT + "learning_rate = inf\n", [], ["'fit.learning_rate'", "finite"]),
    "learning_rate_nan_in_grid": (
        FIT + "learning_rate = [0.01, nan]\n",
        [],
        ["'fit.learning_rate'", "finite"],
    ),
    "early_stopping_tolerance_renamed": (
        FIT + "early_stopping_tolerance = 0.1\n",
        [],
        ["'fit.early_stopping_tolerance' is now fit.stopping"],
    ),
    "fit_convergence_tolerance_nan": (
        FIT + "convergence_tolerance = nan\n",
        [],
        ["'fit.convergence_tolerance'", "finite"],
    ),
    "fit_convergence_tolerance_negative": (
        FIT + "convergence_tolerance = -0.1\n",
        [],
        ["'fit.convergence_tolerance'", "> 0"],
    ),
    "learning_rate_word_unknown": (
        FIT + 'learning_rate = "automatic"\n',
        [],
        ["'fit.learning_rate'", "expected a number"],
    ),
    "stopping_unknown": (FIT + 'stopping = "never"\n', [], ["'fit.stopping'", "unknown value"]),
    # --- optimizer = "saa" (harness.engines.saa)
    "optimizer_unknown": (
        FIT + 'optimizer = "lbfgs"\n',
        [],
        ["'fit.optimizer'", "unknown value", "adam, saa"],
    ),
    "saa_with_learning_rate": (
        FIT + 'optimizer = "saa"\nlearning_rate = 0.1\n',
        [],
        ["'fit.learning_rate'", "optimizer 'saa'", "no learning rate"],
    ),
    "saa_with_sticking_the_landing": (
        FIT + 'optimizer = "saa"\ngradient_estimator = "sticking_the_landing"\n',
        [],
        ["'fit.gradient_estimator'", "optimizer 'saa'"],
    ),
    "saa_with_importance_weights": (
        FIT + 'optimizer = "saa"\nimportance_sample_size = 4\n',
        [],
        ["'fit.importance_sample_size'", "optimizer 'saa'"],
    ),
    "saa_initial_above_max": (
        FIT + 'optimizer = "saa"\nsaa_initial_sample_size = 64\nsaa_max_sample_size = 32\n',
        [],
        ["'fit.saa_initial_sample_size'", "<= fit.saa_max_sample_size (32)"],
    ),
    "saa_tolerance_zero": (FIT + "saa_tolerance = 0.0\n", [], ["'fit.saa_tolerance'", "> 0"]),
    "saa_max_sample_size_zero": (
        FIT + "saa_max_sample_size = 0\n",
        [],
        ["'fit.saa_max_sample_size'", "> 0"],
    ),
    "saa_family_unsupported": (
        'models = ["banana"]\nfamilies = ["asvi"]\n[fit]\noptimizer = "saa"\n',
        [],
        ["'families[0]'", "optimizer 'saa' fits", "not 'asvi'"],
    ),
    "saa_flow_unsupported": (
        'models = ["banana"]\nfamilies = ["real_nvp"]\n[fit]\noptimizer = "saa"\n',
        [],
        ["'families[0]'", "optimizer 'saa' fits mean_field, full_rank, low_rank", "not 'real_nvp'"],
    ),
    "initialization_unknown": (
        FIT + 'initialization = "random"\n',
        [],
        ["'fit.initialization'", "unknown value 'random'"],
    ),
    "initialization_near_pathfinder": (
        FIT + 'initialization = "pathfinders"\n',
        [],
        ["'fit.initialization'", "did you mean 'pathfinder'"],
    ),
    "pathfinder_num_paths_zero": (
        'models = ["banana"]\nfamilies = [{ name = "pathfinder", num_paths = 0 }]\n',
        [],
        ["num_paths"],
    ),
    "num_steps_int32_overflow": (
        FIT + "num_steps = 1000000000000\n",
        [],
        ["'fit.num_steps'", "int32"],
    ),
    "num_steps_above_limit": (
        FIT + "num_steps = 20000000\n",
        [],
        ["'fit.num_steps'", "<= 10,000,000"],
    ),
    "num_steps_exponent": (FIT + "num_steps = 1e12\n", [], ["'fit.num_steps'", "an integer"]),
    "sample_size_memory": (
        FIT + "sample_size = 1000000000\n",
        [],
        ["'fit.sample_size'", "needs 8e+09", "elements"],
    ),
    "importance_sample_size_memory": (
        FIT + "importance_sample_size = 100000000\n",
        [],
        ["'fit.sample_size'", "importance_sample_size"],
    ),
    "elbo_sample_size_memory": (
        FIT + "elbo_sample_size = 1000000000\n",
        [],
        ["'models[0]'", "evaluation", "elbo_sample_size"],
    ),
    "num_draws_kept_zero": (FIT + "num_draws_kept = 0\n", [], ["'fit.num_draws_kept'", "> 0"]),
    "schedule_unknown": (
        FIT + 'learning_rate_schedule = "cosin"\n',
        [],
        ["'fit.learning_rate_schedule'", "did you mean 'cosine'"],
    ),
    "gradient_estimator_unknown": (
        FIT + 'gradient_estimator = "score"\n',
        [],
        ["'fit.gradient_estimator'", "unknown value 'score'"],
    ),
    "vectorize_seeds_string": (
        FIT + 'vectorize_seeds = "yes"\n',
        [],
        ["'fit.vectorize_seeds'", "true or false"],
    ),
    "importance_sample_size_zero_fit": (
        FIT + "importance_sample_size = 0\n",
        [],
        ["'fit.importance_sample_size'", "> 0"],
    ),
    "convergence_tolerance_inf": (
        FIT + "convergence_tolerance = inf\n",
        [],
        ["'fit.convergence_tolerance'", "finite"],
    ),
    "convergence_tolerance_in_metrics": (
        OK_MODELS + "[metrics]\nconvergence_tolerance = 1.0\n",
        [],
        ["'metrics.convergence_tolerance' is now fit.convergence_tolerance"],
    ),
    "convergence_tolerance_zero": (
        FIT + "convergence_tolerance = 0.0\n",
        [],
        ["'fit.convergence_tolerance'", "> 0"],
    ),
    "metrics_importance_memory": (
        OK_MODELS + "[metrics]\niw_elbo_k = 1000000000\n",
        [],
        ["'models[0]'", "evaluation", "metrics.iw_elbo_k"],
    ),
    "metrics_importance_float": (
        OK_MODELS + "[metrics]\niw_elbo_k = 6.5\n",
        [],
        ["'metrics.iw_elbo_k'", "an integer"],
    ),
    "metrics_not_table": (OK_MODELS + "metrics = 1\n", [], ["'metrics'", "a table"]),
    "gpus_per_task_negative": (
        OK_MODELS + "[resources]\ngpus_per_task = -1\n",
        [],
        ["'resources.gpus_per_task'", ">= 0"],
    ),
    "cpus_per_task_inf": (
        OK_MODELS + "[resources]\ncpus_per_task = inf\n",
        [],
        ["'resources.cpus_per_task'", "finite"],
    ),
    "cpus_per_task_huge": (
        OK_MODELS + "[resources]\ncpus_per_task = 1e6\n",
        [],
        ["'resources.cpus_per_task'", "<= 1024"],
    ),
    "resources_not_table": (OK_MODELS + "resources = 2\n", [], ["'resources'", "a table"]),
    "seed_int32_overflow": (OK_MODELS + "seeds = [4294967296]\n", [], ["'seeds'", "2147483647"]),
    "seed_bool": (OK_MODELS + "seeds = [true]\n", [], ["'seeds'", "integers"]),
    # --- model arguments outside the model's declared range
    "correlation_one": (
        'models = [{ name = "correlated_gaussian", correlation = 1.0 }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].correlation'", "in (-1, 1)", "got 1.0"],
    ),
    "correlation_minus_one": (
        'models = [{ name = "correlated_gaussian", correlation = -1.0 }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].correlation'", "in (-1, 1)"],
    ),
    "correlation_nan": (
        'models = [{ name = "correlated_gaussian", correlation = nan }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].correlation'", "finite"],
    ),
    "dimension_above_limit": (
        'models = [{ name = "correlated_gaussian", dimension = 30000 }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].dimension'", "in [1, 1000]", "30000"],
    ),
    "dimension_int32_overflow": (
        'models = [{ name = "correlated_gaussian", dimension = 9999999999 }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].dimension'", "int32"],
    ),
    "dtype_unknown": (
        'models = [{ name = "correlated_gaussian", dtype = "float16" }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].dtype'", "unknown value 'float16'", "did you mean 'float64'"],
    ),
    "curvature_inf": (
        'models = [{ name = "banana", curvature = inf }]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0].curvature'", "finite"],
    ),
    "noise_scale_zero": (
        'models = [{ name = "linear_regression", noise_scale = 0.0 }]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0].noise_scale'", "> 0"],
    ),
    "num_observations_above_limit": (
        'models = [{ name = "linear_regression", num_observations = 100000000 }]\n'
        'families = ["mean_field"]\n',
        [],
        ["'models[0].num_observations'", "in [1, 1e+06]"],
    ),
    "vae_gap_points_above_test_set": (
        'models = [{ name = "vae_digits", gap_num_points = 1000 }]\n'
        'families = ["encoder_diagonal"]\n',
        [],
        ["'models[0].gap_num_points'", "in [1, 297]"],
    ),
    "vae_latent_zero": (
        'models = [{ name = "vae_digits", latent_size = 0 }]\nfamilies = ["encoder_diagonal"]\n',
        [],
        ["'models[0].latent_size'", "in [1, 256]"],
    ),
    # --- hyperparameters outside their declared range
    "hidden_units_huge": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", hidden_units = 1000000000 }]\n',
        [],
        ["'families[0].hidden_units'", "in [1, 4096]"],
    ),
    "num_layers_zero": (
        'models = ["banana"]\nfamilies = [{ name = "real_nvp", num_layers = 0 }]\n',
        [],
        ["'families[0].num_layers'", "in [1, 64]"],
    ),
    "initial_scale_negative": (
        'models = ["banana"]\nfamilies = [{ name = "mean_field", initial_scale = -0.1 }]\n',
        [],
        ["'families[0].initial_scale'", "> 0"],
    ),
    "initial_scale_nan": (
        'models = ["banana"]\nfamilies = [{ name = "full_rank", initial_scale = nan }]\n',
        [],
        ["'families[0].initial_scale'", "finite"],
    ),
    "target_accept_one": (
        'models = ["banana"]\nfamilies = [{ name = "nuts", target_accept_prob = 1.0 }]\n',
        [],
        ["'families[0].target_accept_prob'", "in (0, 1)"],
    ),
    "num_bins_huge": (
        'models = ["banana"]\nfamilies = [{ name = "neural_spline", num_bins = 100000 }]\n',
        [],
        ["'families[0].num_bins'", "in [1, 256]"],
    ),
    "flow_step_memory": (
        'models = ["banana"]\nfamilies = [{ name = "iaf", hidden_units = 4096, num_layers = 64, '
        "num_hidden_layers = 16 }]\n[fit]\nsample_size = 1000\n",
        [],
        ["'fit.sample_size'", "a step of models[0] x iaf", "elements"],
    ),
    "num_components_zero": (
        'models = ["banana"]\nfamilies = [{ name = "gaussian_mixture", num_components = 0 }]\n',
        [],
        ["'families[0].num_components'", "in [1, 64]"],
    ),
    "mixture_covariance_unknown": (
        'models = ["banana"]\nfamilies = [{ name = "gaussian_mixture", covariance = "diag" }]\n',
        [],
        ["'families[0].covariance'", "unknown value 'diag'", "diagonal"],
    ),
    "multimodal_dimension_small": (
        'models = [{ name = "multimodal_nd", dimension = 5 }]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0].dimension'", "in [10, 50]"],
    ),
    "hyperparameter_bool_for_number": (
        'models = ["banana"]\nfamilies = [{ name = "low_rank", rank = true }]\n',
        [],
        ["'families[0].rank'", "an integer"],
    ),
    # --- long and odd names are cut in messages
    "long_experiment_name": (
        f'name = "{"a" * 100_000}"\n' + OK_MODELS,
        [],
        ["'name'", "100,002 characters"],
    ),
    "long_unknown_model": (
        f'models = ["{"x" * 100_000}"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "unknown model", "characters"],
    ),
    "long_unknown_key": (
        f"{'k' * 100_000} = 1\n" + OK_MODELS,
        [],
        ["unknown key", "100,000 characters"],
    ),
    "long_fit_value": (
        FIT + f'learning_rate_schedule = "{"c" * 100_000}"\n',
        [],
        ["'fit.learning_rate_schedule'", "characters"],
    ),
    "long_model_argument": (
        f'models = [{{ name = "banana", {"q" * 5000} = 1 }}]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0].", "unknown argument", "5,000 characters"],
    ),
    "model_name_not_string": (
        'models = [{ name = 3 }]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0].name'", "a string"],
    ),
    "family_name_table": (
        'models = ["banana"]\nfamilies = [{ name = { a = 1 } }]\n',
        [],
        ["'families[0].name'", "a string"],
    ),
    "families_not_list": (
        'models = ["banana"]\nfamilies = "mean_field"\n',
        [],
        ["'families'", "non-empty list"],
    ),
    # --- user code that fails: one line with the exception and the user's file:line
    "user_model_raises_in_factory": (
        'models = ["zoo/raises.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "RuntimeError: no data here", "raises.py:5"],
    ),
    "user_model_exits_on_import": (
        'models = ["zoo/exits.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "SystemExit", "exit code 3", "exits.py:2"],
    ),
    "user_model_exits_in_factory": (
        'models = ["zoo/exits_later.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "SystemExit", "exits_later.py:5"],
    ),
    "user_model_division_on_import": (
        'models = ["zoo/divides.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "ZeroDivisionError", "divides.py:1"],
    ),
    "user_model_factory_needs_arguments": (
        'models = ["zoo/needs_args.py:target"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "TypeError", "target()"],
    ),
    "user_model_attribute_not_callable": (
        'models = ["zoo/good.py:VALUE"]\nfamilies = ["mean_field"]\n',
        [],
        ["'models[0]'", "'VALUE' is a int"],
    ),
    # --- the tracking store and the results folder, checked before anything runs
    "tracking_uri_unknown_scheme": (
        OK_MODELS,
        ["--tracking-uri", "foo://bar"],
        ["tracking URI 'foo://bar'", "unknown scheme 'foo'"],
    ),
    "tracking_uri_file_store": (
        OK_MODELS,
        ["--tracking-uri", "file:///tmp/mlruns"],
        ["tracking URI", "unknown scheme 'file'"],
    ),
    "tracking_uri_no_scheme": (
        OK_MODELS,
        ["--tracking-uri", "mlflow.db"],
        ["tracking URI 'mlflow.db'", "unknown scheme"],
    ),
    "tracking_uri_under_a_file": (
        OK_MODELS,
        ["--tracking-uri", "sqlite:///zoo/good.py/mlflow.db"],
        ["tracking URI", "zoo/good.py is a file, not a folder"],
    ),
    "tracking_uri_is_a_folder": (
        OK_MODELS,
        ["--tracking-uri", "sqlite:///zoo"],
        ["tracking URI", "is not a file"],
    ),
    "results_dir_is_a_file": (
        OK_MODELS,
        ["--results-dir", "zoo/good.py"],
        ["--results-dir zoo/good.py: zoo/good.py is a file, not a folder"],
    ),
    "results_dir_under_a_file": (
        OK_MODELS,
        ["--results-dir", "zoo/good.py/deeper"],
        ["--results-dir", "is a file, not a folder"],
    ),
    "set_nan": (OK_MODELS, ["--set", "fit.learning_rate=nan"], ["'fit.learning_rate'", "finite"]),
    "set_long_key": (
        OK_MODELS,
        ["--set", "fit." + "z" * 300 + "=1"],
        ["unknown key 'fit.", "300 characters"],
    ),
    "set_correlation_one": (
        'models = ["correlated_gaussian"]\nfamilies = ["mean_field"]\n',
        ["--set", 'models=[{name="correlated_gaussian", correlation=1.0}]'],
        ["'models[0].correlation'", "in (-1, 1)"],
    ),
    "workers_negative": (OK_MODELS, ["--workers", "-2"], ["--workers", ">= 1", "got -2"]),
}


def _write_zoo(folder):
    """User model files next to the spec: one good, the others each wrong in one way."""
    zoo = folder / "zoo"
    zoo.mkdir()
    good = (
        "from harness.models import MODELS\n\n\n"
        "def target():\n    return MODELS['correlated_gaussian'](dimension=2)\n"
    )
    (zoo / "good.py").write_text(good)
    (zoo / "broken.py").write_text("def target(:\n")
    (zoo / "not_a_model.py").write_text("def target():\n    return 3\n")
    (zoo / "nan_model.py").write_text(
        "import dataclasses\n\nimport tensorflow as tf\n\n"
        + good.replace(
            "    return MODELS['correlated_gaussian'](dimension=2)\n",
            "    model = MODELS['correlated_gaussian'](dimension=2)\n"
            "    return dataclasses.replace(model, unnormalized_log_prob=lambda x: "
            "tf.reduce_sum(x, -1) * float('nan'))\n",
        )
    )
    (zoo / "raises.py").write_text(
        "import numpy\n\n\ndef target():\n    raise RuntimeError('no data here')\n"
    )
    (zoo / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (zoo / "exits_later.py").write_text("import sys\n\n\ndef target():\n    sys.exit('bye')\n")
    (zoo / "divides.py").write_text("RATIO = 1 / 0\n")
    (zoo / "needs_args.py").write_text("def target(data):\n    return data\n")
    (zoo / "good.py").write_text(good + "\nVALUE = 3\n")
    np.savez(zoo / "draws_3d.npz", draws=np.zeros((10, 3)))
    (zoo / "words.csv").write_text("a,b\nx,y\n")


@pytest.mark.parametrize("text, extra, expected", list(CASES.values()), ids=list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch, text, extra, expected
):
    _write_zoo(tmp_path)
    # As a user runs it: a spec path relative to the working folder.
    monkeypatch.chdir(tmp_path)
    path = Path("spec.toml")
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    before = set(tmp_path.iterdir())
    zoo_before = set((tmp_path / "zoo").iterdir())
    code = cli.main(
        [
            "run",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--results-dir",
            str(tmp_path / "results"),
            # The serial executor starts no worker pool: every case stays in this process
            # (the pool's early start on bad input is tested once, below).
            "--executor",
            "serial",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert captured.out == ""
    assert len(err.splitlines()) == 1, err
    assert len(err) <= 200, (len(err), err)
    assert err.startswith("harness: error: "), err
    for piece in expected:
        assert piece.format(path=path) in err, (piece, err)
    assert set(tmp_path.iterdir()) == before, "nothing may be written for bad input"
    assert set((tmp_path / "zoo").iterdir()) == zoo_before


def test_bad_input_table_has_at_least_100_cases():
    assert len(CASES) >= 100


def test_bad_input_with_the_worker_pool_started_exits_2_and_stops_it(tmp_path, capsys):
    """The local pool starts before the spec is checked; bad input kills its workers."""
    path = tmp_path / "spec.toml"
    path.write_text(FIT + "learning_rate = nan\n")
    code = cli.main(
        ["run", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--workers", "1"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "finite" in err
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("command", ["report", "sync"])
@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/x", ".."])
def test_experiment_names_that_are_paths_are_refused(tmp_path, capsys, command, name):
    code = cli.main(
        [command, "--experiment", name, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "--experiment" in err and repr(name) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["report", "sync"])
def test_report_and_sync_refuse_an_unknown_tracking_scheme(tmp_path, capsys, command):
    code = cli.main([command, "--experiment", "x", "--tracking-uri", "foo://bar"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown scheme 'foo'" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["report", "sync"])
def test_report_and_sync_need_a_spec_or_an_experiment(tmp_path, capsys, command):
    assert cli.main([command]) == 2
    assert "give a SPEC or --experiment NAME" in capsys.readouterr().err


def test_ui_binds_localhost_unless_told_otherwise():
    parser = cli._parser()
    assert parser.parse_args(["ui"]).host == "127.0.0.1"
    assert parser.parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
