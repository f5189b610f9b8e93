"""A person's verdicts beside the judges': which image of a pair they prefer, how often each judge agrees with
them (the paper's pairwise measure, with a 95% interval), the next pair worth judging, the preference-pairs
file they take away (and `imagereward train` reads), and the store an operator may keep them in.

Light on purpose (no torch): the page's every verdict and the command line's report go through it.
"""

from __future__ import annotations

from .agreement import Agreement, agreement, report, wilson
from .next_pair import next_pairs, pair_key
from .pairs import DECIDED, VERDICTS, Verdict, read_pairs, write_pairs

__all__ = [
    "DECIDED",
    "VERDICTS",
    "Agreement",
    "Verdict",
    "agreement",
    "next_pairs",
    "pair_key",
    "read_pairs",
    "report",
    "wilson",
    "write_pairs",
]
