"""vi-harness."""
