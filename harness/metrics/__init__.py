"""Metrics: pure functions, arrays in, floats out.  No TensorFlow, no I/O."""
