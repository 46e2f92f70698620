"""benchmarks/fuzz_campaign.py end to end on a few programs: chunks, resume, summary, no stale progress files."""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CAMPAIGN = ROOT / "benchmarks" / "fuzz_campaign.py"


def run_campaign(out, *extra):
    return subprocess.run([sys.executable, str(CAMPAIGN), "--interpreter", "6", "--numba", "2", "--chunk", "3",
                           "--workers", "2", "--max-ops", "2", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_a_small_campaign_writes_its_summary_and_resumes(tmp_path):
    first = run_campaign(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backends"]["interpreter"]["programs"] == 6
    assert summary["backends"]["numba_cpu"]["programs"] == 2
    assert summary["distinct_failures"] == 0, summary["failures"]
    assert summary["backends"]["numba_cpu"]["slowest"]["source"].startswith("# seed")   # a program's text
    assert "slowest numba_cpu program" in (tmp_path / "summary.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "interpreter-00000.json", "interpreter-00001.json", "numba_cpu-00000.json"]
    assert list((tmp_path / "running").iterdir()) == []   # finished chunks leave no progress file

    again = run_campaign(tmp_path)   # every chunk is on disk: nothing runs again
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 chunks to run (3 already done)" in again.stdout
