"""Single-track vehicle dynamics with tyre slip (CommonRoad ST model, as in the F1TENTH gym), numba-compiled.

State (7): x (m), y (m), steering angle delta (rad), speed v (m/s), yaw psi (rad), yaw rate (rad/s), slip beta (rad).
Inputs (2): steering velocity (rad/s), longitudinal acceleration (m/s^2).

Below |v| < 0.5 m/s the kinematic single-track model is used (slip derivative 0), because the tyre model divides
by v. Inputs are held constant over a step (zero-order hold); the input constraints are applied at every
integrator stage, as in the gym.

Every function here is pure: states are tuples of floats and parameters a ``VehicleArgs`` tuple.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from multi_agent_rl.sim.vehicle import VehicleParams

GRAVITY = 9.81
KINEMATIC_SPEED_MPS = 0.5
"""Below this |speed| the kinematic model replaces the tyre model."""

STATE_SIZE = 7
X, Y, STEER, SPEED, YAW, YAW_RATE, SLIP = range(STATE_SIZE)


@njit(cache=True, inline="always")
def steering_constraint(delta, steer_velocity, p):
    """Steering velocity (rad/s) clipped to its limits and zeroed when the wheel sits at a steering stop."""
    if (delta <= p.s_min and steer_velocity <= 0.0) or (delta >= p.s_max and steer_velocity >= 0.0):
        return 0.0
    if steer_velocity <= p.sv_min:
        return p.sv_min
    if steer_velocity >= p.sv_max:
        return p.sv_max
    return steer_velocity


@njit(cache=True, inline="always")
def acceleration_constraint(v, accel, p):
    """Acceleration (m/s^2) limited by the engine (a_max, power-limited above v_switch) and the speed limits."""
    pos_limit = p.a_max * p.v_switch / v if v > p.v_switch else p.a_max
    if (v <= p.v_min and accel <= 0.0) or (v >= p.v_max and accel >= 0.0):
        return 0.0
    if accel <= -p.a_max:
        return -p.a_max
    if accel >= pos_limit:
        return pos_limit
    return accel


@njit(cache=True)
def derivative(s, steer_velocity, accel, p):
    """Time derivative of the 7-state tuple ``s`` under held inputs (constraints applied here)."""
    delta, v, psi, psi_dot, beta = s[2], s[3], s[4], s[5], s[6]
    sv = steering_constraint(delta, steer_velocity, p)
    a = acceleration_constraint(v, accel, p)
    lwb = p.lf + p.lr
    if abs(v) < KINEMATIC_SPEED_MPS:
        # Kinematic single-track model; the yaw-rate state follows d/dt (v tan(delta) / lwb).
        tan_d = math.tan(delta)
        cos_d = math.cos(delta)
        return (
            v * math.cos(psi),
            v * math.sin(psi),
            sv,
            a,
            v / lwb * tan_d,
            a / lwb * tan_d + v / (lwb * cos_d * cos_d) * sv,
            0.0,
        )
    g = GRAVITY
    front_load = g * p.lr - a * p.h  # normal-load terms with longitudinal load transfer
    rear_load = g * p.lf + a * p.h
    k = p.mu * p.m / (p.I * lwb)
    yaw_acc = (
        -k / v * (p.lf * p.lf * p.C_Sf * front_load + p.lr * p.lr * p.C_Sr * rear_load) * psi_dot
        + k * (p.lr * p.C_Sr * rear_load - p.lf * p.C_Sf * front_load) * beta
        + k * p.lf * p.C_Sf * front_load * delta
    )
    q = p.mu / (v * lwb)
    slip_rate = (
        (q / v * (p.C_Sr * rear_load * p.lr - p.C_Sf * front_load * p.lf) - 1.0) * psi_dot
        - q * (p.C_Sr * rear_load + p.C_Sf * front_load) * beta
        + q * p.C_Sf * front_load * delta
    )
    return (
        v * math.cos(beta + psi),
        v * math.sin(beta + psi),
        sv,
        a,
        psi_dot,
        yaw_acc,
        slip_rate,
    )


@njit(cache=True, inline="always")
def _axpy(s, k, h):
    return (
        s[0] + h * k[0],
        s[1] + h * k[1],
        s[2] + h * k[2],
        s[3] + h * k[3],
        s[4] + h * k[4],
        s[5] + h * k[5],
        s[6] + h * k[6],
    )


@njit(cache=True)
def integrate(s, steer_velocity, accel, p, dt, use_rk4):
    """One step of length ``dt`` (s) with RK4 (``use_rk4``) or explicit Euler; returns the new 7-tuple."""
    k1 = derivative(s, steer_velocity, accel, p)
    if not use_rk4:
        return _axpy(s, k1, dt)
    k2 = derivative(_axpy(s, k1, 0.5 * dt), steer_velocity, accel, p)
    k3 = derivative(_axpy(s, k2, 0.5 * dt), steer_velocity, accel, p)
    k4 = derivative(_axpy(s, k3, dt), steer_velocity, accel, p)
    h = dt / 6.0
    return (
        s[0] + h * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
        s[1] + h * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
        s[2] + h * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2]),
        s[3] + h * (k1[3] + 2.0 * k2[3] + 2.0 * k3[3] + k4[3]),
        s[4] + h * (k1[4] + 2.0 * k2[4] + 2.0 * k3[4] + k4[4]),
        s[5] + h * (k1[5] + 2.0 * k2[5] + 2.0 * k3[5] + k4[5]),
        s[6] + h * (k1[6] + 2.0 * k2[6] + 2.0 * k3[6] + k4[6]),
    )


@njit(cache=True, inline="always")
def wrap_angle(a):
    """Angle wrapped to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True)
def sanitize(new, old):
    """The new state with yaw wrapped, or the old one if the step produced a non-finite number."""
    for i in range(7):
        if not math.isfinite(new[i]):
            return old
    return (new[0], new[1], new[2], new[3], wrap_angle(new[4]), new[5], new[6])


@njit(cache=True, inline="always")
def steering_velocity_command(delta_cmd, delta, gain_per_s, bang_bang, p):
    """Steering servo: proportional sv = gain * (delta_cmd - delta), or the gym's bang-bang +-sv_max.

    The command is first clipped to the steering range, so the proportional servo never aims past a stop.
    """
    delta_cmd = min(max(delta_cmd, p.s_min), p.s_max)
    if bang_bang:
        diff = delta_cmd - delta
        if abs(diff) > 1e-4:
            return p.sv_max if diff > 0.0 else -p.sv_max
        return 0.0
    sv = gain_per_s * (delta_cmd - delta)
    return min(max(sv, -p.sv_max), p.sv_max)


@njit(cache=True, inline="always")
def clamp_steering(s, p):
    """The state with its steering angle held inside the mechanical stops (a bang-bang step can overshoot)."""
    delta = min(max(s[2], p.s_min), p.s_max)
    return (s[0], s[1], delta, s[3], s[4], s[5], s[6])


@njit(cache=True, inline="always")
def acceleration_command(v_cmd, v, p):
    """Speed controller: accel = kp * (v_cmd - v) with the gain picked by regime (F1TENTH gym's rule)."""
    diff = v_cmd - v
    if v > 0.0:
        kp = 10.0 * p.a_max / p.v_max if diff > 0.0 else 10.0 * p.a_max / (-p.v_min)
    else:
        kp = 2.0 * p.a_max / p.v_max if diff > 0.0 else 2.0 * p.a_max / (-p.v_min)
    return kp * diff


@njit(cache=True)
def _integrate_batch(states, inputs, p, dt, use_rk4, steps):
    out = states.copy()
    for i in range(states.shape[0]):
        s = (out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4], out[i, 5], out[i, 6])
        for _ in range(steps):
            s = sanitize(integrate(s, inputs[i, 0], inputs[i, 1], p, dt, use_rk4), s)
        for j in range(7):
            out[i, j] = s[j]
    return out


def integrate_states(
    states: np.ndarray,
    inputs: np.ndarray,
    params: VehicleParams,
    timestep_s: float,
    *,
    integrator: str = "rk4",
    steps: int = 1,
) -> np.ndarray:
    """Integrate raw inputs without the controller or any map (for tests and analysis).

    Args:
        states: (K, 7) initial states.
        inputs: (K, 2) held [steering velocity rad/s, acceleration m/s^2] (constraints still apply).
        params: the vehicle.
        timestep_s: step length (s).
        integrator: "rk4" or "euler".
        steps: how many steps to take.
    Returns:
        (K, 7) states after ``steps`` steps.
    """
    if integrator not in ("rk4", "euler"):
        raise ValueError(f"integrator must be 'rk4' or 'euler', got {integrator!r}")
    states = np.ascontiguousarray(states, dtype=np.float64).reshape(-1, STATE_SIZE)
    inputs = np.ascontiguousarray(inputs, dtype=np.float64).reshape(-1, 2)
    return _integrate_batch(states, inputs, params.as_args(), float(timestep_s), integrator == "rk4", int(steps))
