"""Market data: load → validate → resample → features → normalise → split → ``MarketData``."""

from grandmodel.data.market_data import Bars, MarketData
from grandmodel.data.normalise import NormStats, load_norm, save_norm
from grandmodel.data.pipeline import prepare_data
from grandmodel.data.timeframes import periods_per_year

__all__ = [
    "Bars",
    "MarketData",
    "NormStats",
    "load_norm",
    "periods_per_year",
    "prepare_data",
    "save_norm",
]
