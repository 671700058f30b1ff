"""The additivity penalty: its inputs, its interaction, and training with it."""
import numpy as np
import pytest
import torch

from twolevel.additivity import GRID, additivity_loss, interaction, interaction_inputs, patch_map
from twolevel.signal import N_BANDS, WINDOW_FRAMES


def test_patch_map_tiles_the_window_in_grid_patches():
    ids = patch_map(WINDOW_FRAMES, N_BANDS)
    assert ids.shape == (WINDOW_FRAMES, N_BANDS) and ids.dtype == torch.int64
    counts = torch.bincount(ids.reshape(-1))
    assert len(counts) == GRID[0] * GRID[1] and int(counts.min()) > 0.8 * int(counts.max())
    assert ids[0, 0] == 0 and ids[-1, -1] == GRID[0] * GRID[1] - 1
    assert bool((ids[1:] >= ids[:-1]).all()) and bool((ids[:, 1:] >= ids[:, :-1]).all())


def test_interaction_inputs_hide_two_disjoint_sets_of_shown_patches():
    g = torch.Generator().manual_seed(0)
    windows = torch.rand(3, WINDOW_FRAMES, N_BANDS) + 1.0  # never equal to the hide value
    x = interaction_inputs(windows, g, hide_value=-2.0).reshape(4, 3, WINDOW_FRAMES, N_BANDS)
    shown = x != -2.0
    assert torch.allclose(x[0][shown[0]], windows[shown[0]])  # shown cells are the window's own
    assert abs(float(shown[0].float().mean()) - 0.5) < 0.05  # half of the patches at z
    a, b = shown[0] & ~shown[1], shown[0] & ~shown[2]
    assert bool(a.any()) and bool(b.any()) and not bool((a & b).any())  # A and B disjoint, both shown at z
    assert torch.equal(shown[3], shown[0] & ~a & ~b)
    assert not torch.equal(shown[0][0], shown[0][1])  # each window its own pattern


def test_an_additive_function_has_no_interaction_and_a_product_has_one():
    g = torch.Generator().manual_seed(1)
    windows = torch.rand(4, WINDOW_FRAMES, N_BANDS)
    x = interaction_inputs(windows, g)
    weights = torch.rand(WINDOW_FRAMES, N_BANDS)
    additive = (x * weights).sum(dim=(1, 2))[:, None]
    assert interaction(additive).shape == (4, 1)
    assert torch.allclose(interaction(additive), torch.zeros(4, 1), atol=1e-2)
    assert float(additivity_loss(additive)) < 1e-4
    halves = torch.stack([x[:, :, :N_BANDS // 2].sum(dim=(1, 2)), x[:, :, N_BANDS // 2:].sum(dim=(1, 2))], 1)
    product = (halves[:, 0] * halves[:, 1])[:, None] / 1e4
    assert float(additivity_loss(product)) > 1e-3
    # scaled by each output's target variance, as the training losses are
    two = torch.cat([product, 2 * product], dim=1)
    assert float(additivity_loss(two, torch.tensor([1.0, 4.0]))) == pytest.approx(float(additivity_loss(product)))


def test_minimising_the_penalty_makes_a_network_more_additive():
    torch.manual_seed(0)
    # a small non-linear network whose answer to hidden patches interacts (tanh of a sum)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 8, stride=8), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.LazyLinear(16), torch.nn.Tanh(), torch.nn.Linear(16, 7))
    windows = torch.randn(4, WINDOW_FRAMES, N_BANDS)
    fixed = interaction_inputs(windows, torch.Generator().manual_seed(5)).unsqueeze(1)
    net(fixed)  # sizes the lazy layer

    def penalty() -> float:
        with torch.no_grad():
            return float(additivity_loss(net(fixed)))

    before = penalty()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(30):  # fresh patterns each step: the network learns additivity, not these patterns
        loss = additivity_loss(net(interaction_inputs(windows, g).unsqueeze(1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before > 1e-4 and penalty() < 0.5 * before


def test_training_with_the_penalty_logs_it_and_leaves_runs_without_it_unchanged():
    from synthetic import synthetic_set
    from twolevel.checkpoint import weights_digest
    from twolevel.training import TrainConfig, train

    data = synthetic_set()
    cfg = dict(width=0.125, epochs=2, batch_size=4, seed=3)
    with_it, summary = train(data, TrainConfig(**cfg, additivity_weight=1.0))
    losses = [h["loss_additivity"] for h in summary["history"]]
    assert len(losses) == 2 and all(np.isfinite(v) and v >= 0 for v in losses)
    off, off_summary = train(data, TrainConfig(**cfg))
    assert "loss_additivity" not in off_summary["history"][0]
    assert weights_digest(with_it.state_dict()) != weights_digest(off.state_dict())
