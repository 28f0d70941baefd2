"""Non-SVI points on the same axes as the variational fits: NUTS, CAVI, Laplace.

``harness.baselines.nuts.sample`` is the NUTS sampler core (also used by ``harness reference``
to make reference posteriors).
"""
