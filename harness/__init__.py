"""vi-harness."""

import os as _os

# One thread per TensorFlow op (intra-op) in every process of the harness, whatever the number
# of workers: Eigen splits a reduction into per-thread blocks, so its last bits depend on the
# thread count, and a cell must give the same result serially and in a pool of any size.
# TensorFlow reads this when it creates its runtime (at the first op), so it is set on import
# of the package, before any op; a user who sets it keeps their value (and its results).
_os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
