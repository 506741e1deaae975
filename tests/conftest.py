"""Test-only fixtures: a private data directory shared by the tests of one session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("data")


def flat(text: str) -> str:
    """A Markdown report with its tables' column padding collapsed, so a test can look for a row."""
    import re

    return re.sub(r" {2,}", " ", text)
