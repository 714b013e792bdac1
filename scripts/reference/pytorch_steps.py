"""PyTorch eager reference for the per-step costs that dualspace's criterion
benchmarks measure (benches/gan_steps.rs, benches/mapping.rs): the same
networks, batch sizes, losses and optimiser settings, timed on this machine.

    .venv/bin/python scripts/reference/pytorch_steps.py [threads]
    .venv/bin/python scripts/reference/pytorch_steps.py --only latent256 [--threads N] [--steps N]

It needs only the torch that scripts/setup.sh installs into .venv. With
`--only CASE` (latent64, latent256, harness, pixel) it times that case alone the way
dualspace's `gan_step_time` example does (five chunks, the median) and prints
`CASE MS`, for `compare_steps.py`. `--tuned` writes the GAN steps the way
dualspace's trainer runs them (fused Adam, D's weights frozen in the
generator step, one D pass over real and fake for the latent MLP), so that
what is left of the difference is the interpreter and the framework.
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("threads_pos", nargs="?", type=int, metavar="threads")
ap.add_argument("--threads", type=int)
ap.add_argument("--only", choices=["latent64", "latent256", "harness", "pixel"])
ap.add_argument("--steps", type=int, default=0)
ap.add_argument("--tuned", action="store_true", help="fused Adam, frozen D in the G step, joint D pass (latent)")
a = ap.parse_args()
threads = a.threads or a.threads_pos
torch.set_num_threads(threads if threads else torch.get_num_threads())
torch.manual_seed(0)
sp = F.softplus


def timed(step, warm, n):
    for _ in range(warm):
        step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n * 1e3


def adam_pair(G, D, lr, betas):
    """Adam for G and D (fused with --tuned)."""
    return (torch.optim.Adam(G.parameters(), lr, betas=betas, fused=a.tuned or None),
            torch.optim.Adam(D.parameters(), lr, betas=betas, fused=a.tuned or None))


def generator_update(D, og, g_loss):
    """One generator update; with --tuned, D's weights get no gradient."""
    if a.tuned:
        D.requires_grad_(False)
    lg = g_loss()
    og.zero_grad()
    lg.backward()
    if a.tuned:
        D.requires_grad_(True)
    og.step()
    return lg


def gan_step(G, D, data, nz, b, noise_shape, joint=False):
    """One GAN step as a PyTorch user writes it. With --tuned, also what
    dualspace's trainer does beyond that: fused Adam, no gradients for D's
    weights in the generator step, and (joint=True, for a D without batch
    norm) one D pass over real and fake together."""
    og, od = adam_pair(G, D, 2e-4, (0.5, 0.999))
    joint = joint and a.tuned

    def step():
        x = data[torch.randint(0, data.shape[0], (b,))]
        with torch.no_grad():
            f = G(torch.randn(b, *noise_shape))
        if joint:
            s = D(torch.cat([x, f])).view(-1)
            ld = sp(-s[:b]).mean() + sp(s[b:]).mean()
        else:
            ld = sp(-D(x)).mean() + sp(D(f)).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        lg = generator_update(D, og, lambda: sp(-D(G(torch.randn(b, *noise_shape)))).mean())
        return ld.item() + lg.item()

    return step


def latent_step(b):
    """The latent MLP GAN: noise 64 -> 512 -> 512 -> 32 codes; D 32 -> 512 -> 512 -> 1."""
    G = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 32))
    D = nn.Sequential(nn.Linear(32, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.LeakyReLU(0.2), nn.Linear(512, 1))
    return gan_step(G, D, torch.randn(8192, 32), 64, b, (64,), joint=True)


def wgan_gp_step(G, D, data, b, nz, n_critic, lr, lam=10.0):
    """A WGAN-GP step (Gulrajani et al.): n_critic critic updates with the
    gradient penalty at random points between real and fake, one generator
    update; Adam betas 0 / 0.9. --tuned as in gan_step."""
    og, od = adam_pair(G, D, lr, (0.0, 0.9))

    def step():
        for _ in range(n_critic):
            x = data[torch.randint(0, data.shape[0], (b,))]
            with torch.no_grad():
                f = G(torch.randn(b, nz))
            if a.tuned:
                s = D(torch.cat([x, f])).view(-1)
                ld = s[b:].mean() - s[:b].mean()
            else:
                ld = D(f).mean() - D(x).mean()
            alpha = torch.rand(b, 1)
            xh = (alpha * x + (1 - alpha) * f).requires_grad_(True)
            g = torch.autograd.grad(D(xh).sum(), xh, create_graph=True)[0]
            gp = ((g.norm(2, dim=1) - 1) ** 2).mean()
            loss = ld + lam * gp
            od.zero_grad()
            loss.backward()
            od.step()
        lg = generator_update(D, og, lambda: -D(G(torch.randn(b, nz))).mean())
        return loss.item() + lg.item()

    return step


def harness_step():
    """The reproduce harness's latent GAN: 256-wide MLPs on 128-d codes, WGAN-GP, 2 critic steps, Adam 3e-4."""
    G = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128))
    D = nn.Sequential(nn.Linear(128, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    return wgan_gp_step(G, D, torch.randn(8192, 128), 64, 64, 2, 3e-4)


def pixel_step():
    """The 28x28 DCGAN: G 100 -> 7x7x256 -> 14x14x128 -> 28x28x1; D 28x28x1 -> 14x14x64 -> 7x7x128 -> 1."""
    G = nn.Sequential(
        nn.ConvTranspose2d(100, 256, 7, 1, 0, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 1, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7, 1, 0, bias=False))
    return gan_step(G, D, torch.rand(2048, 1, 28, 28) * 2 - 1, 100, 64, (100, 1, 1))


if a.only:
    cases = {"pixel": pixel_step, "harness": harness_step,
             "latent64": lambda: latent_step(64), "latent256": lambda: latent_step(256)}
    step = cases[a.only]()
    steps = max(a.steps or (30 if a.only == "pixel" else 200), 5)
    chunk = steps // 5
    for _ in range(max(steps // 10, 3)):
        step()
    print(a.only, f"{statistics.median(timed(step, 0, chunk) for _ in range(5)):.3f}")
    sys.exit(0)

for b in (64, 256):
    print(f"latent GAN step, batch {b}: {timed(latent_step(b), 20, 200):.2f} ms")
print(f"pixel DCGAN step, batch 64: {timed(pixel_step(), 5, 30):.1f} ms")

# The 28x28 autoencoder preset: 1 -> 32 -> 64 (4x4, stride 2, batch norm), 64*7*7 -> 32, and back.
class AE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64 * 49, 32)
        self.fc = nn.Linear(32, 64 * 49)
        self.dec = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh())

    def forward(self, x):
        z = self.head(self.enc(x).flatten(1))
        return self.dec(F.relu(self.fc(z)).view(-1, 64, 7, 7))


ae = AE()
opt = torch.optim.Adam(ae.parameters(), 1e-3)
x = torch.rand(64, 1, 28, 28) * 2 - 1


def ae_step():
    loss = F.mse_loss(ae(x), x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


print(f"AE step, batch 64: {timed(ae_step, 5, 50):.2f} ms")
