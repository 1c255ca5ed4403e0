"""Shared fixtures: the project's maps and the real race tracks beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from multi_agent_rl.sim.maps import TrackMap, load_map

REPO_ROOT = Path(__file__).resolve().parents[1]
MAPS_DIR = REPO_ROOT / "maps"
RACETRACKS_DIR = REPO_ROOT.parent / "shared" / "racetracks"
RACETRACK_NAMES = ("Spielberg", "Silverstone", "Oschersleben")


@pytest.fixture(scope="session")
def line_track() -> TrackMap:
    return load_map(MAPS_DIR / "line_track" / "line_track.yaml")


@pytest.fixture(scope="session")
def line_track_wide() -> TrackMap:
    return load_map(MAPS_DIR / "line_track_wide" / "line_track_wide.yaml")


def racetrack_yaml(name: str) -> Path:
    """Path of a shared race track's YAML; skips the test when ../shared/racetracks is absent."""
    path = RACETRACKS_DIR / name / f"{name}_map.yaml"
    if not path.is_file():
        pytest.skip(f"shared race track {path} not found")
    return path


@pytest.fixture(scope="session", params=RACETRACK_NAMES)
def racetrack(request) -> TrackMap:
    return load_map(racetrack_yaml(request.param))


LINE_TRACK = MAPS_DIR / "line_track" / "line_track.yaml"
"""The default map's YAML (for tests that build envs from a path)."""
