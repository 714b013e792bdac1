"""PyTorch eager reference for the per-step costs that dualspace's criterion
benchmarks measure (benches/gan_steps.rs, benches/mapping.rs): the same
networks, batch sizes, losses and optimiser settings, timed on this machine.

    .venv/bin/python scripts/reference/pytorch_steps.py [threads]

It needs only the torch that scripts/setup.sh installs into .venv.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
torch.manual_seed(0)
sp = F.softplus


def timed(step, warm, n):
    for _ in range(warm):
        step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n * 1e3


def gan_step(G, D, data, nz, b, noise_shape):
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))

    def step():
        x = data[torch.randint(0, data.shape[0], (b,))]
        with torch.no_grad():
            f = G(torch.randn(b, *noise_shape))
        ld = sp(-D(x)).mean() + sp(D(f)).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        f = G(torch.randn(b, *noise_shape))
        lg = sp(-D(f)).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        return ld.item() + lg.item()

    return step


# The latent MLP GAN: noise 64 -> 512 -> 512 -> 32 codes; D 32 -> 512 -> 512 -> 1.
for b in (64, 256):
    G = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 32))
    D = nn.Sequential(nn.Linear(32, 512), nn.LeakyReLU(0.2), nn.Linear(512, 512), nn.LeakyReLU(0.2), nn.Linear(512, 1))
    ms = timed(gan_step(G, D, torch.randn(8192, 32), 64, b, (64,)), 20, 200)
    print(f"latent GAN step, batch {b}: {ms:.2f} ms")

# The 28x28 DCGAN: G 100 -> 7x7x256 -> 14x14x128 -> 28x28x1; D 28x28x1 -> 14x14x64 -> 7x7x128 -> 1.
G = nn.Sequential(
    nn.ConvTranspose2d(100, 256, 7, 1, 0, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
    nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
    nn.ConvTranspose2d(128, 1, 4, 2, 1, bias=False), nn.Tanh())
D = nn.Sequential(
    nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
    nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
    nn.Conv2d(128, 1, 7, 1, 0, bias=False))
ms = timed(gan_step(G, D, torch.rand(2048, 1, 28, 28) * 2 - 1, 100, 64, (100, 1, 1)), 5, 30)
print(f"pixel DCGAN step, batch 64: {ms:.1f} ms")

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
