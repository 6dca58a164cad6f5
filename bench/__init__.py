"""stepstone's benchmarks against its peers, every system in one run on one machine.

`python -m bench` (full) or `python -m bench --quick`; see bench/FINDINGS.md.
"""
