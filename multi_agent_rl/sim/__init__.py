"""The batched F1TENTH-style simulator: vehicle dynamics, LiDAR, collisions and maps (numpy + numba; no torch).

Entry points: ``load_map``, ``Simulator``, ``SimConfig``, ``LidarConfig``, ``VehicleParams`` with the presets
``F1TENTH`` and ``LIMO``.
"""

import os

# numba's OpenMP threads spin after every parallel region by default. When anything else wants the cores (the
# learner's torch threads, a second job on a laptop or a shared node), that spinning made parallel steps up to five
# times slower than serial ones on a 2-core machine; waiting passively costs about 3 % on a quiet machine. This
# has to be set before the OpenMP runtime starts; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from multi_agent_rl.sim.lidar import LidarConfig  # noqa: E402
from multi_agent_rl.sim.maps import MapError, Polyline, TrackMap, load_map  # noqa: E402
from multi_agent_rl.sim.simulator import SimConfig, Simulator, SimView  # noqa: E402
from multi_agent_rl.sim.vehicle import F1TENTH, LIMO, PRESETS, VehicleParams  # noqa: E402

__all__ = [
    "F1TENTH",
    "LIMO",
    "PRESETS",
    "LidarConfig",
    "MapError",
    "Polyline",
    "SimConfig",
    "SimView",
    "Simulator",
    "TrackMap",
    "VehicleParams",
    "load_map",
]
