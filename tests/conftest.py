"""Shared pytest configuration. Fixtures that write real files live in ``tests/fixtures_*.py``."""

from __future__ import annotations

# h5py (with hdf5plugin's filters) must load its libhdf5 before netCDF4 loads its own copy:
# the other way round, hdf5plugin's blosc filter fails in h5py ("error during user callback")
import hdf5plugin  # noqa: F401  isort: skip
import h5py  # noqa: F401  isort: skip
import zarr

# vzsql serves variable-length chunk grids as Zarr's rectilinear grid
zarr.config.set({"array.rectilinear_chunks": True})

# a session-wide local S3 server (moto): the ``s3`` fixture, see tests/s3_server.py
pytest_plugins = ["tests.s3_server"]
