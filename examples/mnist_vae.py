"""A variational autoencoder on MNIST (784 -> 400 -> 20 -> 400 -> 784), trained with Adam.

    python examples/mnist_vae.py                  # graphc, eager (10,000 training images, 1 epoch)
    python examples/mnist_vae.py --compile        # the training step under graphc.compile
    python examples/mnist_vae.py --torch          # the same text under PyTorch
    python examples/mnist_vae.py --plot vae.png   # also write an 8x8 grid of samples decoded from N(0, 1)

Only the import lines depend on --torch. The loss is the summed binary cross-entropy of the
reconstruction plus the KL divergence to N(0, 1); the reported test loss is per image, with z = mu
(eval mode), so it does not depend on the random draw. The noise of the reparameterisation is drawn
outside the step and passed in, so a compiled step draws fresh noise every call too.
"""
import argparse

from mnist_arrays import batches, load

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--torch", action="store_true", help="run under PyTorch instead of graphc")
parser.add_argument("--compile", action="store_true", help="compile the training step")
parser.add_argument("--backend", default=None, help="compile backend (graphc: numba_cpu, interpreter)")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--train-size", type=int, default=10000, help="training images (60000 for a full run)")
parser.add_argument("--test-size", type=int, default=2000, help="test images (10000 for a full run)")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--plot", default=None, metavar="PNG", help="write a grid of 64 samples to this PNG file")
args = parser.parse_args()

if args.torch:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
else:
    import graphc as torch
    import graphc.nn as nn
    import graphc.nn.functional as F

LATENT = 20


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc_mu = nn.Linear(400, LATENT)
        self.fc_logvar = nn.Linear(400, LATENT)
        self.fc3 = nn.Linear(LATENT, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x, noise):
        mu, logvar = self.encode(x.view(-1, 784))
        z = mu + noise * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def vae_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


torch.manual_seed(args.seed)
model = VAE()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)


def train_step(x, noise):
    optimizer.zero_grad()
    recon, mu, logvar = model(x, noise)
    loss = vae_loss(recon, x, mu, logvar)
    loss.backward()
    optimizer.step()
    return loss


step = train_step
if args.compile:
    step = torch.compile(train_step, **({"backend": args.backend} if args.backend else {}))

x_train, y_train = load("train", args.train_size)
x_test, y_test = load("test", args.test_size)
for epoch in range(1, args.epochs + 1):
    model.train()
    total = 0.0
    for xb, _ in batches(x_train, y_train, args.batch_size, seed=args.seed + epoch, drop_last=True):
        loss = step(torch.from_numpy(xb), torch.randn(len(xb), LATENT))
        total += loss.item()
    print(f"epoch {epoch}: train loss {total / (len(x_train) - len(x_train) % args.batch_size):.2f} per image")

model.eval()
test_total = 0.0
with torch.no_grad():
    for xb, _ in batches(x_test, y_test, 500):
        x = torch.from_numpy(xb)
        recon, mu, logvar = model(x, None)
        test_total += vae_loss(recon, x, mu, logvar).item()
print(f"test loss: {test_total / len(x_test):.2f} per image ({len(x_test)} images)")

if args.plot:
    if args.torch:
        from torchvision.utils import save_image
    else:
        from graphc.vision.utils import save_image
    with torch.no_grad():
        samples = model.decode(torch.randn(64, LATENT)).view(64, 1, 28, 28)
    save_image(samples, args.plot, nrow=8)
    print(f"wrote {args.plot}")
