"""Fixtures for the API & auth layer tests."""

import pytest

from .fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
