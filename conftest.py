"""Root conftest: registers the scalebench fixtures (fixtures/) as a plugin."""

pytest_plugins = ["fixtures.plugin"]
