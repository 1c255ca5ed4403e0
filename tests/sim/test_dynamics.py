"""Vehicle dynamics against closed forms, a published steady-state result, symmetry and a fine-step reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from multi_agent_rl.sim.dynamics import derivative, integrate_states, sanitize, wrap_angle
from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.simulator import SimConfig, Simulator
from multi_agent_rl.sim.vehicle import F1TENTH, LIMO

NO_LIDAR = LidarConfig(num_beams=0)


def drive_straight(track, vehicle, target_mps, steps, speed0=0.0):
    """Speeds and x positions of one car driven straight along +x under the speed controller."""
    sim = Simulator(track, 1, 1, vehicle=vehicle, config=SimConfig(lidar=NO_LIDAR))
    sim.reset(np.array([[-45.0, 0.0, 0.0]]), speeds=np.array([[speed0]]))
    action = np.array([[[0.0, target_mps]]])
    v, x = [], []
    for _ in range(steps):
        state = sim.step(action).state[0, 0]
        v.append(state[3])
        x.append(state[0] + 45.0)
    return np.array(v), np.array(x)


def test_straight_acceleration_matches_closed_form(line_track):
    """From rest toward 20 m/s: a_max until v_switch, then power-limited v dv/dt = a_max v_switch."""
    p = F1TENTH
    dt = 0.01
    v, x = drive_straight(line_track, p, 20.0, 150)
    t = dt * np.arange(1, 151)
    t_switch = p.v_switch / p.a_max
    x_switch = 0.5 * p.a_max * t_switch**2
    tau = t - t_switch
    power = p.v_switch**2 + 2.0 * p.a_max * p.v_switch * np.maximum(tau, 0.0)
    v_ref = np.where(t <= t_switch, p.a_max * t, np.sqrt(power))
    x_ref = np.where(
        t <= t_switch,
        0.5 * p.a_max * t**2,
        x_switch + (power**1.5 - p.v_switch**3) / (3.0 * p.a_max * p.v_switch),
    )
    # Saturated acceleration is exact; the kink at v_switch inside one RK4 step costs O(dt^2) there.
    np.testing.assert_allclose(v, v_ref, rtol=2e-3, atol=1e-9)
    np.testing.assert_allclose(x, x_ref, rtol=2e-3, atol=1e-4)
    assert v[-1] == pytest.approx(12.46, abs=0.01)  # hand value: sqrt(7.319^2 + 2*9.51*7.319*(1.5 - 0.7696))


def test_speed_controller_converges_geometrically(line_track):
    """Unsaturated proportional phase: v_k = v_cmd - (v_cmd - v_0) (1 - kp dt)^k with kp = 10 a_max / v_max."""
    p = LIMO
    kp = 10.0 * p.a_max / p.v_max  # 20 per second
    v, _ = drive_straight(line_track, p, 0.9, 40, speed0=0.85)
    k = np.arange(1, 41)
    np.testing.assert_allclose(v, 0.9 - 0.05 * (1.0 - kp * 0.01) ** k, rtol=0, atol=1e-12)


def circle_radius(xy: np.ndarray) -> float:
    """Least-squares circle fit (Kasa): x^2 + y^2 = 2 a x + 2 b y + c."""
    a = np.column_stack([2 * xy[:, 0], 2 * xy[:, 1], np.ones(len(xy))])
    b = (xy**2).sum(axis=1)
    cx, cy, c = np.linalg.lstsq(a, b, rcond=None)[0]
    return math.sqrt(c + cx**2 + cy**2)


def test_kinematic_turning_radius(line_track_wide):
    """Below 0.5 m/s the kinematic model drives a circle of radius wheelbase / tan(delta)."""
    sim = Simulator(line_track_wide, 1, 1, vehicle=F1TENTH, config=SimConfig(lidar=NO_LIDAR))
    sim.reset(np.array([[0.0, -1.0, 0.0]]))
    delta = 0.3
    xy = []
    for k in range(2500):
        state = sim.step(np.array([[[delta, 0.3]]])).state[0, 0]
        if k >= 300:
            xy.append(state[:2].copy())
    assert not sim.step(np.array([[[delta, 0.3]]])).collided.any()
    assert circle_radius(np.array(xy)) == pytest.approx(F1TENTH.wheelbase / math.tan(delta), rel=1e-4)


@pytest.mark.parametrize("speed", [2.0, 4.0, 6.0])
def test_dynamic_turning_radius_matches_understeer_gradient(speed):
    """Linear single-track model in steady state: delta = L / R + K_us * v^2 / R (Rajamani, Vehicle Dynamics and
    Control, §3.3), with K_us = (1/C_Sf - 1/C_Sr) / (mu g) for the load-normalised stiffnesses used here."""
    p = F1TENTH
    delta = 0.05
    k_us = (1.0 / p.C_Sf - 1.0 / p.C_Sr) / (p.mu * 9.81)
    expected = (p.wheelbase + k_us * speed**2) / delta
    state = np.array([[0.0, 0.0, delta, speed, 0.0, 0.0, 0.0]])
    state = integrate_states(state, np.zeros((1, 2)), p, 0.001, steps=2000)  # let the transient die out
    xy = []
    for _ in range(400):
        state = integrate_states(state, np.zeros((1, 2)), p, 0.001, steps=10)
        xy.append(state[0, :2])
    assert circle_radius(np.array(xy)) == pytest.approx(expected, rel=1e-3)
    assert state[0, 3] == pytest.approx(speed)  # no drag in the model


def test_mirrored_steering_mirrors_the_path():
    rng = np.random.default_rng(0)
    steer_rates = rng.uniform(-3.0, 3.0, size=300)
    left = np.array([[0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]])
    right = left.copy()
    for sv in steer_rates:
        left = integrate_states(left, np.array([[sv, 0.5]]), F1TENTH, 0.01)
        right = integrate_states(right, np.array([[-sv, 0.5]]), F1TENTH, 0.01)
    mirror = np.array([1, -1, -1, 1, -1, -1, -1])
    assert abs(left[0, 1]) > 0.1  # the path actually turned
    np.testing.assert_allclose(left[0], mirror * right[0], atol=1e-9)


def reference_solution(state0, inputs, seconds):
    """DOP853 at tight tolerances on the same right-hand side."""
    args = F1TENTH.as_args()

    def rhs(_t, y):
        return np.array(derivative(tuple(y), inputs[0], inputs[1], args))

    sol = solve_ivp(rhs, (0.0, seconds), state0, method="DOP853", rtol=1e-11, atol=1e-12)
    return sol.y[:, -1]


def test_rk4_matches_fine_reference_and_beats_euler():
    state0 = np.array([0.0, 0.0, 0.0, 3.0, 0.2, 0.0, 0.0])
    inputs = np.array([0.3, 1.0])  # steering velocity (rad/s), acceleration (m/s^2); no limit is reached
    ref = reference_solution(state0, inputs, 1.0)
    rk4 = integrate_states(state0[None], inputs[None], F1TENTH, 0.01, integrator="rk4", steps=100)[0]
    euler = integrate_states(state0[None], inputs[None], F1TENTH, 0.01, integrator="euler", steps=100)[0]
    rk4_err = np.abs(rk4 - ref).max()
    euler_err = np.abs(euler - ref).max()
    assert rk4_err < 1e-6
    assert euler_err > 100 * rk4_err
    assert euler_err < 0.05


def test_limits_hold_under_random_commands(line_track_wide):
    rng = np.random.default_rng(1)
    sim = Simulator(line_track_wide, 4, 1, vehicle=F1TENTH, config=SimConfig(lidar=NO_LIDAR))
    sim.reset(np.array([[[-40.0, 0.0, 0.0]], [[-20.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], [[20.0, 0.0, 0.0]]]))
    prev = sim.state.copy()
    p, dt = F1TENTH, 0.01
    for _ in range(1500):
        actions = np.stack([rng.uniform(-1.0, 1.0, (4, 1)), rng.uniform(-8.0, 25.0, (4, 1))], axis=-1)
        state = sim.step(actions).state
        assert (state[..., 2] >= p.s_min - 1e-12).all() and (state[..., 2] <= p.s_max + 1e-12).all()
        assert (state[..., 3] >= p.v_min - 1e-9).all() and (state[..., 3] <= p.v_max + 1e-9).all()
        assert (np.abs(state[..., 2] - prev[..., 2]) <= p.sv_max * dt + 1e-12).all()
        assert (state[..., 3] - prev[..., 3] <= p.a_max * dt + 1e-9).all()
        assert (state[..., 4] >= -math.pi).all() and (state[..., 4] < math.pi).all()
        prev = state.copy()


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_steering_delay_in_physics_steps(line_track, delay):
    config = SimConfig(lidar=NO_LIDAR, steer_delay_steps=delay)
    sim = Simulator(line_track, 1, 1, vehicle=F1TENTH, config=config)
    sim.reset(np.array([[-45.0, 0.0, 0.0]]), speeds=np.array([[1.0]]))
    steer = [sim.step(np.array([[[0.2, 1.0]]])).state[0, 0, 2] for _ in range(delay + 2)]
    assert steer[:delay] == [0.0] * delay
    # Proportional servo with gain * dt = 1, rate-limited to sv_max * dt = 0.032 rad per step.
    assert steer[delay] == pytest.approx(F1TENTH.sv_max * 0.01)


def test_bang_bang_steering_moves_at_full_rate(line_track):
    config = SimConfig(lidar=NO_LIDAR, steer_mode="bang_bang", steer_delay_steps=0)
    sim = Simulator(line_track, 1, 1, vehicle=F1TENTH, config=config)
    sim.reset(np.array([[-45.0, 0.0, 0.0]]))
    first = sim.step(np.array([[[-0.001, 0.0]]])).state[0, 0, 2]
    assert first == pytest.approx(-F1TENTH.sv_max * 0.01)


def test_action_repeat_equals_repeated_steps(line_track):
    one = Simulator(line_track, 1, 1, config=SimConfig(lidar=NO_LIDAR))
    three = Simulator(line_track, 1, 1, config=SimConfig(lidar=NO_LIDAR, action_repeat=3))
    for sim in (one, three):
        sim.reset(np.array([[-45.0, 0.0, 0.0]]))
    action = np.array([[[0.1, 3.0]]])
    for _ in range(3):
        one.step(action)
    np.testing.assert_array_equal(three.step(action).state, one.state)


def test_sanitize_reverts_non_finite_and_wraps_yaw():
    old = (1.0, 2.0, 0.1, 3.0, 0.5, 0.0, 0.0)
    assert sanitize((np.nan, 2.0, 0.1, 3.0, 0.5, 0.0, 0.0), old) == old
    assert sanitize((1.0, 2.0, 0.1, np.inf, 0.5, 0.0, 0.0), old) == old
    wrapped = sanitize((1.0, 2.0, 0.1, 3.0, 3.5 * math.pi, 0.0, 0.0), old)
    assert wrapped[4] == pytest.approx(-0.5 * math.pi)
    assert wrap_angle(math.pi) == pytest.approx(-math.pi)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="integrator"):
        SimConfig(integrator="rk45")
    with pytest.raises(ValueError, match="steer_gain_per_s"):
        SimConfig(steer_gain_per_s=300.0)
    with pytest.raises(ValueError, match="v_max"):
        F1TENTH.with_overrides(v_max=-1.0)
    with pytest.raises(ValueError, match="unknown vehicle parameter"):
        F1TENTH.with_overrides(top_speed=3.0)
