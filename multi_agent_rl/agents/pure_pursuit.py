"""Pure pursuit path follower (numpy only): steer the rear axle onto a point one lookahead distance down a path.

Geometry (Coulter 1992): with the target point at distance l_d from the rear axle and at angle alpha from the
heading, the arc through it has curvature 2 sin(alpha) / l_d, so the steering angle is
delta = atan(2 L sin(alpha) / l_d) for wheelbase L. The lookahead grows with speed, l_d = base + gain * v.
The speed command is the path's own speed profile at the car's position, scaled and capped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multi_agent_rl.sim.maps import Polyline
from multi_agent_rl.sim.vehicle import VehicleParams


@dataclass(frozen=True)
class PurePursuitConfig:
    """Attributes:
    lookahead_base_m: lookahead distance at standstill (m).
    lookahead_gain_s: extra lookahead per m/s of speed (s). About 0.1 s keeps the loop (1-step steering delay,
        3.2 rad/s servo) stable at 8 m/s; much shorter lookaheads oscillate, longer ones cut corners.
    speed_scale: factor on the path's speed profile (-). Below 1 because the profiles of the shared racelines use
        the full 10 m/s^2 of lateral grip and a kinematic controller on a slipping car needs some headroom.
    max_speed_mps: cap on the commanded speed (m/s), also the speed where the path has no profile; the vehicle's
        v_max caps it too.
    """

    lookahead_base_m: float = 0.3
    lookahead_gain_s: float = 0.1
    speed_scale: float = 0.9
    max_speed_mps: float = 8.0

    def __post_init__(self) -> None:
        for name in ("lookahead_base_m", "speed_scale", "max_speed_mps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"pure pursuit '{name}' must be > 0, got {getattr(self, name)}")
        if self.lookahead_gain_s < 0:
            raise ValueError(f"pure pursuit 'lookahead_gain_s' must be >= 0, got {self.lookahead_gain_s}")


class PurePursuit:
    """Follows one path for any number of cars at once.

    Args:
        path: the line to follow (a map's raceline or centreline); its ``speeds`` feed the speed command.
        vehicle: gives the wheelbase, the rear-axle offset and the steering and speed limits.
        config: lookahead and speed settings.
    """

    def __init__(self, path: Polyline, vehicle: VehicleParams, config: PurePursuitConfig | None = None) -> None:
        self.path = path
        self.vehicle = vehicle
        self.config = config or PurePursuitConfig()
        # Vertex arc lengths; a closed path repeats its first vertex at s = length so interpolation wraps.
        vertices = path.points
        if path.closed:
            vertices = np.vstack([vertices, vertices[:1]])
        self._s = path.arc_length[: len(vertices)]
        self._xy = vertices
        speeds = path.speeds if path.speeds is not None else np.full(len(path.points), np.inf)
        self._v = np.append(speeds, speeds[0]) if path.closed else speeds

    def act(self, poses: np.ndarray, speeds: np.ndarray) -> np.ndarray:
        """Actions for cars at world poses.

        Args:
            poses: (K, 3) [x, y, yaw] of the reference point (m, rad).
            speeds: (K,) current speeds (m/s).
        Returns:
            (K, 2) [steering_angle_rad, target_speed_mps].
        """
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        speeds = np.asarray(speeds, dtype=np.float64).reshape(-1)
        cfg, car = self.config, self.vehicle
        cos_h, sin_h = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        rear = poses[:, :2] - car.lr * np.stack([cos_h, sin_h], axis=1)
        s_now, _, _ = self.path.project(rear)
        lookahead = cfg.lookahead_base_m + cfg.lookahead_gain_s * np.abs(speeds)
        target = self._point_at(s_now + lookahead)
        offset = target - rear
        # Target in the car frame: forward along the heading, left across it.
        forward = offset[:, 0] * cos_h + offset[:, 1] * sin_h
        left = -offset[:, 0] * sin_h + offset[:, 1] * cos_h
        distance2 = np.maximum(forward**2 + left**2, 1e-9)
        steer = np.arctan(2.0 * car.wheelbase * left / distance2)  # 2 L sin(alpha) / l_d, sin(alpha) = left / l_d
        steer = np.clip(steer, car.s_min, car.s_max)
        profile = np.interp(self._wrap(s_now), self._s, self._v)
        speed = np.minimum(cfg.speed_scale * profile, min(cfg.max_speed_mps, car.v_max))
        return np.stack([steer, speed], axis=1)

    def _wrap(self, s: np.ndarray) -> np.ndarray:
        if self.path.closed:
            return np.mod(s, self.path.length)
        return np.clip(s, 0.0, self.path.length)

    def _point_at(self, s: np.ndarray) -> np.ndarray:
        s = self._wrap(s)
        return np.stack([np.interp(s, self._s, self._xy[:, 0]), np.interp(s, self._s, self._xy[:, 1])], axis=1)
