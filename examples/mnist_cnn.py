"""The seed CNN program of the issue, with only its imports changed to graphc (PyTorch's names throughout).

    python examples/mnist_cnn.py                       # 10 epochs, eager, as the seed (slow on a small CPU)
    python examples/mnist_cnn.py --compile             # the training step under @graphc.compile
    python examples/mnist_cnn.py --epochs 1 --max-batches 50 --log-interval 10 --test-batches 2

Added to the seed: the options below, a `train_step` function (so that --compile can wrap it),
and the accuracy on the 10,000 MNIST test images at the end.  Run it from the repository root
(root='./data' is the repository's copy of MNIST; graphc also finds that copy from elsewhere).
"""
import argparse

import graphc as torch
import graphc.nn as nn
import graphc.optim as optim
import graphc.vision as torchvision
import graphc.vision.transforms as transforms

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=10, help="epochs to train (the seed: 10)")
parser.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches")
parser.add_argument("--compile", action="store_true", help="compile the training step with @graphc.compile")
parser.add_argument("--backend", default="numba_cpu", help="graphc.compile backend for --compile")
parser.add_argument("--log-interval", type=int, default=0,
                    help="also print the mean loss of every N batches, as '[epoch, batch] loss: x' (0: off)")
parser.add_argument("--test-batches", type=int, default=None,
                    help="evaluate on this many test batches of 1000 only (default: all 10,000 images)")
parser.add_argument("--seed", type=int, default=None, help="seed graphc's random numbers (the seed program does not)")
args = parser.parse_args()
if args.seed is not None:
    torch.manual_seed(args.seed)


# CNN
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        # As in the seed: Dropout2d on the [N, 128] output of fc1 warns (in PyTorch too) and zeroes
        # single elements, exactly as nn.Dropout(0.5) would.
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = nn.functional.relu(x)
        x = self.conv2(x)
        x = nn.functional.relu(x)
        x = nn.functional.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = nn.functional.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return x


net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
trainset = torchvision.datasets.MNIST(root='./data', train=True, download=True, transform=transform)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=100, shuffle=True)


def train_step(inputs, labels):
    optimizer.zero_grad()
    outputs = net(inputs)
    loss = criterion(outputs, labels)
    loss.backward()
    optimizer.step()
    return loss


if args.compile:
    # The whole step (forward, backward, SGD with momentum) becomes one graph of generated kernels.
    train_step = torch.compile(train_step, backend=args.backend)

for epoch in range(args.epochs):
    running_loss = 0.0
    window_loss = 0.0
    batches = len(trainloader) if args.max_batches is None else min(len(trainloader), args.max_batches)
    for i, data in enumerate(trainloader, 0):
        if i >= batches:
            break
        inputs, labels = data
        loss = train_step(inputs, labels)
        running_loss += loss.item()
        window_loss += loss.item()
        if args.log_interval and (i + 1) % args.log_interval == 0:
            print('[%d, %5d] loss: %.3f' % (epoch + 1, i + 1, window_loss / args.log_interval))
            window_loss = 0.0
    print('Epoch: %d, Loss: %.3f' % (epoch + 1, running_loss / batches))

# Accuracy on the 10,000 test images (eval mode: no dropout; no gradients).
testset = torchvision.datasets.MNIST(root='./data', train=False, download=True, transform=transform)
testloader = torch.utils.data.DataLoader(testset, batch_size=1000, shuffle=False)
net.eval()
correct = total = 0
with torch.no_grad():
    for i, (images, labels) in enumerate(testloader):
        if args.test_batches is not None and i >= args.test_batches:
            break
        predicted = net(images).argmax(1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print('Accuracy of the network on the %d test images: %.2f %%' % (total, 100 * correct / total))
