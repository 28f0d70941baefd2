"""Library log levels: a normal run shows only the harness's own lines.

TensorFlow, absl, XLA/CUDA start-up, tf.function retracing, MLflow's store migrations and
numerical warnings inside arviz are useful when debugging the harness, noise when using it.
:func:`configure` quiets them in the driver; the environment it sets is inherited by spawned
workers, which call it again (:mod:`harness.executors`) for their Python-level loggers.
``--verbose`` lets everything through.

TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once, when its C++ library loads: this must run
before the first ``import tensorflow`` of a process.
"""

from __future__ import annotations

import logging
import os
import warnings

VERBOSE_ENV = "HARNESS_VERBOSE"
# C++ logging of TensorFlow/XLA (3: fatal only; hides "failed call to cuInit", "Could not find
# cuda drivers", oneDNN notices) and of gRPC/absl.  A value the user set wins.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    # MLflow configures its logger at import ("Creating initial MLflow database tables...").
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}
QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "mlflow", "alembic", "numexpr", "jax")
# Warnings issued from these packages' code (deprecations, tf.function retracing, overflow
# in PSIS tail fits of badly fitting families: the k̂ metric reports that case).
QUIET_WARNING_MODULES = (
    r"(arviz|arviz_stats|arviz_base|tensorflow|tensorflow_probability|tf_keras|keras"
    r"|inference_gym|mlflow|absl)(\..*)?"
)


def verbose() -> bool:
    """Whether library logs were asked for (``--verbose``, inherited by workers)."""
    return os.environ.get(VERBOSE_ENV) == "1"


def configure(verbose_logs: bool | None = None) -> None:
    """Quiet library logs in this process (and, through the environment, in processes it
    spawns) unless ``verbose_logs`` (default: :func:`verbose`)."""
    if verbose_logs is None:
        verbose_logs = verbose()
    os.environ[VERBOSE_ENV] = "1" if verbose_logs else "0"
    if verbose_logs:
        return
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=QUIET_WARNING_MODULES)
    try:  # absl's own verbosity, when it is installed (TensorFlow depends on it)
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


__all__ = ["QUIET_ENVIRONMENT", "VERBOSE_ENV", "configure", "verbose"]
