"""GDELT: from raw event files to daily descriptors (gdelt-build) and next-day forecasts (gdelt-train)."""
