"""Seeded synthetic one-minute ES bars on the CME session calendar (see ``generate``), and the
stylised facts and realism scores that judge any return series (``stylised_facts``)."""

from grandmodel.data.synthetic.calendar import session_index
from grandmodel.data.synthetic.facts import (
    StylisedFacts,
    discriminative_score,
    stylised_facts,
    train_synthetic_test_real,
)
from grandmodel.data.synthetic.generators import REGIMES, generate

__all__ = [
    "REGIMES",
    "StylisedFacts",
    "discriminative_score",
    "generate",
    "session_index",
    "stylised_facts",
    "train_synthetic_test_real",
]
