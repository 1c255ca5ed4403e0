"""Top-down RGB frames: walls, cars with their heading, one car's LiDAR rays, a status line (Pillow only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from multi_agent_rl.envs.config import RenderConfig
from multi_agent_rl.sim.maps import TrackMap
from multi_agent_rl.sim.vehicle import VehicleParams

if TYPE_CHECKING:
    from multi_agent_rl.envs.batched import BatchedEnv

FREE_RGB = (236, 236, 236)
WALL_RGB = (45, 45, 52)
CAR_RGB = ((214, 48, 49), (9, 132, 227), (0, 148, 50), (253, 150, 68), (108, 92, 231), (232, 67, 147))
"""car_0 red (the gaplock attacker), car_1 blue (the defender), then green, orange, purple, pink."""
CONTACT_RGB = (255, 200, 0)
RAY_RGB = (46, 204, 113)
TEXT_RGB = (20, 20, 20)


class Renderer:
    """Draws frames of one copy of an environment.

    Args:
        track: the map.
        vehicle: for the car footprints.
        config: view, size, which car's rays.
        beam_angles_rad: (B,) the scanner's beam angles (for the rays).
        mount_offset_m: the scanner's position ahead of the car's reference point.
    """

    def __init__(
        self,
        track: TrackMap,
        vehicle: VehicleParams,
        config: RenderConfig,
        beam_angles_rad: np.ndarray,
        mount_offset_m: float = 0.0,
    ) -> None:
        self.track = track
        self.vehicle = vehicle
        self.config = config
        self.beam_angles = np.asarray(beam_angles_rad, dtype=np.float64)
        self.mount_offset_m = mount_offset_m
        free = track.free[::-1]  # image rows run downward
        rgb = np.empty((*free.shape, 3), dtype=np.uint8)
        rgb[free] = FREE_RGB
        rgb[~free] = WALL_RGB
        self._map_image = Image.fromarray(rgb)
        self._font = ImageFont.load_default()
        self._full_image: Image.Image | None = None  # the scaled map of the "full" view, made once

    @classmethod
    def for_env(cls, env: BatchedEnv) -> Renderer:
        """A renderer of ``env``'s map, cars and scanner, configured by its ``config.render``."""
        config = env.config
        return cls(env.track, env.vehicle, config.render, env.sim.beam_angles, config.sim.lidar.mount_offset_m)

    def _window(self, state: np.ndarray) -> tuple[float, float, float, tuple[int, int]]:
        """(u_left, v_top, output pixels per map pixel, output size) of the view, in map pixel units."""
        h, w = self.track.shape
        cfg = self.config
        if cfg.view == "full":
            k = cfg.max_pixels / max(h, w)
            return 0.0, float(h), k, (max(1, round(w * k)), max(1, round(h * k)))
        res = self.track.resolution_m
        car = int(np.clip(cfg.follow_car, 0, len(state) - 1))
        u, v = self.track.world_to_map(state[car, 0:2])
        half_w, half_h = 0.5 * cfg.window_m[0] / res, 0.5 * cfg.window_m[1] / res
        k = cfg.pixels_per_m * res
        return (
            u - half_w,
            v + half_h,
            k,
            (round(cfg.window_m[0] * cfg.pixels_per_m), round(cfg.window_m[1] * cfg.pixels_per_m)),
        )

    def frame(
        self,
        state: np.ndarray,
        scans: np.ndarray | None = None,
        collided: np.ndarray | None = None,
        text: str = "",
    ) -> np.ndarray:
        """An (H, W, 3) uint8 frame.

        Args:
            state: (N, 7) car states of the copy drawn.
            scans: (N, B) ranges (m) for the rays, or None.
            collided: (N,) contact flags (those cars get a yellow outline), or None.
            text: status line drawn at the top left.
        """
        u0, v_top, k, size = self._window(state)
        h, _ = self.track.shape
        # crop in image rows (row = h - v), then scale; PIL pads outside the map with black, painted as wall
        box = (u0, h - v_top, u0 + size[0] / k, h - v_top + size[1] / k)
        if self.config.view == "full":
            if self._full_image is None or self._full_image.size != size:
                self._full_image = self._map_image.resize(size, Image.Resampling.BOX)
            image = self._full_image.copy()
        else:
            image = self._map_image.transform(
                size, Image.Transform.EXTENT, box, Image.Resampling.NEAREST, fillcolor=WALL_RGB
            )
        draw = ImageDraw.Draw(image)

        def to_px(xy: np.ndarray) -> list[tuple[float, float]]:
            uv = self.track.world_to_map(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
            return [((u - u0) * k, (v_top - v) * k) for u, v in uv]

        lidar_car = self.config.lidar_car
        if (
            scans is not None
            and lidar_car is not None
            and 0 <= lidar_car < len(state)
            and scans.shape[-1] > 0
        ):
            self._draw_rays(draw, to_px, state[lidar_car], scans[lidar_car])
        hl, hw = 0.5 * self.vehicle.length, 0.5 * self.vehicle.width
        corners = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        width = max(1, round(0.03 * k / self.track.resolution_m))
        for n, car in enumerate(state):
            c, s = math.cos(car[4]), math.sin(car[4])
            rot = np.array([[c, -s], [s, c]])
            world = car[0:2] + corners @ rot.T
            outline = CONTACT_RGB if collided is not None and collided[n] else TEXT_RGB
            draw.polygon(to_px(world), fill=CAR_RGB[n % len(CAR_RGB)], outline=outline, width=width)
            nose = car[0:2] + np.array([c, s]) * (hl + 0.4 * hl)
            draw.line(to_px(np.stack([car[0:2], nose])), fill=TEXT_RGB, width=width)
        if text:
            left, top, right, bottom = draw.textbbox((4, 2), text, font=self._font)
            draw.rectangle((0, 0, right + 4, bottom + 2), fill=(255, 255, 255))
            draw.text((4, 2), text, fill=TEXT_RGB, font=self._font)
        return np.asarray(image, dtype=np.uint8)

    def _draw_rays(self, draw: ImageDraw.ImageDraw, to_px, car: np.ndarray, ranges: np.ndarray) -> None:
        count = min(self.config.lidar_rays, ranges.shape[-1])
        idx = np.round(np.linspace(0, ranges.shape[-1] - 1, count)).astype(np.int64)
        c, s = math.cos(car[4]), math.sin(car[4])
        sensor = car[0:2] + self.mount_offset_m * np.array([c, s])
        angles = car[4] + self.beam_angles[idx]
        ends = sensor + np.asarray(ranges[idx], dtype=np.float64)[:, None] * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1
        )
        start = to_px(sensor)[0]
        for end in to_px(ends):
            draw.line([start, end], fill=RAY_RGB, width=1)
