"""STL and DReG gradients on a linear-Gaussian model whose posterior is exact.

    z ~ N(0, I_L),  x | z ~ N(W z + b, σ² I_D),  W with orthogonal columns,

so ``p(z | x) = N(diag(1/P) Wᵀ(x - b)/σ², diag(1/P))``, ``P = diag(WᵀW)/σ² + 1``:
a diagonal Gaussian guide ``N(A x + c, diag s²)`` contains it. Everything in
float64, so "exactly zero" means below 1e-10 against gradients of order 1.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.transforms import AffineTransform, Planar
from pyro.nn import PyroModule
from torch import nn

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from tests.conftest import global_latent_pair

D, L, SIGMA, TAU = 6, 2, 0.5, 0.7
F64 = torch.float64
# (new estimator, its plain counterpart, alpha): same bound, same draws; α = 0.3, not the
# default 0.5, where α and 1 - α (a swapped DReG coefficient) would give the same numbers
PAIRS = [("iwae-dreg", "iwae", None), ("iwae-stl", "iwae", None),
         ("renyi-dreg", "renyi", 0.3), ("trace-stl", "trace", None)]


class LinearGaussian(PyroModule):
    """The model of the module docstring; ``hierarchical`` puts z1 ~ N(0, I), z ~ N(z1, τ²) above x."""

    def __init__(self, hierarchical: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(D, L, generator=g, dtype=F64))
        self.W = nn.Parameter(q * torch.tensor([2.0, 1.0], dtype=F64))
        self.b = nn.Parameter(torch.randn(D, generator=g, dtype=F64))
        self.hierarchical = hierarchical

    def prior_var(self) -> float:
        """The marginal prior variance of z."""
        return 1 + TAU**2 if self.hierarchical else 1.0

    def posterior(self):
        """``(A, c, s)`` with ``p(z | x) = N(A x + c, diag s²)``."""
        with torch.no_grad():
            precision = (self.W**2).sum(0) / SIGMA**2 + 1 / self.prior_var()
            A = self.W.T / SIGMA**2 / precision[:, None]
            return A, -A @ self.b, precision.rsqrt()

    def forward(self, x):
        zeros = x.new_zeros(x.shape[0], L)
        with pyro.plate("data", x.shape[0]):
            if self.hierarchical:
                z1 = pyro.sample("z1", dist.Normal(zeros, 1.0).to_event(1))
                z = pyro.sample("z", dist.Normal(z1, TAU).to_event(1))
            else:
                z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, SIGMA).to_event(1), obs=x)


class LinearGuide(PyroModule):
    """``q(z | x) = N(A x + c, diag s²)`` written as ``kind``; with ``hierarchical``
    also ``q(z1 | z) = N(a z, s1²)``, the exact conditional at its optimum."""

    def __init__(self, model: LinearGaussian, kind: str = "independent", shift: float = 0.0):
        super().__init__()
        A, c, s = model.posterior()
        g = torch.Generator().manual_seed(1)
        self.A = nn.Parameter(A + shift * torch.randn(A.shape, generator=g, dtype=F64))
        self.c = nn.Parameter(c + shift)
        self.log_s = nn.Parameter(s.log() + shift)
        self.a = nn.Parameter(torch.tensor(1 / (1 + TAU**2) + shift, dtype=F64))
        self.log_s1 = nn.Parameter(torch.tensor(TAU, dtype=F64).log()
                                   - 0.5 * torch.tensor(1 + TAU**2, dtype=F64).log())
        self.kind, self.hierarchical = kind, model.hierarchical

    def distribution(self, x):
        loc, scale = x @ self.A.T + self.c, self.log_s.exp().expand(x.shape[0], L)
        if self.kind == "transformed":
            return dist.TransformedDistribution(dist.Normal(torch.zeros_like(loc), 1.0).to_event(1),
                                                [AffineTransform(loc, scale, event_dim=1)])
        if self.kind == "mvn":
            return dist.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.distribution(x))
            if self.hierarchical:
                pyro.sample("z1", dist.Normal(self.a * z, self.log_s1.exp()).to_event(1))


@pytest.fixture(autouse=True)
def _one_thread():
    """Hundreds of tiny backward passes: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, D, generator=g, dtype=F64) * 2


def grads(estimator, model, guide, x, seed: int):
    """``(loss value, guide gradient, model gradient)`` as flat vectors, on draws ``seed``."""
    params = list(guide.parameters()) + list(model.parameters())
    for p in params:
        p.grad = None
    pyro.set_rng_seed(seed)
    loss = estimator(model, guide, x)
    loss.backward()
    flat = [torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                       for p in m.parameters()]) for m in (guide, model)]
    return loss.item(), *flat


@pytest.mark.parametrize("kind", ["independent", "transformed", "mvn", "hierarchical"])
@pytest.mark.parametrize("name, plain, alpha", PAIRS)
def test_guide_gradient_is_exactly_zero_at_the_posterior(kind, name, plain, alpha):
    """Sticking the landing: at q = p(z|x), log w is constant in z and every draw gives 0.

    Catches a score term left in (plain estimators are far from 0 per draw, checked),
    and, with the two-site guide, a re-scoring that keeps the later site's
    dependence on the earlier draw live (its pathwise part would be dropped).
    """
    model = LinearGaussian(hierarchical=kind == "hierarchical")
    guide = LinearGuide(model, "independent" if kind == "hierarchical" else kind)
    x = data()
    for seed in range(3):
        _, new_guide, _ = grads(make_elbo(name, 5, alpha), model, guide, x, seed)
        _, plain_guide, _ = grads(make_elbo(plain, 5, alpha), model, guide, x, seed)
        assert new_guide.abs().max() < 1e-10
        assert plain_guide.abs().max() > 1e-2


@pytest.mark.parametrize("name, plain, alpha", PAIRS)
def test_values_and_model_gradients_equal_the_plain_bound(name, plain, alpha):
    """Same seed, same draws: the loss value and the decoder's gradient are the plain
    bound's exactly (catches w̃² instead of w̃ on the model's parameters)."""
    model = LinearGaussian()
    guide = LinearGuide(model, shift=0.3)
    x = data()
    new_value, new_guide, new_model = grads(make_elbo(name, 5, alpha), model, guide, x, 7)
    plain_value, plain_guide, plain_model = grads(make_elbo(plain, 5, alpha), model, guide, x, 7)
    assert new_value == pytest.approx(plain_value, rel=1e-12)
    assert torch.allclose(new_model, plain_model, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(new_guide, plain_guide, rtol=1e-3)  # only the guide's differs
    with torch.no_grad():
        pyro.set_rng_seed(7)
        assert make_elbo(name, 5, alpha)(model, guide, x).item() == pytest.approx(plain_value,
                                                                                 rel=1e-12)


def mean_gradient_z_scores(name, plain, alpha, particles=5, groups=40, copies=50):
    """z-scores per guide parameter of ``mean(new - plain)`` over ``groups`` paired draws.

    Each group is one call on ``copies`` copies of 4 points: its gradient is already
    a mean over ``4·copies`` independent draws; the standard error comes from the
    spread between groups (measured, not assumed).
    """
    model = LinearGaussian()
    guide = LinearGuide(model, shift=0.3)
    x = data().repeat(copies, 1)
    new, ref = make_elbo(name, particles, alpha), make_elbo(plain, particles, alpha)
    diffs = torch.stack([grads(new, model, guide, x, seed)[1] - grads(ref, model, guide, x, seed)[1]
                         for seed in range(groups)])[:, :L * D + 2 * L]  # A, c, log s
    return diffs.mean(0) / (diffs.std(0) / groups**0.5)


@pytest.mark.parametrize("name, plain, alpha", [p for p in PAIRS if p[0] != "iwae-stl"])
def test_dreg_and_elbo_stl_are_unbiased(name, plain, alpha):
    """E[new guide gradient] = E[plain guide gradient] within 4.5 measured standard
    errors for each of the 16 guide parameters (no false alarm: |z| < 4.5 has
    probability 0.99993 per parameter, and the seeds are fixed)."""
    z = mean_gradient_z_scores(name, plain, alpha)
    assert z.abs().max() < 4.5, z


def test_iwae_stl_is_biased_and_the_test_sees_it():
    """The same comparison catches a biased estimator: IWAE-STL (weights w̃ instead
    of DReG's w̃² on the pathwise term) is off by many standard errors."""
    z = mean_gradient_z_scores("iwae-stl", "iwae", None)
    assert z.abs().max() > 10, z


def test_refusals(binary_data):
    x = binary_data.train[:4]
    beta = ppl_vae.build("beta_vae", beta=4.0, latent_dim=2, data=binary_data, net="mlp")
    with pytest.raises(PplVaeError, match="iwae-dreg bound is defined only for unscaled sites"):
        make_elbo("iwae-dreg")(beta.model, beta.guide, x)
    with pytest.raises(PplVaeError, match="KL warm-up"):
        vae = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
        ppl_vae.fit(vae.model, vae.guide, binary_data, elbo="trace-stl", warmup_steps=5,
                    epochs=1, device="cpu", quiet=True, report=False)

    with pytest.raises(PplVaeError, match=r"needs every latent inside pyro.plate\('data'\)"):
        make_elbo("trace-stl")(*global_latent_pair(), x)

    def discrete_model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            loc = c[..., None, None, None].expand(*c.shape, *x.shape[1:])
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(3), obs=x)

    def discrete_guide(x, enumerate_c=False):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(0.5),
                        infer={"enumerate": "parallel"} if enumerate_c else {})

    with pytest.raises(PplVaeError, match="iwae-stl estimator needs reparameterizable"):
        make_elbo("iwae-stl")(discrete_model, discrete_guide, x)
    with pytest.raises(PplVaeError, match="marked for enumeration"):
        make_elbo("iwae-dreg")(discrete_model, lambda x: discrete_guide(x, True), x)
    with pytest.raises(PplVaeError, match="the estimator 'iwae-dreg' takes no --alpha"):
        make_elbo("iwae-dreg", 5, 0.5)


def test_refuses_guides_it_cannot_rescore():
    """A transform without an inverse, and a guide with dropout: one-line errors."""
    model = LinearGaussian()
    x = data()
    planar = Planar(L).to(F64)

    def planar_guide(x):
        with pyro.plate("data", x.shape[0]):
            base = dist.Normal(x.new_zeros(x.shape[0], L), 1.0).to_event(1)
            pyro.sample("z", dist.TransformedDistribution(base, [planar]))

    with pytest.raises(PplVaeError, match="cannot be evaluated away from its own draw"):
        make_elbo("iwae-dreg")(model, planar_guide, x)
    guide = LinearGuide(model)
    dropout = nn.Dropout(0.5)

    def dropout_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", guide.distribution(dropout(x)))

    with pytest.raises(PplVaeError, match="deterministic given x and z"):
        make_elbo("trace-stl")(model, dropout_guide, x)


def test_a_registered_pair_trains_one_step(binary_data):
    """The real networks (float32, PyroModule fast path): value equals plain IWAE's."""
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:8]
    values = {}
    for name in ("iwae", "iwae-dreg"):
        with ppl_vae.engine_settings(pair.model, pair.guide):
            estimator = make_elbo(name, 4)
            estimator(pair.model, pair.guide, x)
            pyro.set_rng_seed(3)
            loss = estimator(pair.model, pair.guide, x)
            loss.backward()
        values[name] = loss.item()
    assert values["iwae-dreg"] == pytest.approx(values["iwae"], rel=1e-6)
