"""Gaplock: every outcome and every reward term on hand-built states of line_track (walls at y = +-1.3 m)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multi_agent_rl.sim.maps import load_map
from multi_agent_rl.tasks.gaplock import (
    CRASH_DETAILS,
    GAPLOCK_OUTCOMES,
    GAPLOCK_REWARD_PRESETS,
    GAPLOCK_TERMS,
    GaplockConfig,
    GaplockRewardConfig,
    crash_wall,
    potentials,
)
from tests.conftest import LINE_TRACK

TRACK = load_map(LINE_TRACK)
R = GaplockRewardConfig()  # the default preset
GAMMA = R.shaping_gamma


def car(x=0.0, y=0.0, yaw=0.0, v=0.5):
    """A 7-state [x, y, steer, v, yaw, yaw_rate, slip]."""
    return [x, y, 0.0, v, yaw, 0.0, 0.0]


def states(attacker, defender):
    return np.array([[attacker, defender]], dtype=np.float64)


def build(config: GaplockConfig | None = None):
    return (config or GaplockConfig()).build(TRACK, 1, 0.01)


def run(task, prev, new, collided=(False, False), contact=(False, False), step=1, reset=True):
    """Reset the task at ``prev`` (unless told not to), then evaluate the step prev -> new."""
    if reset:
        task.reset(np.array([0]), prev)
    return task.step(prev, new, np.array([collided]), np.array([contact]), np.array([step]))


def outcome(result):
    return GAPLOCK_OUTCOMES[int(result.outcome[0, 0])]


def term(result, name):
    return float(result.terms[name][0, 0])


# A calm mid-track state: defender on the centreline, attacker 1.3 m ahead and 0.45 m to its left.
DEF = car(0.0, 0.0)
ATT = car(1.3, 0.45)
CALM = states(ATT, DEF)


# ---------------------------------------------------------------------------------------------- outcomes


def test_calm_step_continues():
    r = run(build(), CALM, CALM.copy())
    assert outcome(r) == ""
    assert not r.terminated.any() and not r.truncated.any()
    for name in GAPLOCK_OUTCOMES[1:]:
        assert term(r, name) == 0.0


def test_target_finish_when_the_defender_crosses_the_finish_line():
    prev = states(car(46.0, 0.5), car(44.95, 0.0))
    new = states(car(46.0, 0.5), car(45.02, 0.0))
    r = run(build(), prev, new)
    assert outcome(r) == "target_finish"
    assert r.terminated.all() and not r.truncated.any()
    assert term(r, "target_finish") == R.target_finish


def test_finish_is_checked_before_crashes():
    prev = states(car(46.0, 0.5), car(44.95, 0.0))
    new = states(car(46.0, 0.5), car(45.02, 0.0))
    r = run(build(), prev, new, collided=(False, True))
    assert outcome(r) == "target_finish"


def test_mutual_collision_beats_a_wall_crash_and_is_never_success():
    r = run(build(), CALM, CALM.copy(), collided=(True, True), contact=(True, True))
    assert outcome(r) == "mutual_collision"
    assert term(r, "mutual_collision") == R.mutual_collision
    assert term(r, "target_crash") == 0.0
    assert r.terminated.all()


def test_target_crash_is_success():
    r = run(build(), CALM, CALM.copy(), collided=(False, True))
    assert outcome(r) == "target_crash"
    assert term(r, "target_crash") == R.target_crash
    assert r.terminated.all() and not r.truncated.any()


def test_both_hitting_walls_is_a_self_crash():
    r = run(build(), CALM, CALM.copy(), collided=(True, True))
    assert outcome(r) == "self_crash"
    assert term(r, "self_crash") == R.self_crash


def test_self_crash():
    r = run(build(), CALM, CALM.copy(), collided=(True, False))
    assert outcome(r) == "self_crash"
    assert r.terminated.all()


def test_idle_stop_after_idle_steps_is_a_truncation():
    task = build(GaplockConfig(idle_steps=5, idle_speed_mps=0.12))
    slow = states(car(1.3, 0.45, v=0.1), DEF)
    task.reset(np.array([0]), slow)
    for k in range(1, 5):
        assert outcome(run(task, slow, slow, step=k, reset=False)) == ""
    r = run(task, slow, slow, step=5, reset=False)
    assert outcome(r) == "idle_stop"
    assert r.truncated.all() and not r.terminated.any()
    assert term(r, "idle_stop") == R.idle_stop


def test_moving_again_resets_the_idle_counter():
    task = build(GaplockConfig(idle_steps=3))
    slow, moving = states(car(1.3, 0.45, v=-0.05), DEF), states(car(1.3, 0.45, v=-0.3), DEF)  # |v| counts
    task.reset(np.array([0]), slow)
    sequence = [slow, slow, moving, slow, slow]
    assert [outcome(run(task, s, s, step=k + 1, reset=False)) for k, s in enumerate(sequence)] == [""] * 5
    assert outcome(run(task, slow, slow, step=6, reset=False)) == "idle_stop"


def test_timeout_is_a_truncation():
    task = build(GaplockConfig(max_steps=100))
    assert outcome(run(task, CALM, CALM.copy(), step=99)) == ""
    r = run(task, CALM, CALM.copy(), step=100, reset=False)
    assert outcome(r) == "timeout"
    assert r.truncated.all() and not r.terminated.any()
    assert term(r, "timeout") == R.timeout


def test_outcomes_are_mutually_exclusive_in_design_order():
    assert GAPLOCK_OUTCOMES[1:] == (
        "target_finish",
        "mutual_collision",
        "target_crash",
        "self_crash",
        "idle_stop",
        "timeout",
    )
    r = run(
        build(GaplockConfig(max_steps=1, idle_steps=1)),
        states(car(v=0.0), DEF),
        states(car(v=0.0), DEF),
        collided=(False, True),
    )
    assert outcome(r) == "target_crash"  # idle and timeout hold too, but crashes come first
    assert sum(term(r, n) != 0.0 for n in GAPLOCK_OUTCOMES[1:]) == 1


# ---------------------------------------------------------------------------------------------- shaping terms


def pocket_of(defender, side=1.0):
    x, y, yaw = defender[0], defender[1], defender[4]
    return (
        x + R.pocket_ahead_m * math.cos(yaw) - side * R.pocket_lateral_m * math.sin(yaw),
        y + R.pocket_ahead_m * math.sin(yaw) + side * R.pocket_lateral_m * math.cos(yaw),
    )


def test_pocket_potential_is_full_in_the_pinch_pocket():
    px, py = pocket_of(DEF)
    s = states(car(px, py), DEF)
    r = run(build(), s, s.copy())
    assert term(r, "pocket") == pytest.approx((GAMMA - 1.0) * R.pocket)  # Phi = w on both sides of the step


def test_pocket_potential_rewards_approaching_the_pocket():
    px, py = pocket_of(DEF)
    far = states(car(px - 1.0, py), DEF)  # 1 m behind the pocket: phi = 1 - 1 / 2
    near = states(car(px, py), DEF)
    r = run(build(), far, near)
    assert term(r, "pocket") == pytest.approx(GAMMA * R.pocket - 0.5 * R.pocket)


def test_pocket_side_follows_the_attacker():
    px, py = pocket_of(DEF, side=-1.0)  # attacker on the defender's right: the pocket is on the right
    s = states(car(px, py), DEF)
    assert term(run(build(), s, s.copy()), "pocket") == pytest.approx((GAMMA - 1.0) * R.pocket)


def test_pocket_potential_is_zero_beyond_its_range():
    s = states(car(5.0, 0.45), DEF)
    assert term(run(build(), s, s.copy()), "pocket") == 0.0


@pytest.mark.parametrize("defender_y, clearance_m", [(0.0, 1.3), (-0.9, 0.4)])
def test_clearance_potential_measures_the_far_side_wall(defender_y, clearance_m):
    """Attacker on the defender's left: the far side is the right wall at y = -1.3 m."""
    dfd = car(0.0, defender_y)
    s = states(car(1.3, defender_y + 0.45), dfd)
    phi = 1.0 - clearance_m / R.clearance_range_m
    r = run(build(), s, s.copy())
    assert term(r, "clearance") == pytest.approx((GAMMA - 1.0) * R.clearance * phi, abs=2e-3)


def test_clearance_grows_as_the_defender_is_pushed_to_the_wall():
    before = states(car(1.3, 0.45), car(0.0, 0.0))
    after = states(car(1.3, 0.0), car(0.0, -0.45))
    r = run(build(), before, after)
    expected = GAMMA * R.clearance * (1 - 0.85 / 1.5) - R.clearance * (1 - 1.3 / 1.5)
    assert term(r, "clearance") == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("heading, phi", [(0.0, 1.0), (math.pi, 0.0), (math.pi / 2, 0.5)])
def test_bearing_potential(heading, phi):
    px, py = pocket_of(DEF)
    s = states(car(px - 1.0, py, yaw=heading), DEF)  # the pocket lies straight along +x from the attacker
    r = run(build(), s, s.copy())
    assert term(r, "bearing") == pytest.approx((GAMMA - 1.0) * R.bearing * phi, abs=1e-12)


def test_step_cost_every_step():
    assert term(run(build(), CALM, CALM.copy()), "step_cost") == R.step_cost


def test_terminal_step_zeroes_the_next_potential():
    px, py = pocket_of(DEF)
    s = states(car(px, py), DEF)
    r = run(build(), s, s.copy(), collided=(False, True))
    assert term(r, "pocket") == pytest.approx(-R.pocket)  # gamma * 0 - Phi(s)


def test_truncating_step_keeps_the_next_potential():
    px, py = pocket_of(DEF)
    s = states(car(px, py), DEF)
    r = run(build(GaplockConfig(max_steps=1)), s, s.copy())
    assert outcome(r) == "timeout"
    assert term(r, "pocket") == pytest.approx((GAMMA - 1.0) * R.pocket)


def test_shaping_telescopes_over_an_episode():
    """With gamma = 1 the shaping collected along any path is Phi(s_T) - Phi(s_0), whatever happens
    between."""
    cfg = GaplockConfig().with_reward(shaping_gamma=1.0)
    task = build(cfg)
    rng = np.random.default_rng(0)
    path = [
        states(car(rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(-3, 3)), car(0.0, rng.uniform(-1, 1)))
        for _ in range(20)
    ]
    task.reset(np.array([0]), path[0])
    total = 0.0
    for k in range(1, len(path)):
        r = run(task, path[k - 1], path[k], step=k, reset=False)
        total += sum(term(r, n) for n in ("pocket", "clearance", "bearing"))

    def phi(s):
        p = potentials(
            s[0, 0],
            s[0, 1],
            *TRACK.kernel_args(),
            R.pocket_ahead_m,
            R.pocket_lateral_m,
            R.pocket_range_m,
            R.clearance_range_m,
        )
        return R.pocket * p[0] + R.clearance * p[1] + R.bearing * p[2]

    assert total == pytest.approx(phi(path[-1]) - phi(path[0]))


def test_wall_ahead_potential_rises_as_the_defender_turns_toward_a_wall():
    """wall_ahead: 0 while the defender faces down the corridor, 1 - r / range when it faces a wall r away;
    potential-based (telescopes with gamma = 1) and zeroed on a terminating step."""
    cfg = GaplockConfig(reward_preset="wall_ahead").with_reward(shaping_gamma=1.0)
    w, rng_m = cfg.rewards.wall_ahead, cfg.rewards.wall_ahead_range_m
    assert w > 0
    task = build(cfg)
    att = car(-1.0, 0.8)
    along = states(att, car(0.0, 0.0, yaw=0.0))
    across = states(att, car(0.0, 0.0, yaw=-0.5 * math.pi))  # facing the right wall, 1.3 m away
    task.reset(np.array([0]), along)
    r = run(task, along, across, reset=False)
    assert term(r, "wall_ahead") == pytest.approx(w * (1.0 - 1.3 / rng_m), abs=0.05)
    r = run(task, across, across.copy(), collided=(False, True), reset=False)  # terminates: Phi(s') = 0
    assert outcome(r) == "target_crash"
    assert term(r, "wall_ahead") == pytest.approx(-w * (1.0 - 1.3 / rng_m), abs=0.05)


# ---------------------------------------------------------------------------------------------- sums and
# roles


def test_reward_is_the_sum_of_the_terms_and_the_defender_gets_zero():
    px, py = pocket_of(DEF)
    r = run(
        build(),
        states(car(px - 0.7, py + 0.1, yaw=0.3), DEF),
        states(car(px - 0.6, py, yaw=0.2), DEF),
        collided=(False, True),
    )
    assert r.rewards[0, 0] == pytest.approx(sum(term(r, n) for n in GAPLOCK_TERMS))
    assert r.rewards[0, 1] == 0.0


def test_zero_sum_defender():
    r = run(build(GaplockConfig(defender_reward="zero_sum")), CALM, CALM.copy(), collided=(False, True))
    assert r.rewards[0, 1] == pytest.approx(-r.rewards[0, 0])


def test_success_dominates_any_shaping():
    """Potentials lie in [0, w], so an episode's shaping is at most the sum of the weights; every preset's
    success pays more than that, and a config breaking the rule is refused."""
    for preset in GAPLOCK_REWARD_PRESETS.values():
        assert preset.target_crash > preset.pocket + preset.clearance + preset.bearing
    with pytest.raises(ValueError, match="target_crash"):
        GaplockRewardConfig(target_crash=1.0, pocket=1.0, clearance=0.5)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"reward_preset": "nope"}, "reward_preset"),
        ({"defender_reward": "half"}, "defender_reward"),
        ({"attacker_start_speeds_mps": ()}, "attacker_start_speeds_mps"),
        ({"idle_steps": 0}, "idle_steps"),
    ],
)
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        GaplockConfig(**kwargs)


def test_positive_step_cost_is_refused():
    with pytest.raises(ValueError, match="step_cost"):
        GaplockRewardConfig(step_cost=0.01)


# ---------------------------------------------------------------------------------------------- starts


def test_starts_come_from_the_spawn_pairs_and_the_speed_set():
    cfg = GaplockConfig(attacker_start_speeds_mps=(0.2, 0.6))
    task = build(cfg)
    start = task.sample_start(np.random.default_rng(0), 200)
    assert set(start.spawn) == {n for n in TRACK.spawn_points if n.startswith("gaplock_")}
    for poses, name in zip(start.poses, start.spawn, strict=True):
        np.testing.assert_array_equal(poses, TRACK.spawn(name))
    assert set(np.unique(start.speeds[:, 0])) == {0.2, 0.6}
    assert np.all(start.speeds[:, 1] == 0.0)


def test_missing_spawn_pairs_are_explained():
    with pytest.raises(ValueError, match="spawn_prefix"):
        build(GaplockConfig(spawn_prefix="nothing_"))


# ---------------------------------------------------------------------------------------------- which wall


@pytest.mark.parametrize(
    ("pose", "wall", "reversed_"),
    [
        ((-30.0, 1.10, 0.8), "side_wall", False),  # pushed into the left wall, still heading down the track
        ((-30.0, -1.10, -0.8), "side_wall", False),
        ((10.0, 1.15, 2.5), "side_wall", True),  # a side wall while facing back
        ((-49.80, 0.3, math.pi), "end_wall", True),  # turned around and crept into the start wall
        ((-49.80, -1.0, -2.8), "end_wall", True),  # the start wall's corner counts as the end wall
        ((-49.25, 0.0, 0.0), "end_wall", False),  # reversed into the start wall, nose still forward
        ((49.80, 0.0, 0.0), "end_wall", False),  # the far end wall
        ((-48.5, 1.1, 1.0), "side_wall", False),  # more than 1 m from the end: a side wall
    ],
)
def test_crash_wall_tells_side_from_end_walls(pose, wall, reversed_):
    assert crash_wall(TRACK, np.array(pose)) == (wall, reversed_)


def test_outcome_details_label_only_successes():
    task = build()
    turned = np.array([car(-43.0, 0.0), car(-49.8, 0.2, yaw=math.pi)])
    assert task.outcome_details("target_crash", turned) == ("end_wall", "defender_reversed")
    pushed = np.array([car(-29.0, 0.5), car(-30.0, -1.1, yaw=-0.7)])
    assert task.outcome_details("target_crash", pushed) == ("side_wall",)
    for name in GAPLOCK_OUTCOMES:
        if name != "target_crash":
            assert task.outcome_details(name, turned) == ()
    assert set(task.detail_names) == {"target_crash"}
    assert task.detail_names["target_crash"] == CRASH_DETAILS


def test_spawn_offset_shifts_every_start_pair():
    base = build().sample_start(np.random.default_rng(0), 20)
    shifted = build(GaplockConfig(spawn_offset_m=(45.0, 0.2))).sample_start(np.random.default_rng(0), 20)
    assert shifted.spawn == base.spawn
    np.testing.assert_allclose(shifted.poses[..., 0], base.poses[..., 0] + 45.0)
    np.testing.assert_allclose(shifted.poses[..., 1], base.poses[..., 1] + 0.2)
    np.testing.assert_array_equal(shifted.poses[..., 2], base.poses[..., 2])


@pytest.mark.parametrize("offset", [(0.0, 0.6), (-6.0, 0.0), (200.0, 0.0)])
def test_spawn_offset_into_a_wall_is_refused(offset):
    with pytest.raises(ValueError, match="spawn_offset_m"):
        build(GaplockConfig(spawn_offset_m=offset))
