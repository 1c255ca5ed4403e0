"""Network pieces shared by the agents: MLPs, policy heads, critics, Rainbow layers and an LSTM core.

Conventions: inputs are flat float32 tensors (B, obs_dim); action tensors are (B, act_dim) for continuous and
(B,) int64 for discrete actions. Log-probabilities and entropies are summed over action dimensions, shape
(B,). Densities are written out by hand instead of going through ``torch.distributions`` (whose argument
validation and object construction cost more than the math for the small networks RL uses).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: MappingProxyType[str, type[nn.Module]] = MappingProxyType({
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
})
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def activation_class(name: str) -> type[nn.Module]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with ``gain``, constant bias (a PPO implementation detail SB3 and CleanRL share)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


ACTIVATION_FUNCTIONS = MappingProxyType({
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu,
})
# in-place versions: safe on a linear layer's fresh output (its backward needs the input, not the output)
INPLACE_ACTIVATION_FUNCTIONS = MappingProxyType({
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "elu": F.elu_,
    "gelu": F.gelu,
    "leaky_relu": F.leaky_relu_,
})


# --- linear layers ------------------------------------------------------------------------------------------

# The float32 matrix products of the larger networks (TD3's 400x300 critics, SAC's 256x256) are most of an
# off-policy gradient step. Which CPU kernel runs them matters, and the answer depends on the CPU: torch's default
# BLAS is Intel's MKL, which takes its AVX-512 code paths on Intel CPUs only and runs AVX2 code on others, while
# oneDNN uses whatever vector unit it finds. On an AMD EPYC Zen 5 (AVX-512) MKL reached ~105 GFLOP/s on a
# 256x400 @ 400x300 product and oneDNN ~230; on an AMD EPYC Zen 3 (AVX2 only) MKL ~66 and oneDNN ~58, MKL ahead on
# every shape of scripts/bench_linear.py; on an Intel Xeon (Sapphire Rapids) both ~110-130 with MKL faster on
# mid-size products. So oneDNN is used by default only on non-Intel x86 CPUs with AVX-512 (ONEDNN_LINEAR below).
# oneDNN's per-call setup (~8 us) and the Python autograd function around it lose on small products: at
# 256x64x64 (2^20 multiply-adds) the three products take about as long on either kernel (bench_linear.py), and
# with the function's overhead on top PPO on CartPole, whose minibatches are that size, fell from 1.57x to 1.37x
# SB3's speed on the AMD machine (scripts/compare_sb3.py at commit c22d2cb); so only products of at least
# ONEDNN_MIN_MACS (2^22, e.g. 64x256x256: 50 vs 82 us forward on AMD) multiply-adds go to it.
# Both are exact float32 kernels (sums reordered: results agree to float32 rounding).
# MULTI_AGENT_RL_ONEDNN=1 forces oneDNN on, =0 forces torch's default kernel everywhere.
ONEDNN_MIN_MACS = 1 << 22


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """This machine's x86 vendor string (e.g. "GenuineIntel", "AuthenticAMD") and CPU feature flags (e.g.
    "avx2", "avx512f"), from the first processor of ``cpuinfo_path``; ("", frozenset()) when unknown."""
    vendor, flags = "", frozenset()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return vendor, flags


def onednn_wanted(setting: str | None, vendor: str, flags: frozenset[str] = frozenset()) -> bool:
    """Whether large products go to oneDNN: ``setting`` is MULTI_AGENT_RL_ONEDNN ("1" on, "0" off, unset or
    "auto": on for x86 CPUs of makers other than Intel that have AVX-512 (``"avx512f"`` in ``flags``), where MKL,
    torch's default, runs its AVX2 code and oneDNN is about twice as fast)."""
    if setting in ("0", "1"):
        return setting == "1"
    if setting not in (None, "", "auto"):
        raise ValueError(f"MULTI_AGENT_RL_ONEDNN must be 0, 1 or auto, got {setting!r}")
    return vendor not in ("", "GenuineIntel") and "avx512f" in flags


ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
ONEDNN_LINEAR = ONEDNN_AVAILABLE and onednn_wanted(os.environ.get("MULTI_AGENT_RL_ONEDNN"), *cpu_info())


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (B, I) @ weight (O, I)^T + bias (O,) by oneDNN; strided (transposed) operands are fine."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """``F.linear`` for 2-D float32 CPU tensors with the forward and both backward products on oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # e.g. the stride-0 gradient of a .mean()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _onednn_linear(grad, weight.t(), None)  # (B, O) @ (O, I)
        if ctx.needs_input_grad[1]:
            grad_w = _onednn_linear(grad.t(), x.t(), None)  # (O, B) @ (B, I)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: x (B, I), weight (O, I), bias (O,) -> (B, O); large float32 CPU products
    run on oneDNN (see ONEDNN_MIN_MACS), everything else on torch's default kernel."""
    if (
        ONEDNN_LINEAR
        and x.dim() == 2
        and x.shape[0] * weight.shape[0] * weight.shape[1] >= ONEDNN_MIN_MACS
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.device.type == "cpu"
    ):
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return _OneDNNLinear.apply(x, weight, bias)
        return _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class MLP(nn.Sequential):
    """Linear and activation layers, stored as an ``nn.Sequential`` (indexable, same state-dict keys) but run
    through a flat loop of :func:`linear` and activation calls: small RL networks spend more time in per-module
    call overhead than in arithmetic, and acting and training call them hundreds of thousands of times."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        # (linear layer or None, activation function or None) pairs, in order
        plan: list[tuple[nn.Linear | None, object]] = []
        for layer in self:
            if isinstance(layer, nn.Linear):
                plan.append((layer, None))
                continue
            name = next(key for key, cls in ACTIVATIONS.items() if isinstance(layer, cls))
            if plan and plan[-1][1] is None:
                plan[-1] = (plan[-1][0], INPLACE_ACTIVATION_FUNCTIONS[name])
            else:  # an activation first (a sliced MLP): never modify the caller's input in place
                plan.append((None, ACTIVATION_FUNCTIONS[name]))
        self._plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, activation in self._plan:
            if layer is not None:
                x = linear(x, layer.weight, layer.bias)
            if activation is not None:
                x = activation(x)
        return x


def mlp(
    in_dim: int,
    hidden_sizes: Sequence[int],
    out_dim: int | None = None,
    activation: str = "tanh",
    ortho_init: bool = False,
    out_gain: float = 1.0,
) -> MLP:
    """Linear+activation blocks of ``hidden_sizes``, then an optional linear output layer (no activation).

    With ``ortho_init`` hidden layers get orthogonal weights with gain sqrt(2) and the output layer
    ``out_gain``; otherwise PyTorch's default (uniform fan-in) init is kept, as SB3 does for its off-policy
    networks.
    """
    act = activation_class(activation)
    layers: list[nn.Module] = []
    size = in_dim
    for hidden in hidden_sizes:
        linear = nn.Linear(size, hidden)
        layers += [layer_init(linear) if ortho_init else linear, act()]
        size = hidden
    if out_dim is not None:
        linear = nn.Linear(size, out_dim)
        layers.append(layer_init(linear, out_gain) if ortho_init else linear)
    return MLP(*layers)


def output_size(hidden_sizes: Sequence[int], in_dim: int) -> int:
    return int(hidden_sizes[-1]) if len(hidden_sizes) else in_dim


# --- stochastic policy heads --------------------------------------------------------------------------------


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, std^2) summed over the last axis: (B, A) -> (B,)."""
    return gaussian_log_prob_entropy(actions, mean, std)[0]


def gaussian_log_prob_entropy(
    actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log N(actions; mean, std^2) and the entropy of N(mean, std^2), both summed over action dims, (B,).

    ``std`` may be (A,) (state-independent) or (B, A); log(std) is taken once for both.
    """
    action_dim = mean.shape[-1]
    log_std = torch.log(std)
    z = (actions - mean) / std
    log_prob = (-0.5 * z.square() - log_std).sum(-1) - action_dim * LOG_SQRT_2PI
    entropy = log_std.sum(-1) + action_dim * (0.5 + LOG_SQRT_2PI)
    return log_prob, entropy.expand(len(mean)) if entropy.dim() == 0 else entropy


def categorical_log_prob_entropy(
    logits: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a) and entropy of a categorical given unnormalised logits (B, n) and actions (B,)."""
    log_p = torch.log_softmax(logits, dim=-1)
    chosen = log_p.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return chosen, entropy


def sample_categorical(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row from softmax(logits) with the Gumbel-max trick (exact, one fused op chain)."""
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-20, 1.0)
    return torch.argmax(logits - torch.log(-torch.log(uniform)), dim=-1)


class DiagGaussianHead(nn.Module):
    """Gaussian action distribution: mean = Linear(latent), state-independent learned log std (PPO)."""

    def __init__(self, latent_dim: int, action_dim: int, log_std_init: float = 0.0, ortho_init: bool = True):
        super().__init__()
        self.mean = nn.Linear(latent_dim, action_dim)
        if ortho_init:
            layer_init(self.mean, 0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, latent) -> mean (B, A), std (A,)."""
        return self.mean(latent), self.log_std.exp()


class StateDependentNoiseHead(nn.Module):
    """Generalized state-dependent exploration (gSDE, Raffin et al. 2021), as SB3 configures it for PPO.

    The exploration noise is eps(s) = latent(s) @ W with W ~ N(0, sigma^2) entrywise, sigma = exp(log_std) of
    shape (latent_dim, A), W re-drawn every few steps. So the action a = mean(s) + eps(s) is Gaussian with
    variance sum_j latent_j^2 sigma_jk^2 per action dim k. The latent is detached for the variance (the noise
    does not train the features), matching SB3's ``learn_features=False``.
    """

    def __init__(self, latent_dim: int, action_dim: int, log_std_init: float = 0.0, ortho_init: bool = True):
        super().__init__()
        self.mean = nn.Linear(latent_dim, action_dim)
        if ortho_init:
            layer_init(self.mean, 0.01)
        self.log_std = nn.Parameter(torch.full((latent_dim, action_dim), float(log_std_init)))

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, latent) -> mean (B, A), std (B, A)."""
        variance = latent.detach().square() @ self.log_std.exp().square()
        return self.mean(latent), torch.sqrt(variance + 1e-6)

    def sample_exploration_matrices(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """One noise matrix per env: (count, latent_dim, A)."""
        sigma = self.log_std.detach().exp()
        return torch.randn((count, *sigma.shape), generator=generator, device=sigma.device) * sigma

    @staticmethod
    def noise(latent: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        """eps = latent @ W per row: (B, latent) x (B, latent, A) -> (B, A)."""
        return torch.bmm(latent.unsqueeze(1), matrices).squeeze(1)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC log-std clamp (SB3's values)


class SquashedGaussianActor(nn.Module):
    """SAC policy: a ~ tanh(N(mu(s), sigma(s)^2)) in [-1, 1]^A, with the change-of-variables log-density."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes, activation=activation)
        latent = output_size(hidden_sizes, obs_dim)
        self.mu = nn.Linear(latent, action_dim)
        self.log_std = nn.Linear(latent, action_dim)

    def forward(
        self, obs: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, obs_dim) -> actions (B, A) in [-1, 1], log_prob (B,) (zeros when deterministic)."""
        latent = self.trunk(obs)
        mu = self.mu(latent)
        if deterministic:
            return torch.tanh(mu), torch.zeros(len(obs), device=obs.device)
        std = self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        z = torch.randn(mu.shape, generator=generator, device=mu.device)
        pre_tanh = mu + std * z
        actions = torch.tanh(pre_tanh)
        log_prob = (-0.5 * z.square() - torch.log(std) - LOG_SQRT_2PI).sum(-1)
        log_prob = log_prob - torch.log(1.0 - actions.square() + 1e-6).sum(-1)
        return actions, log_prob


class DeterministicActor(nn.Module):
    """TD3 policy: a = tanh(MLP(s)) in [-1, 1]^A."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, action_dim, activation=activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


# --- critics ------------------------------------------------------------------------------------------------


class TwinQCritic(nn.Module):
    """Two independent state-action value networks Q_1(s, a), Q_2(s, a) (TD3 and SAC's clipped double Q).

    Kept as two plain MLPs rather than one batched matmul (bmm) over stacked weights: each layer's 2-D products go
    through :func:`linear`, which picks the faster CPU kernel for the machine (see ONEDNN_LINEAR); bmm has no such
    choice.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, hidden_sizes, 1, activation=activation)
        self.q2 = mlp(obs_dim + action_dim, hidden_sizes, 1, activation=activation)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, obs_dim), (B, A) -> Q_1, Q_2, each (B,)."""
        x = torch.cat([obs, actions], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def first(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_1 alone, (B,): the TD3 actor's objective."""
        return self.q1(torch.cat([obs, actions], dim=-1)).squeeze(-1)


# --- Rainbow ------------------------------------------------------------------------------------------------


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian parameter noise (Fortunato et al. 2018).

    w = mu_w + sigma_w * f(eps_out) f(eps_in)^T with f(x) = sign(x) sqrt|x|; the noise is redrawn by
    :meth:`reset_noise`. ``forward(x, noisy=False)`` uses the mean weights (evaluation).
    """

    def __init__(self, in_dim: int, out_dim: int, sigma_init: float = 0.5):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight_mu = nn.Parameter(torch.empty(out_dim, in_dim).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_dim, in_dim), sigma_init / math.sqrt(in_dim)))
        self.bias_sigma = nn.Parameter(torch.full((out_dim,), sigma_init / math.sqrt(in_dim)))
        self.register_buffer("eps_in", torch.zeros(in_dim))
        self.register_buffer("eps_out", torch.zeros(out_dim))

    def reset_noise(self, generator: torch.Generator) -> None:
        for eps in (self.eps_in, self.eps_out):
            x = torch.randn(eps.shape, generator=generator, device=eps.device)
            eps.copy_(x.sign() * x.abs().sqrt())

    def weights(self, noisy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The (out, in) weight and (out,) bias in use: mu + sigma * noise, or the mean weights."""
        if not noisy:
            return self.weight_mu, self.bias_mu
        weight = torch.addcmul(self.weight_mu, self.weight_sigma, torch.outer(self.eps_out, self.eps_in))
        return weight, torch.addcmul(self.bias_mu, self.bias_sigma, self.eps_out)

    def forward(self, x: torch.Tensor, noisy: bool = True) -> torch.Tensor:
        return linear(x, *self.weights(noisy))


class RainbowQNetwork(nn.Module):
    """Dueling distributional Q-network: returns log-probabilities over ``n_atoms`` return atoms per action.

    Shared trunk of plain linear layers (all but the last hidden size), then a value stream and an advantage
    stream, each one hidden layer of the last hidden size; the streams use noisy layers when ``noisy``.
    Dueling combination per atom: logits = V + A - mean_a A, then log-softmax over atoms.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int],
        n_atoms: int,
        noisy: bool = True,
        dueling: bool = True,
        noisy_sigma: float = 0.5,
    ):
        super().__init__()
        self.num_actions, self.n_atoms, self.dueling, self.noisy = num_actions, n_atoms, dueling, noisy
        trunk_sizes, stream_size = list(hidden_sizes[:-1]), int(hidden_sizes[-1])
        self.trunk = mlp(obs_dim, trunk_sizes, activation="relu")
        latent = output_size(trunk_sizes, obs_dim)

        def linear(i: int, o: int) -> nn.Module:
            return NoisyLinear(i, o, noisy_sigma) if noisy else nn.Linear(i, o)

        self.advantage_hidden = linear(latent, stream_size)
        self.advantage_out = linear(stream_size, num_actions * n_atoms)
        if dueling:
            self.value_hidden = linear(latent, stream_size)
            self.value_out = linear(stream_size, n_atoms)

    def stream_layers(self) -> tuple[nn.Module, ...]:
        """The layers after the trunk, in the order of :meth:`stream_weights`."""
        layers = (self.advantage_hidden, self.advantage_out)
        return layers + (self.value_hidden, self.value_out) if self.dueling else layers

    def stream_weights(self, noisy: bool = True) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """(weight, bias) of each stream layer as ``forward`` uses them: the noisy layers' mu + sigma * noise
        when ``noisy``, else their mean weights. Computed once, they can be passed to several forward calls
        (acting holds the noise between training phases, so the weights are built once per phase). The noisy
        layers' entries are new tensors that do not follow later parameter or noise changes; the others are the
        live parameters. A caller that keeps them must drop them when either changes."""
        return tuple(
            layer.weights(noisy) if isinstance(layer, NoisyLinear) else (layer.weight, layer.bias)
            for layer in self.stream_layers()
        )

    def forward(
        self,
        obs: torch.Tensor,
        noisy: bool = True,
        weights: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None,
    ) -> torch.Tensor:
        """(B, obs_dim) -> log-probabilities (B, num_actions, n_atoms); ``weights`` as from
        :meth:`stream_weights` (built here from ``noisy`` when not given)."""
        weights = self.stream_weights(noisy) if weights is None else weights
        h = self.trunk(obs)
        adv = linear(F.relu(linear(h, *weights[0])), *weights[1]).view(-1, self.num_actions, self.n_atoms)
        if self.dueling:
            value = linear(F.relu(linear(h, *weights[2])), *weights[3])
            logits = value.unsqueeze(1) + adv - adv.mean(dim=1, keepdim=True)
        else:
            logits = adv
        return torch.log_softmax(logits, dim=-1)

    def reset_noise(self, generator: torch.Generator) -> None:
        """Fresh factorised noise for every noisy layer, drawn in one call for the whole network."""
        reset_noise((self,), generator)


def reset_noise(networks: Sequence[RainbowQNetwork], generator: torch.Generator) -> None:
    """Fresh factorised noise for every noisy layer of ``networks`` (e.g. online and target), all drawn in one
    ``randn`` call: each layer's eps_in and eps_out get f(x) = sign(x) sqrt|x| of their own standard normals."""
    layers = [layer for net in networks for layer in net.stream_layers() if isinstance(layer, NoisyLinear)]
    if not layers:
        return
    buffers = [eps for layer in layers for eps in (layer.eps_in, layer.eps_out)]
    x = torch.randn(sum(b.numel() for b in buffers), generator=generator, device=buffers[0].device)
    scaled = x.sign() * x.abs().sqrt()
    torch._foreach_copy_(buffers, list(scaled.split([b.numel() for b in buffers])))


def project_distribution(
    next_probs: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """C51 projection of the target distribution r + discount * Z onto the fixed support (Bellemare et al.
    2017).

    Args:
        next_probs: (B, N) probabilities of the bootstrap distribution at the next state.
        rewards: (B,) (n-step) rewards.
        discounts: (B,) bootstrap factors, already zero where the episode terminated.
        support: (N,) evenly spaced atoms from v_min to v_max.

    Returns:
        (B, N) probabilities: each shifted atom's mass split between its two neighbouring atoms in proportion
        to distance (all of it on one atom when it lands exactly on it), clipped to [v_min, v_max].
    """
    n_atoms = support.numel()
    v_min, v_max = float(support[0]), float(support[-1])
    delta = (v_max - v_min) / (n_atoms - 1)
    shifted = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * support).clamp_(v_min, v_max)
    position = (shifted - v_min) / delta  # fractional atom index in [0, N-1]
    lower_f = position.floor()
    upper_share = next_probs * (position - lower_f)  # 0 when the atom lands exactly on one of the support
    lower = lower_f.long()
    upper = (lower + 1).clamp_(max=n_atoms - 1)  # past the last atom only with a zero share
    projected = torch.zeros_like(next_probs)
    projected.scatter_add_(1, lower, next_probs - upper_share)
    projected.scatter_add_(1, upper, upper_share)
    return projected


# --- recurrent core -----------------------------------------------------------------------------------------


class LSTMCore(nn.Module):
    """One-layer LSTM used step by step while acting and over padded sequence segments while training."""

    def __init__(self, in_dim: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(in_dim, hidden_size)

    def initial_state(
        self, batch: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c), each (1, batch, hidden)."""
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One time step for a batch of envs: (B, in) -> (B, hidden), new state."""
        out, new_state = self.lstm(x.unsqueeze(0), state)
        return out.squeeze(0), new_state

    def sequences(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Padded sequences, time-major: (L, S, in) with initial state (1, S, hidden) each -> (L, S, hidden).

        Padding must sit at the end of each sequence: an LSTM's output at step t never depends on later
        inputs.
        """
        out, _ = self.lstm(x, state)
        return out


# --- target networks ----------------------------------------------------------------------------------------


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online, for all parameters at once (tau = 1 copies)."""
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    if tau == 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)


def freeze(module: nn.Module) -> nn.Module:
    """Mark a target network's parameters as constants (no gradients are ever computed for them)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def clip_grad_norm(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients so their global L2 norm is at most ``max_norm``; returns the norm before clipping.

    Same result as ``torch.nn.utils.clip_grad_norm_`` (1e-6 in the denominator included) in four tensor ops,
    without its per-call grouping and checks, which cost more than the arithmetic for small networks.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total
