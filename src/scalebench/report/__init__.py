"""Reading saved pytest-benchmark JSON, comparing runs, and the side-by-side report."""
