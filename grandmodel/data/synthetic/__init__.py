"""Seeded synthetic one-minute ES bars on the CME session calendar (see ``generate``)."""

from grandmodel.data.synthetic.calendar import session_index
from grandmodel.data.synthetic.generators import REGIMES, generate

__all__ = ["REGIMES", "generate", "session_index"]
