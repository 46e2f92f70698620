"""A long differential-fuzzing campaign: N random programs per backend, in parallel worker processes.

    python benchmarks/fuzz_campaign.py --interpreter 20000 --numba 2000 --out runs/fuzz
    python benchmarks/fuzz_campaign.py --summary --out runs/fuzz        # rebuild the summary only

Programs come from tests/reliability/fuzzgen.py (the generator the CI fuzz test uses); each is run
eagerly and compiled on its backend and must agree (fuzzgen.check). The work is cut into chunks
(--chunk programs each, own hypothesis seed); a finished chunk is written to <out>/chunks/ at once,
so an interrupted campaign started again with the same arguments skips the chunks it has and goes on.

A running chunk keeps the program it is checking in <out>/running/ (a chunk that seems stuck shows
which program), and the summary names the slowest program per backend.

Failures are deduplicated by (exception type, normalized first message line, phase). The first chunk
that meets a new failure shrinks it with hypothesis (at most --shrink-seconds) to a small program;
later chunks only count it. <out>/summary.json and <out>/summary.txt list the programs run per
backend, programs per second, and each distinct failure with its count and shrunk program source.

Workers are started with `spawn`, not `fork`: numba's OpenMP layer breaks a fork after a parallel call.
"""
from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("interpreter", "numba_cpu")


# ----------------------------------------------------------------------------------------------
# One chunk (runs in a worker process)
# ----------------------------------------------------------------------------------------------

class _Chunk:
    """Counts and findings of one chunk while hypothesis drives the property."""

    def __init__(self, known):
        self.known = set(known)   # failure keys some chunk already shrank: only counted here
        self.drawn = self.shrink_runs = 0
        self.counts = {}
        self.found = []           # {key, message, source, shrink_seconds}
        self.target = None        # the failure being shrunk now
        self.best = None          # (exception, program) of the smallest failing program so far
        self.failed_at = 0.0
        self.warnings = {}        # first line of each distinct warning: count
        self.slowest = (0.0, "")  # (seconds, source) of the slowest program checked


def run_chunk(backend, index, seed, size, max_ops, shrink_seconds, known, progress_path=None):
    """Run `size` programs on `backend` with hypothesis seed `seed`; return the chunk's record.

    progress_path: a file that holds the program running now (a chunk that seems stuck shows its program)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.reliability.fuzzgen import Crash, Mismatch, check, failure_key, programs

    chunk = _Chunk(tuple(tuple(k) for k in known))
    t0, cpu0 = time.perf_counter(), time.process_time()
    attempt = 0
    while chunk.drawn < size:
        budget = size - chunk.drawn

        @hypothesis_seed(seed * 1000 + attempt)
        @settings(max_examples=budget, database=None, deadline=None, derandomize=False, print_blob=False,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(programs(max_ops=max_ops))
        def prop(prog):
            if chunk.target is not None:
                if time.process_time() - chunk.failed_at > shrink_seconds:   # CPU time: load does not eat it
                    # out of shrinking time: only the smallest program found so far still fails
                    if repr(prog) == repr(chunk.best[1]):
                        raise chunk.best[0]
                    return
                chunk.shrink_runs += 1
            elif chunk.drawn >= size:
                return
            else:
                chunk.drawn += 1
            source = repr(prog)
            if progress_path:
                with open(progress_path, "w") as f:
                    f.write(f"# {backend} program {chunk.drawn} of {size}, started {time.strftime('%H:%M:%S')}\n{source}\n")
            started = time.perf_counter()
            try:
                check(prog, [backend], note=lambda text: None)
            except (Crash, Mismatch) as exc:
                key = failure_key(exc)
                if chunk.target is None and key in chunk.known:
                    chunk.counts[key] = chunk.counts.get(key, 0) + 1
                    return
                if chunk.target is None:
                    chunk.target, chunk.failed_at = key, time.process_time()
                    chunk.counts[key] = chunk.counts.get(key, 0) + 1
                if key == chunk.target:
                    chunk.best = (exc, prog)
                    raise
                # another failure met while shrinking this one: a later chunk (or attempt) reports it
            finally:
                seconds = time.perf_counter() - started
                if chunk.target is None and seconds > chunk.slowest[0]:
                    chunk.slowest = (round(seconds, 2), source)

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")   # once per place: a backend's performance hints, say
                prop()
        except Exception:   # noqa: BLE001 -- the target failure, shrunk (or hypothesis giving up on it)
            pass
        for w in caught:
            text = f"{w.category.__name__}: {(str(w.message).splitlines() or [''])[0]}"
            chunk.warnings[text] = chunk.warnings.get(text, 0) + 1
        if chunk.target is not None:
            exc, prog = chunk.best
            chunk.found.append({"key": list(chunk.target), "message": _clip(getattr(exc, "summary", str(exc))),
                                "source": repr(prog),
                                "shrink_cpu_seconds": round(time.process_time() - chunk.failed_at, 1)})
            chunk.known.add(chunk.target)
            chunk.target = chunk.best = None
        attempt += 1
        if attempt > 50:   # hypothesis keeps stopping early (e.g. it exhausted a tiny search space)
            break
    return {"backend": backend, "index": index, "seed": seed, "programs": chunk.drawn,
            "shrink_runs": chunk.shrink_runs, "seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - cpu0, 2),
            "counts": [[list(k), n] for k, n in chunk.counts.items()], "found": chunk.found, "warnings": chunk.warnings,
            "slowest": {"seconds": chunk.slowest[0], "source": chunk.slowest[1]}}


def _clip(text, lines=40):
    rows = text.splitlines()
    return "\n".join(rows[:lines] + ([f"... ({len(rows) - lines} more lines)"] if len(rows) > lines else []))


def _worker_setup():
    # One thread per worker: the workers are the parallelism (threads would fight for the same cores).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")


# ----------------------------------------------------------------------------------------------
# The campaign (main process)
# ----------------------------------------------------------------------------------------------

def chunk_path(out, backend, index):
    return os.path.join(out, "chunks", f"{backend}-{index:05d}.json")


def progress_path(out, backend, index):
    """The file where a running chunk keeps the program it is checking now (removed when the chunk ends)."""
    return os.path.join(out, "running", f"{backend}-{index:05d}.py")


def load_chunks(out):
    chunks = []
    for path in sorted(glob.glob(os.path.join(out, "chunks", "*.json"))):
        with open(path) as f:
            chunks.append(json.load(f))
    return chunks


def known_keys(out):
    return [f["key"] for c in load_chunks(out) for f in c["found"]]


def plan(args):
    """[(backend, chunk index, seed, size)] for every chunk the campaign needs."""
    todo = []
    for backend, total in (("interpreter", args.interpreter), ("numba_cpu", args.numba)):
        n_chunks = -(-total // args.chunk) if total else 0
        for index in range(n_chunks):
            size = min(args.chunk, total - index * args.chunk)
            seed = args.seed * 1_000_003 + BACKENDS.index(backend) * 100_003 + index
            todo.append((backend, index, seed, size))
    return todo


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def summarize(out, wall_seconds=None):
    """Merge the chunk records into summary.json and summary.txt; return the text."""
    chunks = load_chunks(out)
    per_backend = {b: {"programs": 0, "chunks": 0, "worker_seconds": 0.0, "cpu_seconds": 0.0,
                       "shrink_runs": 0} for b in BACKENDS}
    failures = {}
    for c in chunks:
        stats = per_backend[c["backend"]]
        stats["programs"] += c["programs"]
        stats["chunks"] += 1
        stats["worker_seconds"] += c["seconds"]
        stats["cpu_seconds"] += c.get("cpu_seconds", 0.0)
        stats["shrink_runs"] += c.get("shrink_runs", 0)
        slowest = c.get("slowest") or {"seconds": 0.0}
        if slowest["seconds"] > stats.get("slowest", {"seconds": 0.0})["seconds"]:
            stats["slowest"] = slowest
        for key, n in c["counts"]:
            entry = failures.setdefault(tuple(key), {"key": key, "count": 0, "backend": c["backend"]})
            entry["count"] += n
        for found in c["found"]:
            entry = failures.setdefault(tuple(found["key"]), {"key": found["key"], "count": 0,
                                                              "backend": c["backend"]})
            if "source" not in entry or len(found["source"]) < len(entry["source"]):
                entry.update(message=found["message"], source=found["source"])
    for stats in per_backend.values():
        secs = stats["worker_seconds"]
        stats["programs_per_worker_second"] = round(stats["programs"] / secs, 3) if secs else None
        cpu = stats["cpu_seconds"]
        stats["programs_per_cpu_second"] = round(stats["programs"] / cpu, 3) if cpu else None
    caught = {}
    for c in chunks:
        for text, n in c.get("warnings", {}).items():
            caught[text] = caught.get(text, 0) + n
    summary = {"backends": per_backend, "distinct_failures": len(failures),
               "failures": sorted(failures.values(), key=lambda f: -f["count"]), "warnings": caught}
    if wall_seconds is not None:
        summary["wall_seconds_this_session"] = round(wall_seconds, 1)
    _write_json(os.path.join(out, "summary.json"), summary)
    lines = ["graphc fuzz campaign", ""]
    for backend, s in per_backend.items():
        rate = s["programs_per_worker_second"]
        lines.append(f"{backend:>12}: {s['programs']} programs in {s['chunks']} chunks, "
                     f"{s['worker_seconds']:.0f} worker-seconds"
                     + (f" ({rate:.2f} programs/s per worker)" if rate else "")
                     + (f", {s['cpu_seconds']:.0f} CPU-seconds ({s['programs_per_cpu_second']:.2f} programs/CPU-s)"
                        if s["programs_per_cpu_second"] else "")
                     + (f", {s['shrink_runs']} shrink runs" if s["shrink_runs"] else ""))
    for backend, s in per_backend.items():
        if s.get("slowest"):
            lines += ["", f"slowest {backend} program ({s['slowest']['seconds']:.1f} s):", s["slowest"]["source"].rstrip()]
    lines += ["", f"distinct failures: {len(failures)}"]
    for i, f in enumerate(summary["failures"], 1):
        kind, message, phase = f["key"]
        lines += ["", f"== failure {i}: {kind} during {phase} ({f['count']} programs) ==", f"   {message}"]
        if "source" in f:
            lines += ["-- shrunk program --", f["source"].rstrip(), "-- message --", f["message"].rstrip()]
    if caught:
        lines += ["", "warnings (distinct first lines, with the number of chunks x places that raised them):"]
        lines += [f"  {n:5d}  {text}" for text, n in sorted(caught.items(), key=lambda kv: -kv[1])]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.txt"), "w") as fh:
        fh.write(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", type=int, default=0, help="programs to run on the interpreter backend")
    parser.add_argument("--numba", type=int, default=0, help="programs to run on the numba_cpu backend")
    parser.add_argument("--out", default="runs/fuzz-campaign", help="directory for chunk records and the summary")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)), help="worker processes")
    parser.add_argument("--chunk", type=int, default=50, help="programs per chunk (the unit of resuming)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed: a new seed draws new programs")
    parser.add_argument("--max-ops", type=int, default=6, help="ops per program before the extra parameters")
    parser.add_argument("--shrink-seconds", type=float, default=180, help="CPU-seconds to shrink one new failure")
    parser.add_argument("--summary", action="store_true", help="only rebuild the summary from the chunks")
    args = parser.parse_args(argv)
    os.makedirs(os.path.join(args.out, "chunks"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "running"), exist_ok=True)
    if args.summary:
        print(summarize(args.out))
        return 0
    todo = [c for c in plan(args) if not os.path.exists(chunk_path(args.out, c[0], c[1]))]
    done_before = len(plan(args)) - len(todo)
    print(f"fuzz campaign: {len(todo)} chunks to run ({done_before} already done) on {args.workers} workers; "
          f"records in {args.out}", flush=True)
    _worker_setup()
    os.environ.setdefault("GRAPHC_CACHE_DIR", os.path.join(os.path.abspath(args.out), "kernel-cache"))
    t0 = time.perf_counter()
    totals = {b: 0 for b in BACKENDS}
    pending = list(todo)
    while pending:
        pending = _run_pool(args, pending, totals, t0)
    print(summarize(args.out, time.perf_counter() - t0), flush=True)
    return 0


def _run_pool(args, todo, totals, t0):
    """Run chunks until done or the pool breaks (a worker died); return the chunks still to run."""
    context = multiprocessing.get_context("spawn")
    left = list(todo)
    # A fresh worker per chunk: a process keeps every module it compiled (numba never frees compiled code),
    # and workers that ran 20 numba chunks each grew to 11.5 GB and ran this machine out of memory.
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, max_tasks_per_child=1) as pool:
        running = {}

        def submit():
            while left and len(running) < args.workers:
                backend, index, seed, size = left.pop(0)
                future = pool.submit(run_chunk, backend, index, seed, size, args.max_ops, args.shrink_seconds,
                                     known_keys(args.out), progress_path(args.out, backend, index))
                running[future] = (backend, index, seed, size)

        submit()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                backend, index, seed, size = running.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:
                    # A worker died (e.g. a segfault in generated code): record it and start a fresh pool.
                    record = {"backend": backend, "index": index, "seed": seed, "programs": 0, "shrink_runs": 0,
                              "seconds": 0.0, "counts": [[["WorkerDied", "a worker process died", backend], 1]],
                              "found": []}
                    _write_json(chunk_path(args.out, backend, index), record)
                    return left + [c for c in running.values()]
                _write_json(chunk_path(args.out, backend, index), record)
                if os.path.exists(progress_path(args.out, backend, index)):
                    os.remove(progress_path(args.out, backend, index))
                totals[backend] += record["programs"]
                elapsed = time.perf_counter() - t0
                n_failures = len({tuple(f["key"]) for c in load_chunks(args.out) for f in c["found"]})
                print(f"[{elapsed:7.0f} s] {backend} chunk {index}: {record['programs']} programs in "
                      f"{record['seconds']:.0f} s; this session: "
                      + ", ".join(f"{b} {n}" for b, n in totals.items())
                      + f"; distinct failures so far: {n_failures}", flush=True)
            submit()
    return left


if __name__ == "__main__":
    sys.exit(main())
