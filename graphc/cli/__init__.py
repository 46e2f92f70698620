"""The graphc command: train a seed model on MNIST, benchmark eager against compiled, print the IR.

    graphc train --model mlp                 # MNIST, progress bar, test accuracy, eager-vs-compiled summary
    graphc bench --model all                 # graphc eager | graphc compiled | torch eager, side by side
    graphc ir --model mlp --stage all        # the IR after every pass; --source python; --dot step.dot

Every usage problem (bad option, missing data, unwritable or corrupt checkpoint) is one line on
stderr, `graphc: error: ...`, and exit status 2.
"""
from __future__ import annotations

import sys

from .common import CLIError, HelpFormatter, Parser, first_line

USAGE_ERROR = 2


def build_parser():
    from . import bench, ir, train
    parser = Parser(prog="graphc", formatter_class=HelpFormatter,
                    description="graphc: PyTorch-style deep learning with a graph compiler.\n\n"
                                "  graphc train   train the seed MLP or CNN on MNIST (eager or compiled)\n"
                                "  graphc bench   time a training step: graphc eager, graphc compiled, torch eager\n"
                                "  graphc ir      print the IR of the compiled training step, its generated source "
                                "or a DOT graph\n\n"
                                "Settings: GRAPHC_CACHE_DIR (compiled kernels), GRAPHC_LOG, GRAPHC_DUMP.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,bench,ir}", parser_class=Parser)
    for module in (train, bench, ir):
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None):
    """Run the graphc command line; returns the exit status (0, or 2 for a usage error)."""
    from ..errors import GraphcError
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:          # --help, --version
            return exc.code if isinstance(exc.code, int) else 0
        if getattr(args, "run", None) is None:
            raise CLIError("choose a command: train, bench or ir (see 'graphc --help')")
        return args.run(args) or 0
    except CLIError as exc:
        return _fail(str(exc))
    except GraphcError as exc:   # DataError (data files, checkpoints) and the rest: graphc explains itself
        return _fail(first_line(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130


def _fail(message):
    message = " ".join(str(message).split())   # one line, whatever the message held
    print(f"graphc: error: {message}", file=sys.stderr)
    from .. import distributed as dist
    if dist.get_world_size() > 1:   # under mpiexec: end every rank rather than leave them waiting for this one
        sys.stderr.flush()
        dist.state.comm.Abort(USAGE_ERROR)
    return USAGE_ERROR
