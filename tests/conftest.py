"""Shared fixtures. Tests that read ../shared skip with a reason when it is absent."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_VIDEOS = SHARED / "data" / "videos"
SHARED_GRID = SHARED / "data" / "grid_s1"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_videos():
    """Path of ../shared/data/videos, or a skip when this clone has no ../shared."""
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"{SHARED_VIDEOS} is absent (a fresh clone without ../shared)")
    return SHARED_VIDEOS


@pytest.fixture(scope="session")
def shared_grid():
    """Path of ../shared/data/grid_s1, or a skip when this clone has no ../shared."""
    if not SHARED_GRID.is_dir():
        pytest.skip(f"{SHARED_GRID} is absent (a fresh clone without ../shared)")
    return SHARED_GRID
