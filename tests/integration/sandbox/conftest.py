"""A sandbox process per test session, real SDK clients pointed at it, a clean slate per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sandbox_helpers import TEST_SETTINGS, Sandbox, assert_no_internal_error, running


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running(tmp_path_factory.mktemp("sandbox-state")) as box:
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Iterator[None]:
    sandbox.control.reset()
    sandbox.control.configure(TEST_SETTINGS)
    crashes_before = sandbox.control.internal_errors()
    yield
    sandbox.control.clear_faults()
    assert_no_internal_error(sandbox, crashes_before)
