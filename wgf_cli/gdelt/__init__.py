"""GDELT events: ingestion, cleaning, daily descriptors and training sequences.

GDELT events: ingestion, cleaning, daily descriptors and training sequences (``wgf gdelt-build``),
and forecasting models trained on them (``wgf gdelt-train``).
"""
