"""A small BatchNorm CNN on MNIST, trained with AdamW, a cosine learning-rate schedule and gradient clipping.

    python examples/mnist_bn_cnn.py               # graphc, eager (6,000 training images, 1 epoch)
    python examples/mnist_bn_cnn.py --compile     # the training step under graphc.compile
    python examples/mnist_bn_cnn.py --torch       # the same text under PyTorch

Only the import lines depend on --torch. Two conv/BatchNorm/ReLU/max-pool blocks and a linear head;
CosineAnnealingLR steps once per batch down to 0 over the whole run, and clip_grad_norm_ runs inside
the (compiled) step. BatchNorm's running statistics are updated by the step and used at test time.
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
parser.add_argument("--lr", type=float, default=3e-3)
parser.add_argument("--max-norm", type=float, default=1.0, help="clip the gradients' joint norm to this")
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

MEAN, STD = 0.1307, 0.3081


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.MaxPool2d(2))


torch.manual_seed(args.seed)
model = nn.Sequential(block(1, 16), block(16, 32), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
steps_per_epoch = args.train_size // args.batch_size
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)


def train_step(x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model((x - MEAN) / STD), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), args.max_norm)
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
        scheduler.step()
        total, count = total + loss.item(), count + 1
    print(f"epoch {epoch}: train loss {total / count:.4f}, lr now {scheduler.get_last_lr()[0]:.2e}")

model.eval()
correct = 0
with torch.no_grad():
    for xb, yb in batches(x_test, y_test, 500):
        logits = model((torch.from_numpy(xb) - MEAN) / STD)
        correct += int((logits.argmax(1) == torch.from_numpy(yb)).sum().item())
print(f"test accuracy: {100.0 * correct / len(x_test):.2f} % ({len(x_test)} images)")
