"""ROS map_server maps: occupancy grid, distance transform, spawn points, finish line, centre- and racelines.

A map is a YAML file (``image``, ``resolution`` in m/pixel, ``origin [x, y, yaw]`` = pose of the lower-left pixel,
``negate``, ``occupied_thresh``, ``free_thresh``, optional ``mode``) beside a PNG or PGM image, read the way
map_server's trinary mode reads it: occupancy p = (255 - v) / 255 (v / 255 when negated), averaged over the
channels; p < free_thresh is free, everything else (occupied or unknown) is a wall for the simulator.

Optional keys this project adds, all ignored by map_server:
    spawn_points: {name: [[x, y, yaw], ...]}   poses for cars 0, 1, ... (a single [x, y, yaw] is a one-car spawn)
    finish_line:  [[x1, y1], [x2, y2]]          a segment in world coordinates
and sibling files ``<name>_centerline.csv`` (x_m, y_m[, w_tr_right_m, w_tr_left_m]) and ``<name>_raceline.csv``
(s_m; x_m; y_m; psi_rad; kappa_radpm; vx_mps; ax_mps2), where ``<name>`` is the YAML stem without a trailing
``_map``. Unknown keys are tolerated.

Grid convention: ``occupancy[iy, ix]`` with iy growing upward (the image is flipped on load), so pixel (ix, iy)
covers [ix, ix + 1) x [iy, iy + 1) in pixel units of the map frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError
from scipy import ndimage


class MapError(ValueError):
    """A map file is missing, malformed or of the wrong kind. The message names the file."""


# map_server's defaults for the optional keys.
_DEFAULT_NEGATE = 0
_DEFAULT_OCCUPIED_THRESH = 0.65
_DEFAULT_FREE_THRESH = 0.196
_SUPPORTED_MODES = ("trinary", "scale")


@dataclass(frozen=True)
class Polyline:
    """A path through the track with its arc length.

    Attributes:
        points: (M, 2) vertices in world coordinates (m).
        closed: whether the last vertex connects back to the first (a lap).
        widths: (M, 2) track half-widths to the right and left of each vertex (m), or None.
        speeds: (M,) target speed at each vertex (m/s), or None (racelines carry one).
    """

    points: np.ndarray
    closed: bool
    widths: np.ndarray | None = None
    speeds: np.ndarray | None = None

    @cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = self.points
        ends = np.roll(self.points, -1, axis=0) if self.closed else self.points[1:]
        starts = starts[: len(ends)]
        vectors = ends - starts
        lengths = np.hypot(vectors[:, 0], vectors[:, 1])
        return starts, vectors, lengths

    @cached_property
    def arc_length(self) -> np.ndarray:
        """(S + 1,) cumulative arc length at each segment start, ending with the total length (m)."""
        return np.concatenate([[0.0], np.cumsum(self._segments[2])])

    @property
    def length(self) -> float:
        """Total length (m); for a closed line, one lap."""
        return float(self.arc_length[-1])

    def project(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project points onto the polyline.

        Args:
            xy: (K, 2) world points (m).
        Returns:
            s: (K,) arc length of the nearest point (m), in [0, length].
            lateral: (K,) signed offset, positive to the left of the direction of travel (m).
            heading: (K,) direction of the nearest segment (rad).
        """
        xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        starts, vectors, lengths = self._segments
        rel = xy[:, None, :] - starts[None, :, :]  # (K, S, 2)
        safe = np.maximum(lengths, 1e-12)
        frac = np.clip((rel * vectors[None]).sum(-1) / safe**2, 0.0, 1.0)  # (K, S)
        nearest = starts[None] + frac[..., None] * vectors[None]
        dist2 = ((xy[:, None, :] - nearest) ** 2).sum(-1)
        seg = np.argmin(dist2, axis=1)
        rows = np.arange(len(xy))
        s = self.arc_length[seg] + frac[rows, seg] * lengths[seg]
        d = vectors[seg] / safe[seg, None]
        r = xy - starts[seg]
        lateral = d[:, 0] * r[:, 1] - d[:, 1] * r[:, 0]
        heading = np.arctan2(d[:, 1], d[:, 0])
        return s, lateral, heading

    def kept_clear(self, track: TrackMap, clearance_m: float, iterations: int = 500) -> Polyline:
        """A copy whose vertices lie at least ``clearance_m`` from every wall pixel centre of ``track``.

        Vertices closer than that are pushed up the distance transform's gradient (straight away from the
        nearest wall), a little at a time, and the displacements are smoothed along the line so the result
        stays drivable. Vertices already clear do not move; speeds and widths are kept. Racing lines are often
        optimised against nominal track bounds wider than the drawn walls, so a car following one exactly can
        touch a wall; this gives it room.
        """
        dist_m = track.distance_px.astype(np.float64) * track.resolution_m
        # Direction from a smoothed field: the raw transform's gradient is quantised pixel by pixel.
        grad_v, grad_u = np.gradient(ndimage.gaussian_filter(dist_m, sigma=2.0))
        yaw = track.origin[2]
        c, s = np.cos(yaw), np.sin(yaw)
        points = self.points.copy()
        h, w = dist_m.shape
        for _ in range(iterations):
            uv = np.floor(track.world_to_map(points)).astype(np.int64)
            iu = np.clip(uv[:, 0], 0, w - 1)
            iv = np.clip(uv[:, 1], 0, h - 1)
            deficit = clearance_m - dist_m[iv, iu]
            if (deficit <= 1e-9).all():
                break
            gu, gv = grad_u[iv, iu], grad_v[iv, iu]
            norm = np.maximum(np.hypot(gu, gv), 1e-12)
            direction = np.stack([c * gu - s * gv, s * gu + c * gv], axis=1) / norm[:, None]
            step = np.clip(deficit, 0.0, track.resolution_m)[:, None] * direction
            points += _smooth_along(step, self.closed)
        return Polyline(points=points, closed=self.closed, widths=self.widths, speeds=self.speeds)


class TrackMap:
    """An occupancy map with everything the simulator and the tasks read from it.

    Attributes:
        name: map name (YAML stem without ``_map``).
        yaml_path: the file it was loaded from.
        resolution_m: pixel size (m).
        origin: (x, y, yaw) world pose of the lower-left pixel corner.
        free: (H, W) bool, True where a car may drive; row 0 is the bottom of the map.
        spawn_points: read-only name -> (cars, 3) poses.
        finish_line: (2, 2) segment end points or None.
        centerline, raceline: Polylines or None.
    """

    def __init__(
        self,
        free: np.ndarray,
        resolution_m: float,
        origin: tuple[float, float, float],
        *,
        name: str = "map",
        yaml_path: Path | None = None,
        spawn_points: dict[str, np.ndarray] | None = None,
        finish_line: np.ndarray | None = None,
        centerline: Polyline | None = None,
        raceline: Polyline | None = None,
    ) -> None:
        free = np.ascontiguousarray(free, dtype=bool)
        if free.ndim != 2 or min(free.shape) == 0:
            raise MapError(f"map '{name}': the free-space grid must be 2-D and non-empty, got shape {free.shape}")
        if not (resolution_m > 0 and math.isfinite(resolution_m)):
            raise MapError(f"map '{name}': resolution must be a positive number, got {resolution_m}")
        self.name = name
        self.yaml_path = yaml_path
        self.free = free
        self.free.setflags(write=False)
        self.resolution_m = float(resolution_m)
        self.origin = (float(origin[0]), float(origin[1]), float(origin[2]))
        self.spawn_points = MappingProxyType(dict(spawn_points or {}))
        self.finish_line = finish_line
        self.centerline = centerline
        self.raceline = raceline

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return self.free.shape

    @cached_property
    def distance_px(self) -> np.ndarray:
        """(H, W) float32 Euclidean distance from each free pixel centre to the nearest wall pixel centre, in
        pixels; 0 on walls. The image border counts as a wall, so a ray never steps out of the map unseen.
        Computed once per map on first use and kept."""
        padded = np.pad(self.free, 1, constant_values=False)
        dist = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
        dist = dist.astype(np.float32)
        dist.setflags(write=False)
        return dist

    def kernel_args(self) -> tuple:
        """The map as the numba kernels take it: (distance_px, origin x, origin y, cos yaw, sin yaw, resolution)."""
        ox, oy, yaw = self.origin
        return (self.distance_px, ox, oy, math.cos(yaw), math.sin(yaw), self.resolution_m)

    def world_to_map(self, xy: np.ndarray) -> np.ndarray:
        """World points (..., 2) in metres to map-frame points in pixel units (x right, y up)."""
        ox, oy, yaw = self.origin
        c, s = math.cos(yaw), math.sin(yaw)
        dx = np.asarray(xy)[..., 0] - ox
        dy = np.asarray(xy)[..., 1] - oy
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1) / self.resolution_m

    def is_free(self, xy: np.ndarray) -> np.ndarray:
        """Whether world points (..., 2) lie in free pixels (outside the map is not free)."""
        uv = np.floor(self.world_to_map(xy)).astype(np.int64)
        h, w = self.shape
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
        out = np.zeros(uv.shape[:-1], dtype=bool)
        out[inside] = self.free[uv[..., 1][inside], uv[..., 0][inside]]
        return out

    def spawn(self, name: str) -> np.ndarray:
        """(cars, 3) poses of a named spawn point; a KeyError lists the names this map has."""
        try:
            return self.spawn_points[name]
        except KeyError:
            known = ", ".join(sorted(self.spawn_points)) or "none"
            raise KeyError(f"map '{self.name}' has no spawn point '{name}'; it has: {known}") from None


def load_map(path: str | Path) -> TrackMap:
    """Load a map from its map_server YAML file (or from a folder holding exactly one ``*.yaml``).

    Raises:
        MapError: naming the file, when it is missing, is not valid YAML, lacks a key, holds a value of the wrong
            type, or points at an image that cannot be read.
    """
    yaml_path = _resolve_yaml(Path(path))
    meta = _read_yaml(yaml_path)
    image_path = yaml_path.parent / _require(meta, "image", str, yaml_path)
    resolution = _number(meta, "resolution", yaml_path)
    if resolution <= 0:
        raise MapError(f"{yaml_path}: 'resolution' must be > 0 m/pixel, got {resolution}")
    origin = _float_list(meta.get("origin"), 3, "origin", yaml_path)
    negate = meta.get("negate", _DEFAULT_NEGATE)
    if negate not in (0, 1, True, False):
        raise MapError(f"{yaml_path}: 'negate' must be 0 or 1, got {negate!r}")
    occupied = _number(meta, "occupied_thresh", yaml_path, _DEFAULT_OCCUPIED_THRESH)
    free_th = _number(meta, "free_thresh", yaml_path, _DEFAULT_FREE_THRESH)
    if not 0.0 <= free_th <= occupied <= 1.0:
        raise MapError(
            f"{yaml_path}: thresholds must satisfy 0 <= free_thresh <= occupied_thresh <= 1, "
            f"got free_thresh={free_th}, occupied_thresh={occupied}"
        )
    mode = meta.get("mode", "trinary")
    if mode not in _SUPPORTED_MODES:
        raise MapError(f"{yaml_path}: 'mode' must be one of {_SUPPORTED_MODES}, got {mode!r}")

    free = free_mask(_read_image(image_path), negate=bool(negate), free_thresh=free_th)
    name = yaml_path.stem.removesuffix("_map")
    return TrackMap(
        free=free,
        resolution_m=resolution,
        origin=(origin[0], origin[1], origin[2]),
        name=name,
        yaml_path=yaml_path,
        spawn_points=_spawn_points(meta.get("spawn_points"), yaml_path),
        finish_line=_finish_line(meta.get("finish_line"), yaml_path),
        centerline=_optional_csv(yaml_path.parent / f"{name}_centerline.csv", load_centerline),
        raceline=_optional_csv(yaml_path.parent / f"{name}_raceline.csv", load_raceline),
    )


def free_mask(pixels: np.ndarray, *, negate: bool, free_thresh: float) -> np.ndarray:
    """map_server trinary thresholding of image values to a free-space mask.

    Args:
        pixels: (rows, cols) or (rows, cols, channels) uint8 image, row 0 at the top.
        negate: when True, dark pixels are free.
        free_thresh: occupancy below which a pixel is free.
    Returns:
        (H, W) bool mask with row 0 at the bottom (map frame). Occupied and unknown pixels are not free.
    """
    values = pixels.astype(np.float64)
    if values.ndim == 3:
        values = values.mean(axis=2)  # map_server averages every channel, alpha included, in trinary mode
    occupancy = values / 255.0 if negate else (255.0 - values) / 255.0
    return np.ascontiguousarray((occupancy < free_thresh)[::-1])


def load_centerline(path: Path) -> Polyline:
    """Read ``x_m, y_m[, w_tr_right_m, w_tr_left_m]`` rows (``#`` comments) into a Polyline."""
    table = _read_table(path, min_columns=2)
    points = table[:, :2]
    widths = table[:, 2:4] if table.shape[1] >= 4 else None
    return Polyline(points=points, closed=_looks_closed(points), widths=widths)


def load_raceline(path: Path) -> Polyline:
    """Read ``s_m; x_m; y_m; psi_rad; kappa_radpm; vx_mps; ax_mps2`` rows into a Polyline with speeds."""
    table = _read_table(path, min_columns=6)
    points = table[:, 1:3]
    return Polyline(points=points, closed=_looks_closed(points), speeds=table[:, 5])


def _looks_closed(points: np.ndarray) -> bool:
    """A loop when the last vertex lies within a few typical segment lengths of the first."""
    if len(points) < 3:
        return False
    steps = np.hypot(*np.diff(points, axis=0).T)
    gap = float(np.hypot(*(points[-1] - points[0])))
    return gap <= 3.0 * float(np.median(steps))


def _resolve_yaml(path: Path) -> Path:
    if path.is_dir():
        candidates = sorted(path.glob("*.yaml"))
        if len(candidates) != 1:
            raise MapError(f"{path}: expected exactly one map YAML in this folder, found {len(candidates)}")
        return candidates[0]
    if not path.is_file():
        raise MapError(f"{path}: map YAML file not found")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        meta = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MapError(f"{path}: not valid YAML ({err.__class__.__name__}: {err})") from None
    if not isinstance(meta, dict):
        raise MapError(f"{path}: a map YAML must be a mapping with at least image, resolution and origin")
    return meta


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MapError(f"{path}: map image not found")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("1", "P"):
                img = img.convert("L")
            elif img.mode.startswith("I") or img.mode == "F":
                raise MapError(f"{path}: map images must be 8-bit (grey, grey+alpha, RGB or RGBA), got mode {img.mode}")
            pixels = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise MapError(f"{path}: cannot read the map image ({err})") from None
    if pixels.size == 0:
        raise MapError(f"{path}: map image is empty")
    return pixels


def _require(meta: dict, key: str, kind: type, path: Path) -> Any:
    if key not in meta:
        raise MapError(f"{path}: missing required key '{key}'")
    value = meta[key]
    if not isinstance(value, kind):
        raise MapError(f"{path}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _number(meta: dict, key: str, path: Path, default: float | None = None) -> float:
    if key not in meta:
        if default is None:
            raise MapError(f"{path}: missing required key '{key}'")
        return default
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MapError(f"{path}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _float_list(value: Any, length: int, key: str, path: Path) -> list[float]:
    if value is None:
        raise MapError(f"{path}: missing required key '{key}'")
    ok = isinstance(value, (list, tuple)) and len(value) == length
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(float(v)) for v in value):
        raise MapError(f"{path}: '{key}' must be a list of {length} finite numbers, got {value!r}")
    return [float(v) for v in value]


def _spawn_points(value: Any, path: Path) -> dict[str, np.ndarray]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MapError(f"{path}: 'spawn_points' must map names to poses [[x, y, yaw], ...], got {value!r}")
    spawns = {}
    for name, poses in value.items():
        if isinstance(poses, list) and poses and not isinstance(poses[0], list):
            poses = [poses]
        if not isinstance(poses, list) or not poses:
            raise MapError(f"{path}: spawn point '{name}' must be a list of [x, y, yaw] poses, got {poses!r}")
        rows = [_float_list(p, 3, f"spawn_points.{name}", path) for p in poses]
        array = np.array(rows, dtype=np.float64)
        array.setflags(write=False)
        spawns[str(name)] = array
    return spawns


def _finish_line(value: Any, path: Path) -> np.ndarray | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise MapError(f"{path}: 'finish_line' must be [[x1, y1], [x2, y2]], got {value!r}")
    line = np.array([_float_list(p, 2, "finish_line", path) for p in value], dtype=np.float64)
    line.setflags(write=False)
    return line


def _optional_csv(path: Path, reader) -> Polyline | None:
    return reader(path) if path.is_file() else None


def _read_table(path: Path, min_columns: int) -> np.ndarray:
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    delimiter = ";" if rows and ";" in rows[0] else ","
    try:
        table = np.array([[float(v) for v in row.split(delimiter)] for row in rows], dtype=np.float64)
    except ValueError as err:
        raise MapError(f"{path}: every row must hold numbers separated by '{delimiter}' ({err})") from None
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < min_columns:
        raise MapError(f"{path}: expected at least 2 rows of {min_columns}+ columns, got shape {table.shape}")
    if not np.isfinite(table).all():
        raise MapError(f"{path}: contains non-finite values")
    return table


def _smooth_along(values: np.ndarray, closed: bool, half_width: int = 10) -> np.ndarray:
    """Per-vertex vectors (V, k) averaged over neighbouring vertices with a triangular kernel."""
    kernel = np.concatenate([np.arange(1, half_width + 2), np.arange(half_width, 0, -1)]).astype(np.float64)
    kernel /= kernel.sum()
    mode = "wrap" if closed else "nearest"
    return np.stack([ndimage.convolve1d(values[:, j], kernel, mode=mode) for j in range(values.shape[1])], axis=1)
