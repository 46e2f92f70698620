"""An attention model over the rows of MNIST images: each of the 28 rows is a token.

    python examples/mnist_attention.py                  # graphc, eager (6,000 training images, 1 epoch)
    python examples/mnist_attention.py --compile        # the training step under graphc.compile
    python examples/mnist_attention.py --torch          # the same text under PyTorch

Only the import lines depend on --torch: the model, the training loop and the evaluation are one text
for both libraries. Embedding of rows, a pre-norm block (LayerNorm, MultiheadAttention, LayerNorm, an
MLP with GELU), mean over rows, a linear head; Adam and cross-entropy.
"""
import argparse

from mnist_arrays import batches, load

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--torch", action="store_true", help="run under PyTorch instead of graphc")
parser.add_argument("--compile", action="store_true", help="compile the training step")
parser.add_argument("--backend", default=None, help="compile backend (graphc: numba_cpu, interpreter)")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--train-size", type=int, default=6000, help="training images (60000 for a full run)")
parser.add_argument("--test-size", type=int, default=2000, help="test images (10000 for a full run)")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

if args.torch:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
else:
    import graphc as torch
    import graphc.nn as nn
    import graphc.nn.functional as F


class RowAttention(nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.embed = nn.Linear(28, dim)
        self.pos = nn.Parameter(torch.randn(1, 28, dim) * 0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x.squeeze(1)) + self.pos          # [N, 28 rows, dim]
        h = self.norm1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(1))


torch.manual_seed(args.seed)
model = RowAttention()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)


def train_step(x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
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
    total, count = 0.0, 0
    for xb, yb in batches(x_train, y_train, args.batch_size, seed=args.seed + epoch, drop_last=True):
        loss = step(torch.from_numpy(xb), torch.from_numpy(yb))
        total, count = total + loss.item(), count + 1
    print(f"epoch {epoch}: train loss {total / count:.4f}")

model.eval()
correct = 0
with torch.no_grad():
    for xb, yb in batches(x_test, y_test, 500):
        correct += int((model(torch.from_numpy(xb)).argmax(1) == torch.from_numpy(yb)).sum().item())
print(f"test accuracy: {100.0 * correct / len(x_test):.2f} % ({len(x_test)} images)")
