"""Zarr v3 codecs that legacy data needs and Zarr does not ship.

Each codec is a small ``zarr.abc.codec`` class registered under the ``zarr.codecs`` entry
point group (see ``pyproject.toml``), so zarr, xarray and Icechunk readers find it by its
name (``vzsql.hdf5_lz4``, ...) without importing vzsql by hand.

- ``vzsql.codecs.hdf5``: HDF5 filters whose byte streams no standard codec reads (the lz4
  filter's block framing, raw LZF, SZIP with HDF5's size header).
- ``vzsql.codecs.encode``: numpy array + ``arrays`` row -> encoded chunk bytes (inline chunks).
"""
