"""Automatic structured variational inference (ASVI; Ambrogioni et al., 2021).

The surrogate has the prior's own graphical structure: every conditional ``p(z_i | parents)``
of the prior ``JointDistribution`` becomes ``q(z_i | parents)`` of the same family, with
parameters ``α_i ⊙ prior_parameters(parents) + (1 − α_i) ⊙ λ_i`` where ``α_i`` and ``λ_i`` are
trainable (TFP's ``tfp.experimental.vi.build_asvi_surrogate_posterior``).  It needs the model's
prior as a JointDistribution; distributions with no ASVI rule get TFP's fallback (a trainable distribution of the
same support).
"""

from __future__ import annotations

# TensorFlow is imported inside the functions: this module is imported by the spec's family
# registry, and the driver of a sweep never needs TensorFlow.


def _joint_prior(model):
    """``(JointDistribution, bijector to the flat vector)`` of the model's prior, or None.

    Either ``model.prior`` is a JointDistribution (flattened by :func:`_flatten_bijector`), or
    ``model.prior_distribution`` is a JointDistribution pushed through a bijector onto the
    model's flat vector (that bijector is reused).
    """
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    prior = getattr(model, "prior", None)
    if isinstance(prior, tfd.JointDistribution):
        return prior, _flatten_bijector(prior, model.dimension)
    vector_prior = getattr(model, "prior_distribution", None)
    if isinstance(vector_prior, tfd.TransformedDistribution) and isinstance(
        vector_prior.distribution, tfd.JointDistribution
    ):
        return vector_prior.distribution, vector_prior.bijector
    return None


def supports_asvi(model) -> bool:
    """ASVI applies to models whose prior is a ``tfd.JointDistribution`` (``model.prior``, or
    the base of ``model.prior_distribution``)."""
    return _joint_prior(model) is not None


def _flatten_bijector(prior, dimension: int):
    """Structured event of ``prior`` → the model's flat ``[d]`` vector.

    The model's vector is taken to be the prior's parts in ``tf.nest.flatten`` order, each
    reshaped to ``[-1]`` and concatenated (as inference_gym's ``VectorModel`` does).
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfb = tfp.bijectors
    event_shapes = tf.nest.flatten(prior.event_shape)
    sizes = [int(tf.TensorShape(s).num_elements()) for s in event_shapes]
    if sum(sizes) != dimension:
        raise ValueError(
            f"the prior's events have {sum(sizes)} elements in all, the model has "
            f"dimension {dimension}"
        )
    flat_parts = tfb.JointMap(
        [tfb.Reshape([n], event_shape_in=s) for n, s in zip(sizes, event_shapes, strict=True)]
    )
    to_list = tfb.Restructure(list(range(len(sizes))), prior.event_shape)
    return tfb.Chain([tfb.Invert(tfb.Split(sizes)), flat_parts, to_list])


def build_asvi(model, *, seed, mean_field: bool = False, initial_prior_weight: float = 0.5):
    """ASVI surrogate posterior with the prior's structure, flattened to the model's vector.

    Draws lie in the support because each conditional keeps the prior's family; the model's
    event-space bijector is not needed.

    Args:
      model: A :class:`harness.models.base.Model` whose ``prior`` is a JointDistribution over
        the same variables as its flat vector (parts in ``tf.nest.flatten`` order), or whose
        ``prior_distribution`` is a JointDistribution pushed onto that vector by a bijector.
      seed: Stateless seed (shape ``[2]`` int32) for the initial parameters.
      mean_field: Drop the dependence on parents (every ``α_i = 0``): a mean-field surrogate in
        the prior's families.
      initial_prior_weight: Initial ``α_i`` (0.5: halfway between the prior and free values,
        TFP's default).

    Raises:
      ValueError: when the model has no JointDistribution prior.
    """
    import tensorflow_probability as tfp

    found = _joint_prior(model)
    if found is None:
        raise ValueError(
            f"asvi needs a model whose prior is a JointDistribution; {model.name} has none"
        )
    prior, to_vector = found
    q = tfp.experimental.vi.build_asvi_surrogate_posterior(
        prior, mean_field=mean_field, initial_prior_weight=initial_prior_weight, seed=seed
    )
    return tfp.distributions.TransformedDistribution(q, to_vector, name="asvi_surrogate")
