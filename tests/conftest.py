"""Shared test configuration.

The public bonding samples live outside the repository, in ``../shared``: tests that read them
use the ``shared_samples`` fixture, which skips (with the reason) where that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLES = REPO_ROOT.parent / "shared" / "fixtures" / "public-bonding-samples"


@pytest.fixture(scope="session")
def lab_directory() -> Path:
    """Where the lab's images are, as the CLI finds them (``BONDBOT_LAB_DIR``, else the data
    directory's ``lab/``): ``lab.testing``'s fixtures take it from here, the lab reads no settings."""
    from bondbot.settings import lab_dir

    return lab_dir()


@pytest.fixture(scope="session")
def shared_samples() -> Path:
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"public bonding samples not found at {SHARED_SAMPLES} (../shared is absent)")
    return SHARED_SAMPLES
