"""Mult-VAE / Mult-DAE / RaCT / CF-SFL / EASE / popularity: fitting, protocol and bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from agents.cf import CFSFL, EASE, MultDAE, MultVAE, Popularity, RaCT
from agents.cf.train import build_model

TINY = dict(hidden_dims=(32,), latent_dim=8, batch_size=20)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def clustered(n_users: int = 60, n_clusters: int = 4, per: int = 8, seed: int = 0
              ) -> sp.csr_matrix:
    """Users of a cluster like most of the cluster's items, and nothing else."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per
    x = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        c = u % n_clusters
        items = c * per + rng.choice(per, size=per - 1, replace=False)
        x[u, items] = 1.0
    return sp.csr_matrix(x)


def split_rows(x: sp.csr_matrix, seed: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Fold-in / target halves of every row."""
    rng = np.random.default_rng(seed)
    dense = x.toarray()
    fold, target = np.zeros_like(dense), np.zeros_like(dense)
    for u, row in enumerate(dense):
        items = rng.permutation(np.flatnonzero(row))
        half = len(items) // 2
        fold[u, items[half:]] = 1
        target[u, items[:half]] = 1
    return sp.csr_matrix(fold), sp.csr_matrix(target)


@pytest.fixture(scope="module")
def data():
    x = clustered()
    return x, split_rows(x)


FAST = {
    "vae": lambda m, s=0: MultVAE(m, epochs=120, anneal_epochs=60, seed=s, **TINY),
    "dae": lambda m, s=0: MultDAE(m, epochs=120, seed=s, **TINY),
    "ract": lambda m, s=0: RaCT(m, actor_epochs=100, critic_epochs=10, ac_epochs=10,
                                anneal_epochs=50, critic_metric="ndcg@5", seed=s, **TINY),
    "cfsfl": lambda m, s=0: CFSFL(m, pretrain_epochs=100, reward_epochs=3, joint_epochs=10,
                                  anneal_epochs=50, steps=2, embed_dim=8, feedback_dim=8,
                                  virtual_hidden=(16,), seed=s, **TINY),
    "ease": lambda m, s=0: EASE(m, l2=1.0),
}


@pytest.mark.parametrize("name", list(FAST))
def test_overfits_tiny_dataset(data, name):
    x, heldout = data
    model = FAST[name](x.shape[1]).fit(x, progress=False)
    res = model.evaluate(heldout, metrics=("ndcg@5", "recall@5"))
    assert res["ndcg@5"].mean > 0.9, res
    assert res["ndcg@5"].n_users == x.shape[0]


def test_popularity_ranks_by_count():
    x = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=np.float32))
    model = Popularity(4).fit(x)
    policy = model.as_policy(k=2)
    slate = policy.act({"clicks": torch.tensor([[0, 4], [4, 4]])})
    assert slate.tolist() == [[1, 2], [0, 1]]


def test_same_seed_same_metrics(data):
    x, heldout = data
    a = FAST["vae"](x.shape[1], 3).fit(x, valid=heldout, progress=False, max_epochs=15)
    b = FAST["vae"](x.shape[1], 3).fit(x, valid=heldout, progress=False, max_epochs=15)
    c = FAST["vae"](x.shape[1], 4).fit(x, valid=heldout, progress=False, max_epochs=15)
    ra, rb, rc = (m.evaluate(heldout, per_user=True)["ndcg@100"] for m in (a, b, c))
    np.testing.assert_array_equal(ra, rb)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(),
                                                          strict=True))


def test_ract_critic_correlates_with_true_ndcg():
    x = clustered(n_users=200, n_clusters=5, per=12, seed=2)
    model = RaCT(x.shape[1], actor_epochs=15, critic_epochs=40, ac_epochs=0, anneal_epochs=10,
                 critic_metric="ndcg@10", seed=0, **TINY)
    model.fit(x, progress=False)
    pred, truth = model.critic_predictions(x)
    r = np.corrcoef(pred.numpy(), truth.numpy())[0, 1]
    assert r > 0.3, r


def test_cfsfl_with_zero_steps_is_its_base_recommender(data):
    x, heldout = data
    m = x.shape[1]
    model = CFSFL(m, steps=0, pretrain_epochs=5, reward_epochs=1, joint_epochs=2,
                  embed_dim=8, feedback_dim=8, virtual_hidden=(16,), **TINY)
    model.fit(x, progress=False)
    base = MultVAE(m, **TINY)
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["encoder.0.weight"] = state["encoder.0.weight"][:, :m]  # drop the v columns
    base.net.load_state_dict(state)
    xs = torch.as_tensor(heldout[0].toarray())
    torch.testing.assert_close(model.eval().score(xs), base.eval().score(xs))
    # and the unrolled loop with T > 0 does change the prediction once trained
    model.config.steps = 2
    assert not torch.allclose(model.score(xs), base.score(xs))


def test_cfsfl_unrolls_t_steps():
    model = CFSFL(10, steps=3, embed_dim=4, feedback_dim=4, virtual_hidden=(8,), **TINY)
    calls = []
    original = model.net.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    model.net.forward = counting
    model.loop_trained.fill_(True)
    model.score(torch.ones(2, 10))
    assert len(calls) == 4  # T = 3 recommender calls inside the loop, one for a^T


@pytest.mark.parametrize("name", ["vae", "ract", "ease"])
def test_bad_input_gets_clear_errors(data, name):
    x, _ = data
    model = FAST[name](x.shape[1])
    with pytest.raises(ValueError, match="binary"):
        model.fit(x * 2.0, progress=False)
    with pytest.raises(ValueError, match="catalogue"):
        model.fit(sp.csr_matrix((5, x.shape[1] + 3), dtype=np.float32), progress=False)
    if name != "ease":
        empty = sp.vstack([x, sp.csr_matrix((1, x.shape[1]))]).tocsr()
        with pytest.raises(ValueError, match="without any interaction"):
            model.fit(empty, progress=False)
    with pytest.raises(TypeError, match="sparse"):
        model.fit([[1, 0]], progress=False)


def test_evaluate_rejects_overlapping_fold_in_and_target(data):
    x, _ = data
    model = Popularity(x.shape[1]).fit(x)
    with pytest.raises(ValueError, match="disjoint"):
        model.evaluate(x, x)


@pytest.mark.parametrize("cls", [RaCT, CFSFL])
def test_same_seed_same_model_for_three_stage_methods(data, cls):
    x, heldout = data
    kw = (dict(actor_epochs=2, critic_epochs=2, ac_epochs=2) if cls is RaCT else
          dict(pretrain_epochs=2, reward_epochs=2, joint_epochs=2, steps=2, embed_dim=8,
               feedback_dim=8, virtual_hidden=(16,)))
    a, b = (cls(x.shape[1], seed=5, **kw, **TINY).fit(x, valid=heldout, progress=False)
            for _ in range(2))
    np.testing.assert_array_equal(a.evaluate(heldout, per_user=True)["ndcg@100"],
                                  b.evaluate(heldout, per_user=True)["ndcg@100"])
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------- RaCT against the authors' code


def _fixed_ranking_ract(**kw) -> RaCT:
    """RaCT on 8 items whose actor scores item i with 8 - i, whatever its input and z."""
    model = RaCT(8, hidden_dims=(4,), latent_dim=2, batch_size=4, **kw)
    last = model.net.decoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.arange(8, 0, -1, dtype=torch.float32))
    return model


def test_ract_critic_target_is_ndcg100_of_the_actor_ranking_without_the_history():
    model = _fixed_ranking_ract()
    x = torch.zeros(2, 8)
    x[0, [0, 2, 3, 6]] = 1
    x[1, [1, 4]] = 1
    b = torch.zeros(2, 8)
    b[0, [0, 3]] = 1  # user 0: x_h = {0, 3} seen by the actor, x_p = {2, 6} to find
    b[1, [1, 4]] = 1  # user 1: nothing held out, |H0| = 0
    h, y, ok = model.features(x, grad=False, mask=b)
    # ranking 0..7 with x_h removed: 1, 2, 4, 5, 6, 7 -> hits at ranks 2 and 5
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)  # min(|H0|, 100) = 2 relevant items
    assert y[0].item() == pytest.approx(dcg / idcg, abs=1e-6)
    assert ok.tolist() == [True, False]  # NDCG undefined without held-out items
    log_pi = torch.log_softmax(torch.arange(8, 0, -1, dtype=torch.float32), 0)
    # h = [NLL of the whole history, |H0|, |H1|] (eq. 5)
    assert h[0].tolist() == pytest.approx([-log_pi[[0, 2, 3, 6]].sum().item(), 2.0, 2.0])
    assert h[1, 1:].tolist() == [0.0, 2.0]


def test_ract_actor_step_moves_the_actor_only_through_the_critic(data):
    x, _ = data
    xb = torch.as_tensor(x[:20].toarray())
    model = RaCT(x.shape[1], ac_lr=1e-3, seed=1, **TINY)
    model.critic_step(xb)  # some running statistics in the critic's BatchNorm
    w0 = model.critic.layers[0].weight[:, 0].detach().clone()
    with torch.no_grad():  # a critic blind to the NLL, the only feature the actor changes
        model.critic.layers[0].weight[:, 0] = 0
    actor = [p.detach().clone() for p in model.net.parameters()]
    critic = copy.deepcopy(model.critic.state_dict())
    model.actor_step(xb)
    for p0, p in zip(actor, model.net.parameters(), strict=True):
        assert torch.equal(p0, p)  # no likelihood, KL or other term moved it
    for name, v in model.critic.state_dict().items():
        assert torch.equal(critic[name], v), name  # the critic is fixed during actor steps
    with torch.no_grad():
        model.critic.layers[0].weight[:, 0] = w0
    model.actor_step(xb)
    assert any(not torch.equal(p0, p) for p0, p in zip(actor, model.net.parameters(),
                                                       strict=True))


def test_ract_actor_critic_stage_uses_a_fresh_adam_at_ac_lr(data):
    x, _ = data
    xb = torch.as_tensor(x[:20].toarray())
    defaults = RaCT(10).config
    assert (defaults.critic_lr, defaults.ac_lr) == (1e-4, 2e-6)  # the authors' MultiVAE
    for shared in (False, True):
        model = RaCT(x.shape[1], actor_epochs=3, critic_epochs=1, ac_epochs=0, ac_lr=1e-5,
                     ac_shared_optimizer=shared, **TINY).fit(x, progress=False)
        model.train()
        stage1 = copy.deepcopy(model.optimizers["actor"].state_dict())
        before = [p.detach().clone() for p in model.net.parameters()]
        model.actor_step(xb)
        moved = max((p - p0).abs().max().item()
                    for p0, p in zip(before, model.net.parameters(), strict=True))
        steps = [s["step"].item() for s in model.optimizers["actor"].state_dict()["state"]
                 .values()]
        old = [s["step"].item() for s in stage1["state"].values()]
        if shared:  # recgym's former behaviour: the stage-1 Adam continues
            assert steps == [n + 1 for n in old]
        else:
            assert steps == old  # stage 1's Adam is not used in stage 3
            assert 0.5e-5 < moved < 1.01e-5  # a fresh Adam's first step: ac_lr (+ float32)


def test_ract_frozen_critic_norm_keeps_the_pretrained_actor_statistics(data):
    x, _ = data
    stats = {}
    for norm in ("frozen", "batch"):
        model = RaCT(x.shape[1], actor_epochs=3, critic_epochs=2, ac_epochs=1,
                     critic_norm=norm, **TINY).fit(x, progress=False, max_epochs=3)
        model.train()
        model._critic_epoch(x, 0)
        first = model.critic.norm.running_mean.clone(), model.critic.norm.running_var.clone()
        model._critic_epoch(x, 1)
        model._ac_epoch(x, 0)
        last = model.critic.norm.running_mean, model.critic.norm.running_var
        stats[norm] = first, last
    (mean, var), (mean_end, var_end) = stats["frozen"]
    assert mean[1] + mean[2] == pytest.approx(7.0)  # |H0| + |H1| = 7 items for every user
    assert mean[0] > 0 and (var > 0).all()
    assert torch.equal(mean, mean_end) and torch.equal(var, var_end)
    (mean, _), (mean_end, _) = stats["batch"]
    assert not torch.equal(mean, mean_end)
    assert RaCT(10, critic_norm="raw").critic.normalise is False
    with pytest.raises(ValueError, match="critic_norm"):
        RaCT(10, critic_norm="layer")


def test_ract_reference_switches_are_training_options():
    model = build_model("ract", 10, critic_lr=1e-3, ac_lr=1e-3, ac_shared_optimizer=True,
                        critic_norm="frozen")
    assert (model.config.ac_lr, model.config.ac_shared_optimizer) == (1e-3, True)


# ---------------------------------------------------------------- CF-SFL against the paper


def test_mult_dae_loss_is_its_nll_plus_the_reference_l2_scale(data):
    """Mult-DAE's loss = NLL + 2e-5 * sum ||W||^2: RaCT's 0.01 in Liang et al.'s code's scale.

    (Liang's notebook passes lam = 0.01 / batch_size, 500; 0.01 itself was recgym's former
    reading, 500 times the penalty.)
    """
    x, _ = data
    xb = torch.as_tensor(x[:20].toarray())
    model = MultDAE(x.shape[1], **TINY)
    loss, nll, kl = model.elbo_loss(xb, beta=0.1)
    squares = sum(layer.weight.pow(2).sum() for layer in model.net.modules()
                  if isinstance(layer, torch.nn.Linear))
    assert float(kl) == 0.0
    torch.testing.assert_close(loss - nll, 0.01 / 500 * squares)


def test_cfsfl_stage1_is_mult_vae_plus_the_reference_l2_scale(data):
    """Stage 1 = Mult-VAE's beta-ELBO + 2e-5 * sum ||W||^2: the paper's 0.01 in vae_cf's scale.

    (vae_cf passes lam = 0.01 / batch_size, 500; 0.01 itself was recgym's former reading.)
    """
    x, _ = data
    m = x.shape[1]
    xb = torch.as_tensor(x[:20].toarray())
    model = CFSFL(m, embed_dim=4, feedback_dim=4, virtual_hidden=(8,), **TINY)
    assert model.config.l2_reg == pytest.approx(0.01 / 500)
    base = MultVAE(m, **TINY)
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["encoder.0.weight"] = state["encoder.0.weight"][:, :m]  # drop the v columns
    base.net.load_state_dict(state)
    base.generator.set_state(model.generator.get_state())  # same dropout mask and z
    loss, nll, _ = model.elbo_loss(xb, beta=0.1)
    base_loss, base_nll, _ = base.elbo_loss(xb, beta=0.1)
    torch.testing.assert_close(nll, base_nll)
    squares = sum(layer.weight.pow(2).sum() for layer in model.net.modules()
                  if isinstance(layer, torch.nn.Linear))
    torch.testing.assert_close(loss - base_loss, 2e-5 * squares)


def test_cfsfl_recommender_step_trains_pi_and_f_and_the_reward_step_r_and_b(data):
    x, _ = data
    xb = torch.as_tensor(x[:20].toarray())
    model = CFSFL(x.shape[1], steps=2, embed_dim=4, feedback_dim=4, virtual_hidden=(8,),
                  **TINY)
    model.loop_trained.fill_(True)
    model.train()

    def snapshot() -> dict[str, list[torch.Tensor]]:
        return {"pi": [p.detach().clone() for p in model.net.parameters()],
                "F": [p.detach().clone() for p in model.feedback.parameters()],
                "R": [p.detach().clone() for p in model.reward.parameters()],
                "B": [model.lookup.detach().clone()]}

    def moved(a: dict, b: dict) -> set[str]:
        return {k for k in a if any(not torch.equal(p, q) for p, q in zip(a[k], b[k],
                                                                           strict=True))}

    before = snapshot()
    _, x_h, a_t = model.recommender_step(xb, beta=0.1)
    after_pi = snapshot()
    # F gets its gradient only through the unrolled loop (v^T feeds a^T)
    assert moved(before, after_pi) == {"pi", "F"}
    assert a_t.shape == xb.shape and torch.allclose(a_t.sum(1), torch.ones(20))
    model.reward_step(xb, x_h, a_t)
    assert moved(after_pi, snapshot()) == {"R", "B"}
