"""Map loading: the project's maps, the shared race tracks, map_server semantics, errors that name the file."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multi_agent_rl.sim.collision import touches_wall
from multi_agent_rl.sim.maps import MapError, Polyline, load_map
from multi_agent_rl.sim.vehicle import LIMO
from tests.conftest import MAPS_DIR

PROJECT_MAPS = sorted(MAPS_DIR.glob("*/*.yaml"))


def test_project_maps_exist():
    assert {p.stem for p in PROJECT_MAPS} >= {"line_track", "line_track_wide"}


@pytest.mark.parametrize("path", PROJECT_MAPS, ids=lambda p: p.stem)
def test_project_map_loads_with_its_extras(path):
    track = load_map(path)
    assert track.finish_line is not None and track.centerline is not None
    assert {"start", "grid_2"} <= set(track.spawn_points)
    gaplock = [name for name in track.spawn_points if name.startswith("gaplock_")]
    assert len(gaplock) >= 12
    for name in gaplock:
        attacker, defender = track.spawn(name)
        ahead = attacker[0] - defender[0]
        lateral = abs(attacker[1] - defender[1])
        assert 1.2 - 1e-9 <= ahead <= 1.5 + 1e-9 and 0.1 - 1e-9 <= lateral <= 0.8 + 1e-9
        assert attacker[2] == defender[2] == 0.0
    for name, poses in track.spawn_points.items():
        assert not touches_wall(track, poses, LIMO.length, LIMO.width).any(), name
    assert track.is_free(track.centerline.points[1:-1]).all()


def test_line_track_geometry(line_track):
    """Free corridor exactly y in (-1.3, 1.3), x in (-50, 50), 0.05 m pixels."""
    assert line_track.resolution_m == 0.05
    xs = np.array([[-49.99, 0.0], [49.99, 0.0], [0.0, 1.29], [0.0, -1.29]])
    walls = np.array([[-50.01, 0.0], [50.01, 0.0], [0.0, 1.31], [0.0, -1.31], [200.0, 0.0]])
    assert line_track.is_free(xs).all()
    assert not line_track.is_free(walls).any()
    assert line_track.centerline.length == pytest.approx(100.0)
    np.testing.assert_allclose(line_track.finish_line[:, 0], 45.0)


def test_centerline_projection(line_track):
    s, lateral, heading = line_track.centerline.project(np.array([[10.0, 0.3], [-49.0, -0.7]]))
    np.testing.assert_allclose(s, [60.0, 1.0])
    np.testing.assert_allclose(lateral, [0.3, -0.7])
    np.testing.assert_allclose(heading, 0.0)


def test_closed_polyline_projection_on_a_circle():
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    circle = Polyline(points=10.0 * np.column_stack([np.cos(angles), np.sin(angles)]), closed=True)
    assert circle.length == pytest.approx(2 * np.pi * 10.0, rel=1e-4)
    s, lateral, heading = circle.project(np.array([[0.0, 11.0], [-9.0, 0.0]]))
    np.testing.assert_allclose(s, [np.pi / 2 * 10.0, np.pi * 10.0], rtol=1e-3)
    np.testing.assert_allclose(lateral, [-1.0, 1.0], atol=2e-3)  # counter-clockwise: left is inward
    assert math.cos(heading[0]) == pytest.approx(-1.0, abs=1e-3)


def test_shared_racetrack_loads_unchanged(racetrack):
    assert racetrack.free.shape == (2000, 2000)
    assert racetrack.centerline.closed and racetrack.raceline.closed
    assert racetrack.centerline.widths is not None
    assert racetrack.raceline.speeds.max() == pytest.approx(8.0)
    assert racetrack.is_free(racetrack.centerline.points).all()
    assert racetrack.is_free(racetrack.raceline.points).all()


@pytest.mark.parametrize("name,length_m", [("Spielberg", 338.1), ("Silverstone", 446.2), ("Oschersleben", 250.3)])
def test_raceline_lengths_match_the_readme(name, length_m):
    from tests.conftest import racetrack_yaml

    raceline = load_map(racetrack_yaml(name)).raceline
    assert raceline.length == pytest.approx(length_m, abs=0.5)


def test_kept_clear_gives_the_requested_clearance(racetrack):
    raceline = racetrack.raceline
    clear = raceline.kept_clear(racetrack, 0.4)
    dist_m = racetrack.distance_px * racetrack.resolution_m
    uv = np.floor(racetrack.world_to_map(clear.points)).astype(int)
    assert dist_m[uv[:, 1], uv[:, 0]].min() >= 0.4 - 1e-6
    moved = np.hypot(*(clear.points - raceline.points).T)
    assert moved.max() < 0.3  # a nudge, not a new line
    assert clear.length == pytest.approx(raceline.length, rel=0.01)


def write_map(folder: Path, pixels: np.ndarray, **keys) -> Path:
    Image.fromarray(pixels).save(folder / "m.png")
    meta = {"image": "m.png", "resolution": 0.1, "origin": [0.0, 0.0, 0.0], "negate": 0,
            "occupied_thresh": 0.65, "free_thresh": 0.196} | keys
    lines = [f"{k}: {v}" for k, v in meta.items()]
    (folder / "m.yaml").write_text("\n".join(lines) + "\n")
    return folder / "m.yaml"


def test_negate_inverts(tmp_path):
    pixels = np.full((10, 12), 255, dtype=np.uint8)
    pixels[:, :3] = 0
    plain = load_map(write_map(tmp_path, pixels))
    negated = load_map(write_map(tmp_path, pixels, negate=1))
    np.testing.assert_array_equal(plain.free, ~negated.free)
    assert plain.free[:, 3:].all() and not plain.free[:, :3].any()


def test_image_rows_are_flipped_so_row_zero_is_the_bottom(tmp_path):
    pixels = np.full((10, 12), 255, dtype=np.uint8)
    pixels[0, :] = 0  # the top row of the image
    track = load_map(write_map(tmp_path, pixels))
    assert not track.is_free(np.array([[0.55, 0.95]]))[0]  # y in [0.9, 1.0): the top row
    assert track.is_free(np.array([[0.55, 0.05]]))[0]


def test_thresholds_and_unknown_count_as_wall(tmp_path):
    pixels = np.array([[255, 230, 128, 30, 0]], dtype=np.uint8)  # occupancy 0, .098, .498, .882, 1
    default = load_map(write_map(tmp_path, pixels))
    np.testing.assert_array_equal(default.free[0], [True, True, False, False, False])
    lenient = load_map(write_map(tmp_path, pixels, free_thresh=0.6, occupied_thresh=0.9))
    np.testing.assert_array_equal(lenient.free[0], [True, True, True, False, False])


def test_extra_keys_are_tolerated(tmp_path):
    pixels = np.full((10, 10), 255, dtype=np.uint8)
    path = write_map(tmp_path, pixels, mode="trinary", comment="'made by hand'", laps=3)
    assert load_map(path).free.all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.write_text("image: m.png\nresolution: [oops\n"), "not valid YAML"),
        (lambda p: p.write_text("- just\n- a list\n"), "must be a mapping"),
        (lambda p: p.write_text("image: m.png\norigin: [0, 0, 0]\n"), "'resolution'"),
        (lambda p: p.write_text("image: m.png\nresolution: fine\norigin: [0, 0, 0]\n"), "'resolution'"),
        (lambda p: p.write_text("image: m.png\nresolution: 0.1\norigin: [0, 0]\n"), "'origin'"),
        (lambda p: p.write_text("image: gone.png\nresolution: 0.1\norigin: [0, 0, 0]\n"), "gone.png"),
        (lambda p: p.write_text("image: m.png\nresolution: 0.1\norigin: [0, 0, 0]\nmode: raw\n"), "'mode'"),
        (lambda p: p.write_text("image: m.png\nresolution: 0.1\norigin: [0, 0, 0]\nspawn_points: 3\n"),
         "spawn_points"),
    ],
)
def test_malformed_yaml_names_the_file(tmp_path, mutate, message):
    path = write_map(tmp_path, np.full((4, 4), 255, dtype=np.uint8))
    mutate(path)
    with pytest.raises(MapError, match=message) as err:
        load_map(path)
    assert str(tmp_path) in str(err.value)


def test_image_of_the_wrong_kind_names_the_file(tmp_path):
    path = write_map(tmp_path, np.full((4, 4), 255, dtype=np.uint8))
    (tmp_path / "m.png").write_text("this is not a picture")
    with pytest.raises(MapError, match="m.png"):
        load_map(path)
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(tmp_path / "m.png")
    with pytest.raises(MapError, match="8-bit"):
        load_map(path)


def test_missing_yaml_names_the_file(tmp_path):
    with pytest.raises(MapError, match="nowhere.yaml"):
        load_map(tmp_path / "nowhere.yaml")


def test_make_maps_reproduces_the_committed_files(tmp_path):
    from scripts.make_maps import main

    main(["--out", str(tmp_path)])
    for folder in MAPS_DIR.iterdir():
        if folder.is_dir():
            for committed in folder.iterdir():
                assert (tmp_path / folder.name / committed.name).read_bytes() == committed.read_bytes(), committed


def test_map_folder_path_and_pgm_are_accepted(tmp_path):
    shutil.copytree(MAPS_DIR / "line_track", tmp_path / "copy")
    track = load_map(tmp_path / "copy")
    assert track.name == "line_track" and track.free.shape == (72, 2020)
