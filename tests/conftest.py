"""Shared pytest configuration. Fixtures that write real files live in ``tests/fixtures_*.py``."""

from __future__ import annotations

import zarr

# vzsql serves variable-length chunk grids as Zarr's rectilinear grid
zarr.config.set({"array.rectilinear_chunks": True})
