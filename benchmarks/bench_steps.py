"""Training-step timings of both seed models: graphc eager, graphc compiled, torch eager, side by side.

    python benchmarks/bench_steps.py [graphc bench options]      # e.g. --steps 20 --fresh-cache --threads 2

A thin wrapper: this is `graphc bench --model all` (graphc/cli/bench.py holds the measuring code and
documents what it measures); any option of `graphc bench --help` can be added, and a later --model wins.
"""
import sys

from graphc.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--model", "all", *sys.argv[1:]]))
