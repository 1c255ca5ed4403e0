"""Network pieces: the C51 projection by hand, noisy layers, the Rainbow head, the MLP builder's init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from multi_agent_rl.agents import networks
from multi_agent_rl.agents.networks import NoisyLinear, RainbowQNetwork, linear, mlp, project_distribution


def test_c51_projection_by_hand():
    support = torch.tensor([0.0, 1.0, 2.0])
    next_probs = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    rewards = torch.tensor([0.5, 1.0, 5.0, 0.25])
    discounts = torch.tensor([0.5, 0.0, 0.9, 1.0])
    projected = project_distribution(next_probs, rewards, discounts, support)
    expected = torch.tensor(
        [
            # atoms move to 0.5, 1.0, 1.5: half of 0.2 stays on atom 0, 0.3 lands on atom 1, 0.5 splits
            [0.1, 0.1 + 0.3 + 0.25, 0.25],
            # terminal (discount 0): all mass on the reward, 1.0, exactly an atom
            [0.0, 1.0, 0.0],
            # beyond v_max: everything clipped onto the last atom
            [0.0, 0.0, 1.0],
            # shift by 0.25: atoms to 0.25, 1.25, 2.0 (clipped)
            [0.2 * 0.75, 0.2 * 0.25 + 0.3 * 0.75, 0.3 * 0.25 + 0.5],
        ]
    )
    torch.testing.assert_close(projected, expected)
    torch.testing.assert_close(projected.sum(1), torch.ones(4))


def test_c51_projection_matches_the_triangular_kernel_form():
    """Bellemare et al.'s projection written as a sum over source atoms of the hat kernel
    p_j * max(0, 1 - |clip(r + d z_j) - z_i| / delta), on random rows including clipped ones."""
    generator = torch.Generator().manual_seed(0)
    support = torch.linspace(-10.0, 10.0, 51)
    next_probs = torch.softmax(torch.randn(256, 51, generator=generator), dim=1)
    rewards = torch.randn(256, generator=generator) * 8.0  # some rows shift beyond v_min or v_max
    discounts = torch.rand(256, generator=generator) * (torch.rand(256, generator=generator) > 0.1)
    shifted = (rewards[:, None] + discounts[:, None] * support).clamp(-10.0, 10.0)  # (B, j)
    hat = (1.0 - (shifted[:, :, None] - support).abs() / 0.4).clamp(min=0.0)  # (B, j, i)
    expected = (next_probs[:, :, None] * hat).sum(1)
    torch.testing.assert_close(project_distribution(next_probs, rewards, discounts, support), expected)


def test_c51_projection_keeps_the_mass_when_v_max_rounds_past_the_last_atom():
    # on this support (v_max - v_min) / delta rounds to slightly more than N - 1 in float32, so an atom
    # clipped to v_max sits a hair beyond the last index: its mass must stay on the last atom
    support = torch.linspace(0.46868558173902386, 28.65965164326541, 98)
    next_probs = torch.full((2, 98), 1.0 / 98)
    projected = project_distribution(next_probs, torch.tensor([100.0, 0.0]), torch.tensor([0.0, 0.0]), support)
    torch.testing.assert_close(projected[0], torch.eye(98)[-1])
    torch.testing.assert_close(projected[1], torch.eye(98)[0])  # and the clip at v_min onto the first atom


def test_noisy_linear_mean_path_and_fresh_noise():
    torch.manual_seed(0)
    layer = NoisyLinear(4, 3, sigma_init=0.5)
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer(x, noisy=False), x @ layer.weight_mu.T + layer.bias_mu)
    generator = torch.Generator().manual_seed(0)
    layer.reset_noise(generator)
    first = layer(x)
    layer.reset_noise(generator)
    assert not torch.allclose(first, layer(x))
    assert torch.allclose(layer.weight_sigma, torch.full((3, 4), 0.5 / math.sqrt(4)))


def test_rainbow_head_outputs_log_distributions_per_action():
    torch.manual_seed(0)
    network = RainbowQNetwork(obs_dim=4, num_actions=3, hidden_sizes=(16, 8), n_atoms=11)
    network.reset_noise(torch.Generator().manual_seed(0))
    log_probs = network(torch.randn(6, 4))
    assert log_probs.shape == (6, 3, 11)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(6, 3))


def test_mlp_orthogonal_init_gains():
    torch.manual_seed(0)
    net = mlp(8, (16, 16), 2, activation="tanh", ortho_init=True, out_gain=0.01)
    hidden, output = net[0].weight, net[-1].weight
    # an orthogonal (16 x 8) matrix scaled by g has W^T W = g^2 I
    torch.testing.assert_close(hidden.T @ hidden, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(output @ output.T, 1e-4 * torch.eye(2), atol=1e-7, rtol=0)
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in (net[0], net[2], net[4]))


def test_hand_written_densities_match_torch_distributions():
    from multi_agent_rl.agents.networks import categorical_log_prob_entropy, gaussian_log_prob_entropy

    torch.manual_seed(0)
    mean, actions = torch.randn(5, 2), torch.randn(5, 2)
    for std in (torch.rand(5, 2) + 0.1, torch.rand(2) + 0.1):  # state-dependent and state-independent
        reference = torch.distributions.Normal(mean, std)
        log_prob, entropy = gaussian_log_prob_entropy(actions, mean, std)
        torch.testing.assert_close(log_prob, reference.log_prob(actions).sum(-1))
        torch.testing.assert_close(entropy, reference.entropy().sum(-1).expand(5))
    logits, choices = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    reference = torch.distributions.Categorical(logits=logits)
    log_prob, entropy = categorical_log_prob_entropy(logits, choices)
    torch.testing.assert_close(log_prob, reference.log_prob(choices))
    torch.testing.assert_close(entropy, reference.entropy())


@pytest.mark.skipif(not networks.ONEDNN_AVAILABLE, reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("frozen", ["none", "weight", "input"])
def test_onednn_linear_matches_f_linear_values_and_gradients(frozen, monkeypatch):
    """Above the size threshold ``linear`` runs on oneDNN (forced on, whatever this machine's CPU maker);
    values and all three gradients equal F.linear's to float32 rounding, and a frozen operand gets no gradient
    (the TD3/SAC actor loss through frozen critics)."""
    monkeypatch.setattr(networks, "ONEDNN_LINEAR", True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 400, generator=gen)
    w = torch.randn(300, 400, generator=gen) / 20.0
    b = torch.randn(300, generator=gen)
    upstream = torch.randn(256, 300, generator=gen)
    grads = []
    for fn in (linear, F.linear):
        operands = ((x, "input"), (w, "weight"), (b, "bias"))
        xs, ws, bs = (t.clone().requires_grad_(name != frozen) for t, name in operands)
        out = fn(xs, ws, bs)
        (out * upstream).sum().backward()
        grads.append((out.detach(), xs.grad, ws.grad, bs.grad, out.grad_fn.name()))
    ours, ref = grads
    assert "OneDNN" in ours[4] and "OneDNN" not in ref[4]
    for got, want in zip(ours[:4], ref[:4], strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_linear_keeps_small_products_on_the_default_kernel(monkeypatch):
    monkeypatch.setattr(networks, "ONEDNN_LINEAR", networks.ONEDNN_AVAILABLE)
    x = torch.randn(64, 64, requires_grad=True)
    w = torch.randn(64, 64, requires_grad=True)
    assert 64 * 64 * 64 < networks.ONEDNN_MIN_MACS
    assert "OneDNN" not in linear(x, w).grad_fn.name()
    with torch.no_grad():  # inference on a large product: no autograd node, same values
        big_x, big_w = torch.randn(512, 256), torch.randn(256, 256)
        torch.testing.assert_close(linear(big_x, big_w), F.linear(big_x, big_w), rtol=1e-5, atol=1e-4)


def test_onednn_is_chosen_by_cpu_maker_and_vector_unit_unless_forced(tmp_path):
    """MKL (torch's default BLAS) runs AVX2 code on non-Intel CPUs: oneDNN by default only where it can use
    AVX-512 there (AMD Zen 4/5); on Intel CPUs and AVX2-only AMD (Zen 3) MKL is faster (scripts/bench_linear.py)."""
    avx512 = frozenset({"avx2", "avx512f", "avx512bw"})
    avx2 = frozenset({"avx2", "fma"})
    assert networks.onednn_wanted(None, "AuthenticAMD", avx512)
    assert networks.onednn_wanted("auto", "HygonGenuine", avx512)
    assert not networks.onednn_wanted(None, "AuthenticAMD", avx2)  # Zen 3: MKL ahead on every product
    assert not networks.onednn_wanted(None, "GenuineIntel", avx512)
    assert not networks.onednn_wanted("", "", frozenset())  # unknown CPU (e.g. no /proc/cpuinfo): torch's default
    assert networks.onednn_wanted("1", "GenuineIntel", avx2)
    assert not networks.onednn_wanted("0", "AuthenticAMD", avx512)
    with pytest.raises(ValueError, match="MULTI_AGENT_RL_ONEDNN must be 0, 1 or auto, got 'yes'"):
        networks.onednn_wanted("yes", "AuthenticAMD", avx512)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: fpu sse2 avx2 fma\n\n"
        "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma avx512f\n"
    )
    assert networks.cpu_info(str(cpuinfo)) == ("AuthenticAMD", frozenset({"fpu", "sse2", "avx2", "fma"}))
    assert networks.cpu_info(str(tmp_path / "missing")) == ("", frozenset())
