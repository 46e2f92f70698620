"""Train a seed model on MNIST, eagerly or with the whole training step compiled.

Each epoch prints the seed program's line `Epoch: N, Loss: x.xxx` (the mean training loss of
the epoch) and the accuracy on the 10,000 MNIST test images (evaluated eagerly, in eval mode,
under no_grad). A progress bar on stderr shows batches, loss and samples/s (a terminal only;
--quiet turns it off). At the end a short summary compares eager and compiled step times on the
same batch shape (interleaved, median of --bench-steps steps) and gives the compile time.

Defaults per model (the seed programs' settings, except where noted):
  mlp: 10 epochs, batch 64, SGD lr 0.05 with momentum 0.9, input ToTensor().
       The seed uses lr 0.01 without momentum, which ends near 93% test accuracy; with
       momentum the run passes 97% by epoch 2-4 and ends near 98%.  `--lr 0.01 --momentum 0`
       is the seed exactly.
  cnn: 1 epoch, batch 100, SGD lr 0.001 with momentum 0.9, input ToTensor() then
       Normalize((0.5,), (0.5,)).  The seed runs 10 epochs; a CNN epoch takes minutes on a
       small CPU, so pass --epochs 10 for the full run (or --max-batches N for a short one).

Under mpiexec (`mpiexec -n 2 python -m graphc train`), the run is data-parallel: each rank trains
on its shard of the data (DistributedSampler, --batch-size per rank), the model is wrapped in
DistributedDataParallel, only rank 0 prints and writes checkpoints (the others wait at a
barrier), throughput is the global samples/s, and each rank defaults to cores / ranks-on-this-host
threads.

With --checkpoint, a checkpoint is written atomically (graphc.save) after every epoch: model and
optimizer state, the epoch, the random-number state and the loss/accuracy history. --resume
continues from one at the next epoch, with the same optimizer state and data order; the
model, batch size and hyper-parameters come from the checkpoint unless given on the command line.
"""
from __future__ import annotations

import math
import os
import sys
import time

from ..fileio import write_atomic
from ..threads import default_num_threads
from .common import (CLIError, add_backend_option, add_threads_option, call_as_user, check_backend,
                     check_writable_file, compile_seconds, first_line, is_tty, median_ms, non_negative_float,
                     non_negative_int, positive_float, positive_int, quiet_numba_warnings, resolve_data_root,
                     set_threads, time_interleaved)
from .models import DEFAULTS, MODELS, build, make_step, transform

NAME = "train"
HELP = "train the seed MLP or CNN on MNIST"
CHECKPOINT_FORMAT = "graphc-train-checkpoint"
EVAL_BATCH = 1000


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default=None, metavar="{mlp,cnn}",
                   help="which seed model: mlp (784-128-10) or cnn (2 conv, max-pool, dropout, 2 linear); "
                        "default mlp, or the checkpoint's model with --resume")
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="number of epochs in all (a resumed run counts the checkpoint's epochs); "
                        "default: mlp 10, cnn 1")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="B",
                   help="training batch size; default: mlp 64, cnn 100 (the seeds')")
    p.add_argument("--lr", type=positive_float, default=None, metavar="X",
                   help="SGD learning rate; default: mlp 0.05 (the seed: 0.01), cnn 0.001 (the seed's)")
    p.add_argument("--momentum", type=non_negative_float, default=None, metavar="X",
                   help="SGD momentum; default 0.9 for both (the MLP seed uses 0)")
    p.add_argument("--eager", action="store_true",
                   help="train eagerly instead of compiling the training step")
    add_backend_option(p, help_text="graphc.compile backend for the compiled training step")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding MNIST/raw/ (the four IDX files, .gz or not); default ./data when it "
                        "has them, else the copy in the graphc repository")
    p.add_argument("--max-batches", type=positive_int, default=None, metavar="N",
                   help="stop each epoch after N batches (for quick runs); default: the whole epoch")
    p.add_argument("--eval-limit", type=positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only; default: all 10,000")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write a checkpoint here after every epoch (atomically)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint written by --checkpoint, at its next epoch")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="write the loss and accuracy curves as a PNG (needs matplotlib)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (initial weights, data order)")
    p.add_argument("--bench-steps", type=non_negative_int, default=None, metavar="N",
                   help="steps of each kind timed for the eager-vs-compiled summary, 0 to skip it; "
                        "default: mlp 20, cnn 5")
    add_threads_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or compile notes (stderr)")


def run(args):
    trainer = Trainer(args)
    trainer.fit()
    trainer.summary()
    return 0


class Trainer:
    """One `graphc train` run: checks every argument first, then builds data, model and steps."""

    def __init__(self, args, out=None):
        import graphc
        self.graphc = graphc
        self.args = args
        self.out = out or sys.stdout
        self.dist = _join_mpi_launch()
        self.rank, self.world = self.dist.get_rank(), self.dist.get_world_size()
        self.quiet = args.quiet or self.rank != 0
        ckpt = self._read_checkpoint(args.resume) if args.resume else None
        if ckpt is not None and args.model is not None and args.model != ckpt["model"]:
            raise CLIError(f"--resume {args.resume}: the checkpoint holds a {ckpt['model']} model, "
                           f"not --model {args.model}")
        self.model = args.model or (ckpt["model"] if ckpt else "mlp")
        d = DEFAULTS[self.model]
        self.epochs = args.epochs or d["epochs"]
        saved = ckpt.get("config") if ckpt is not None and isinstance(ckpt.get("config"), dict) else {}
        batch = saved.get("batch_size")
        self.batch_size = args.batch_size or (batch if isinstance(batch, int) and batch > 0 else d["batch_size"])
        lr = args.lr if args.lr is not None else d["lr"]
        momentum = args.momentum if args.momentum is not None else d["momentum"]
        self.bench_steps = args.bench_steps if args.bench_steps is not None else (20 if self.model == "mlp" else 5)
        self.backend = args.backend
        self.data_root = resolve_data_root(args.data_root)
        if args.checkpoint:
            check_writable_file(args.checkpoint, "--checkpoint")
        if args.plot:
            check_writable_file(args.plot, "--plot")
            _need_matplotlib()
        if not args.eager or self.bench_steps:
            check_backend(self.backend)
        quiet_numba_warnings()
        # Under mpiexec each rank takes cores / ranks-on-this-host: MPICH pins nothing, so the ranks' BLAS
        # and numba pools would otherwise fight over the same cores. GRAPHC_NUM_THREADS wins over both.
        local = self.dist.local_world_size() if self.world > 1 else 1
        args.threads = args.threads or default_num_threads(local_ranks=local)
        set_threads(args.threads)

        graphc.manual_seed(args.seed)
        self.net, self.criterion, self.optimizer, self.step = build(self.model, graphc, lr=lr, momentum=momentum)
        if self.world > 1:
            self.step = self._data_parallel_step()
        self.compiled = None if args.eager else graphc.compile(self.step, backend=self.backend)
        self.history = {"loss": [], "accuracy": [], "seconds": []}
        self.start_epoch = 0
        if ckpt is not None:
            self._restore(ckpt)
        # Given on the command line, a hyper-parameter wins over the checkpoint's (e.g. a lower lr to finish).
        for key, value in (("lr", args.lr), ("momentum", args.momentum)):
            if value is not None:
                for group in self.optimizer.param_groups:
                    group[key] = value
        group = self.optimizer.param_groups[0]
        self.lr, self.momentum = group["lr"], group["momentum"]

        from ..utils.data import DataLoader
        from ..vision.datasets import MNIST
        tf = transform(self.model)
        self.train_set = MNIST(root=self.data_root, train=True, transform=tf)
        self.test_set = MNIST(root=self.data_root, train=False, transform=tf)
        self.sampler = None
        if self.world > 1:
            from ..utils.data import DistributedSampler
            self.sampler = DistributedSampler(self.train_set, seed=args.seed)
        self.train_loader = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.sampler is None,
                                       sampler=self.sampler)
        self.test_loader = DataLoader(self.test_set, batch_size=EVAL_BATCH, shuffle=False)
        self.train_seconds = 0.0
        self.compile_note = None

    # --- data parallel (mpiexec) ----------------------------------------------------------------
    def _data_parallel_step(self):
        """The seed's step over DistributedDataParallel(net): rank 0's weights, gradients averaged."""
        return make_step(self.graphc.nn.parallel.DistributedDataParallel(self.net), self.criterion, self.optimizer)

    # --- checkpoints ---------------------------------------------------------------------------
    def _read_checkpoint(self, path):
        """Rank 0 reads the checkpoint and broadcasts it (ranks on other machines need no copy of the file)."""
        if self.world == 1:
            return read_checkpoint(path)
        ckpt, error = None, None
        if self.rank == 0:
            try:
                ckpt = read_checkpoint(path)
            except CLIError as exc:
                error = str(exc)
        ckpt, error = self.dist.broadcast_object((ckpt, error))
        if error:
            raise CLIError(error)
        return ckpt

    def _save_checkpoint(self, epoch):
        """graphc.save on rank 0 only (atomic: a killed run leaves the previous file whole); the others wait."""
        if self.rank == 0:
            self.graphc.save(self.checkpoint_state(epoch), self.args.checkpoint)
        if self.world > 1:
            self.dist.barrier()

    def _restore(self, ckpt):
        where = f"--resume {self.args.resume}"
        try:
            self.net.load_state_dict(ckpt["model_state"])
        except (RuntimeError, TypeError, KeyError, ValueError) as exc:
            raise CLIError(f"{where}: the model state does not fit the {self.model} model ({first_line(exc)})") \
                from None
        try:
            self.optimizer.load_state_dict(ckpt["optimizer_state"])
        except (self.graphc.GraphcError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CLIError(f"{where}: the optimizer state does not fit ({first_line(exc)})") from None
        try:
            self.graphc.default_generator.set_state(ckpt["rng_state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CLIError(f"{where}: the random-number state is damaged ({first_line(exc)})") from None
        history = ckpt["history"]
        for key in self.history:
            self.history[key] = [float(v) for v in history.get(key, [])]
        self.start_epoch = ckpt["epoch"]

    def checkpoint_state(self, epoch):
        """What a checkpoint holds after `epoch` (1-based) epochs."""
        return {"format": CHECKPOINT_FORMAT, "version": 1, "model": self.model, "epoch": epoch,
                "model_state": self.net.state_dict(), "optimizer_state": self.optimizer.state_dict(),
                "rng_state": self.graphc.default_generator.get_state(), "history": dict(self.history),
                "config": {"batch_size": self.batch_size, "lr": self.lr, "momentum": self.momentum,
                           "seed": self.args.seed, "eager": bool(self.args.eager), "backend": self.backend,
                           "max_batches": self.args.max_batches}}

    # --- training ------------------------------------------------------------------------------
    def fit(self):
        if self.start_epoch >= self.epochs:
            self._note(f"the checkpoint already has {self.start_epoch} epochs (--epochs {self.epochs}); "
                       f"nothing to train")
        for epoch in range(self.start_epoch, self.epochs):
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            loss = self.train_epoch(epoch)
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            self.print('Epoch: %d, Loss: %.3f' % (epoch + 1, loss))
            if self.world > 1:
                self.print(f"Throughput: {self.epoch_samples * self.world / seconds:,.0f} samples/s "
                           f"({self.world} ranks x {self.epoch_samples} samples in {seconds:.1f} s)")
            correct, total = self.evaluate()
            self.print(f"Test accuracy: {100.0 * correct / total:.2f}% ({correct}/{total})")
            self.history["loss"].append(loss)
            self.history["accuracy"].append(correct / total)
            self.history["seconds"].append(seconds)
            if self.args.checkpoint:
                self._save_checkpoint(epoch + 1)
        if self.args.plot:
            write_plot(self.history, self.args.plot, f"graphc train --model {self.model}")
            self._note(f"wrote {self.args.plot}")

    def train_epoch(self, epoch):
        """One epoch (or --max-batches of it); returns the mean loss, as the seed prints it."""
        n_batches = len(self.train_loader)
        if self.args.max_batches:
            n_batches = min(n_batches, self.args.max_batches)
        bar = _progress(n_batches, f"epoch {epoch + 1}/{self.epochs}", disabled=self.quiet or not is_tty())
        running, samples = 0.0, 0
        shown_t, shown_samples = time.perf_counter(), 0   # samples/s over the last display interval
        try:
            for i, (inputs, labels) in enumerate(self.train_loader):
                if i >= n_batches:
                    break
                loss = self._train_step(inputs, labels, bar)
                running += loss.item()
                samples += inputs.shape[0]
                bar.update(1)
                now = time.perf_counter()
                if now - shown_t > 0.5 or i + 1 == n_batches:
                    rate = (samples - shown_samples) * self.world / max(now - shown_t, 1e-9)
                    shown_t, shown_samples = now, samples
                    bar.set_postfix_str(f"loss {running / (i + 1):.3f}, {rate:,.0f} samples/s", refresh=False)
        finally:
            bar.close()
        self.epoch_samples = samples
        if self.world > 1:   # the seed's line shows the mean loss over every rank's batches
            everyone = [None] * self.world
            self.dist.all_gather_object(everyone, running)
            running = sum(everyone) / self.world
        return running / max(n_batches, 1)

    def _train_step(self, inputs, labels, bar):
        # The compiled step is specialised to the batch shape; an epoch's ragged last batch (60000 % 64 = 32
        # images) runs eagerly rather than paying for a second compile of a step used once per epoch.
        if self.compiled is None or inputs.shape[0] != self.batch_size:
            return self.step(inputs, labels)
        if self.compiled.last is None:
            if not self.quiet:
                extra = "; a cold numba compile takes tens of seconds, a cached one about a second" \
                    if self.backend.startswith("numba") else ""
                bar.write(f"compiling the training step ({self.backend}{extra})...", file=sys.stderr)
            t = time.perf_counter()
            loss = call_as_user(self.compiled, inputs, labels)
            stats = self.compiled.stats()
            self.compile_note = _compile_text(stats, time.perf_counter() - t)
            if not self.quiet:
                bar.write(f"compiled: {self.compile_note}", file=sys.stderr)
            return loss
        return self.compiled(inputs, labels)

    def evaluate(self):
        """(correct, total) on the test set (or its first --eval-limit images), eagerly, in eval mode.

        Data parallel, every rank holds the same weights: rank 0 evaluates and tells the others.
        """
        if self.world > 1:
            return self.dist.broadcast_object(self._evaluate() if self.rank == 0 else None)
        return self._evaluate()

    def _evaluate(self):
        limit = self.args.eval_limit or len(self.test_set)
        correct = total = 0
        self.net.eval()
        try:
            with self.graphc.no_grad():
                for inputs, labels in self.test_loader:
                    if total >= limit:
                        break
                    if total + inputs.shape[0] > limit:
                        inputs, labels = inputs[:limit - total], labels[:limit - total]
                    pred = self.net(inputs).argmax(1)
                    correct += int((pred == labels).sum().item())
                    total += int(inputs.shape[0])
        finally:
            self.net.train()
        return correct, total

    # --- the closing summary ----------------------------------------------------------------------
    def summary(self):
        acc = self.history["accuracy"][-1] if self.history["accuracy"] else None
        epochs_done = len(self.history["accuracy"])
        mode = "eager" if self.args.eager else f"compiled, {self.backend}"
        if self.world > 1:
            mode += f", {self.world} MPI ranks x batch {self.batch_size}"
        self.print("")
        self.print(f"Summary: {self.model}, batch {self.batch_size}, SGD lr {self.lr:g} momentum {self.momentum:g}, "
                   f"{epochs_done} epoch{'s' if epochs_done != 1 else ''}")
        if acc is not None:
            self.print(f"  test accuracy   {100.0 * acc:.2f}%")
        if self.train_seconds:
            self.print(f"  training time   {self.train_seconds:.1f} s this run ({mode}; includes data loading"
                       f"{'' if self.args.eager else ' and the first compile'})")
        if self.bench_steps:
            self._compare()

    def _compare(self):
        """Eager and compiled steps, interleaved, on one batch of the training shape (after training)."""
        graphc = self.graphc
        if len(self.train_set) < self.batch_size:
            return
        x, y = next(iter(self.train_loader))   # a full batch (the loader's first one always is)
        compiled = self.compiled
        if compiled is None:
            compiled = graphc.compile(self.step, backend=self.backend)
        if compiled.last is None:   # trained eagerly (or no full batch yet): this is the first compile
            t = time.perf_counter()
            call_as_user(compiled, x, y).item()
            self.compile_note = _compile_text(compiled.stats(), time.perf_counter() - t)
        runners = {"eager": lambda: self.step(x, y).item(), "compiled": lambda: compiled(x, y).item()}
        from .bench import _import_torch, _torch_runner
        torch = _import_torch()
        if torch is not None:   # torch's figure beside ours, at the same thread budget
            torch.set_num_threads(self.args.threads)
            runners["torch"] = _torch_runner(torch, self.model, self.net, x.numpy(), y.numpy())
        times = time_interleaved(runners, self.bench_steps)
        eager, comp = median_ms(times["eager"]), median_ms(times["compiled"])
        ratio = eager / comp if comp > 0 else math.nan
        torch_text = ""
        if "torch" in times:
            t_ms = median_ms(times["torch"])
            torch_text = f", torch eager {t_ms:.2f} ms (compiled {t_ms / comp:.2f}x torch, eager {t_ms / eager:.2f}x)"
        self.print(f"  step time       eager {eager:.2f} ms, compiled ({self.backend}) {comp:.2f} ms: "
                   f"compiled {ratio:.2f}x {'faster' if ratio >= 1 else 'slower'}{torch_text} "
                   f"(median of {self.bench_steps} interleaved steps each, batch {self.batch_size}, "
                   f"{self.args.threads} thread{'s' if self.args.threads != 1 else ''})")
        if self.compile_note:
            self.print(f"  compile         {self.compile_note}")
        recompiles = compiled.stats().get("recompiles") or []
        if recompiles:
            self.print(f"  recompiles      {len(recompiles)}: {recompiles[-1]}")

    # --- output ----------------------------------------------------------------------------------
    def print(self, text):
        if self.rank == 0:
            print(text, file=self.out, flush=True)

    def _note(self, text):
        if not self.quiet:
            print(f"graphc: {text}", file=sys.stderr, flush=True)


def _join_mpi_launch():
    """graphc.distributed, with the process group initialized when mpiexec started this process."""
    from .. import distributed as dist
    if dist.launched_by_mpi() and not dist.is_initialized():
        dist.init_process_group(backend="mpi")
    return dist


def _compile_text(stats, first_call_s):
    phases = stats.get("phases", {})
    cache = stats.get("cache")
    parts = [f"trace {phases.get('trace', 0):.2f} s", f"passes {phases.get('passes', 0):.2f} s",
             f"backend {phases.get('backend', 0):.2f} s"]
    if "numba_compile" in phases:
        parts.append(f"of which numba {phases['numba_compile']:.2f} s")
    text = f"{compile_seconds(stats):.2f} s (first call {first_call_s:.2f} s; {', '.join(parts)}"
    if cache in ("hit", "miss"):
        text += "; kernel cache " + ("hit: numba loaded cached machine code" if cache == "hit"
                                     else "miss: a cold compile")
    return text + ")"


def _progress(total, desc, disabled):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, disable=disabled, leave=False,
                dynamic_ncols=True)


# --- checkpoint reading -----------------------------------------------------------------------------

def read_checkpoint(path):
    """Load and check a `graphc train` checkpoint; any problem is a CLIError naming the file."""
    import graphc
    where = f"--resume {path}"
    if not os.path.exists(path):
        raise CLIError(f"{where}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{where}: is a directory, not a checkpoint file")
    try:
        ckpt = graphc.load(path)
    except graphc.GraphcError as exc:
        text = first_line(exc)
        for prefix in ("load: ", f"{path}: "):   # "load: PATH: what" -> "what": --resume PATH says the rest
            text = text[len(prefix):] if text.startswith(prefix) else text
        raise CLIError(f"{where}: {text}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CLIError(f"{where}: not a checkpoint written by `graphc train --checkpoint` "
                       f"(a plain state_dict cannot be resumed: it has no optimizer or epoch)")
    problems = []
    if ckpt.get("model") not in MODELS:
        problems.append(f"unknown model {ckpt.get('model')!r}")
    epoch = ckpt.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        problems.append(f"bad epoch {epoch!r}")
    for key in ("model_state", "rng_state", "history"):
        if not isinstance(ckpt.get(key), dict):
            problems.append(f"no {key}")
    opt = ckpt.get("optimizer_state")
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)):
        problems.append("no optimizer_state")
    if problems:
        raise CLIError(f"{where}: the checkpoint is incomplete or damaged ({'; '.join(problems)})")
    return ckpt


# --- plotting --------------------------------------------------------------------------------------

def _need_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed: pip install matplotlib "
                       "(or pip install 'graphc[plot]')") from None


def write_plot(history, path, title):
    """Training loss and test accuracy per epoch, side by side, as a PNG (matplotlib's Agg backend)."""
    _need_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    epochs = list(range(1, len(history["loss"]) + 1))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, history["loss"], marker="o")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean training loss")
    ax_acc.plot(epochs, [100.0 * a for a in history["accuracy"]], marker="o", color="tab:green")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.set_xticks(epochs)
    fig.suptitle(title)
    fig.tight_layout()
    try:   # atomic like the checkpoints: a temporary file next to the target, then a rename
        write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)
