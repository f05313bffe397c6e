"""Shared pytest configuration. Fixtures that write real files live in ``tests/fixtures_*.py``."""

from __future__ import annotations

import zarr

# vzsql serves variable-length chunk grids as Zarr's rectilinear grid
zarr.config.set({"array.rectilinear_chunks": True})

# a session-wide local S3 server (moto): the ``s3`` fixture, see tests/s3_server.py
pytest_plugins = ["tests.s3_server"]
