"""Family.supports: specs leave out inapplicable (model, family) cells, or fail when none apply."""

from __future__ import annotations

import pytest

from harness.spec import SpecError, load


def test_spec_leaves_out_cells_where_a_family_does_not_apply(write_spec):
    path = write_spec("""
        name = "applicability"
        models = ["linear_regression_unknown_noise", "banana"]
        families = ["mean_field", "cavi"]
    """)
    cells = {(c.model, c.family) for c in load(path).cells()}
    assert cells == {
        ("linear_regression_unknown_noise", "mean_field"),
        ("linear_regression_unknown_noise", "cavi"),
        ("banana", "mean_field"),
    }


def test_spec_with_a_family_that_applies_to_no_model_is_an_error(write_spec):
    path = write_spec("""
        models = ["banana"]
        families = ["mean_field", "cavi"]
    """)
    with pytest.raises(
        SpecError,
        match=r"families\[1\].*'cavi' applies to none of the listed "
        r"models: it needs normal-inverse-gamma",
    ):
        load(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("learning_rate_schedule", '"linear"', "unknown value 'linear'"),
        ("gradient_estimator", '"stl"', "unknown value 'stl'"),
        ("importance_sample_size", "0", "must be > 0"),
        ("convergence_tolerance", "-0.1", "must be > 0"),
        ("early_stopping_tolerance", "0.1", "is now fit.stopping"),
        ("stopping", '"never"', "unknown value 'never'"),
        ("initialization", '"zeros"', "unknown value 'zeros'"),
    ],
)
def test_fit_options_are_validated(write_spec, key, value, message):
    path = write_spec(f"""
        models = ["banana"]
        families = ["mean_field"]
        [fit]
        {key} = {value}
    """)
    with pytest.raises(SpecError, match=f"fit.{key}.*{message}"):
        load(path)
