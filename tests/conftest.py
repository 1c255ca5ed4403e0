"""Shared test helpers: paths to the project's maps and to the shared race tracks."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINE_TRACK = REPO / "maps" / "line_track" / "line_track.yaml"
RACETRACKS = REPO.parent / "shared" / "racetracks"
TRACK_NAMES = ("Spielberg", "Silverstone", "Oschersleben")


def racetrack(name: str) -> Path:
    """The map YAML of a shared race track, skipping the test when the shared folder is absent."""
    path = RACETRACKS / name / f"{name}_map.yaml"
    if not path.is_file():
        pytest.skip(f"shared race track {name} not found at {path}")
    return path
