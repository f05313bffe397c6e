"""netCDF-4 semantics on top of HDF5: dimension names and dimension-only datasets.

- An axis with an attached dimension scale is named by the scale dataset's base name
  (``DIMENSION_LIST`` -> scale -> name), as netCDF-4 and h5netcdf do; a dimension scale
  itself (a coordinate variable) names its first axis after itself.
- Datasets whose ``NAME`` attribute starts with ``This is a netCDF dimension but not a
  netCDF variable`` only carry a dimension's name and length: they are not arrays.
- Axes without a scale (plain HDF5 files) get phony dimensions, named like h5netcdf's
  ``phony_dims="sort"``: per group, each length needs as many ``phony_dim_N`` as the most
  unlabeled axes of that length any one dataset has; ``N`` counts up through the file in
  group order, and a dataset's unlabeled axes of one length take that group's phony
  dimensions of that length in order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

NETCDF_DIM_ONLY = b"This is a netCDF dimension but not a netCDF variable"


def _attr_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    try:
        return bytes(value)
    except (TypeError, ValueError):
        return b""


def is_dimension_only(dset: Any) -> bool:
    """True for netCDF-4 datasets that only name a dimension (not a netCDF variable)."""
    if "NAME" not in dset.attrs:
        return False
    try:
        name = dset.attrs["NAME"]
    except (OSError, TypeError, ValueError):
        return False
    return _attr_bytes(name).startswith(NETCDF_DIM_ONLY)


def scale_paths(dset: Any) -> list[Any]:
    """For each axis, the path of its first attached dimension scale, else None."""
    from h5py import h5r

    paths: list[Any] = [None] * dset.ndim
    if "DIMENSION_LIST" in dset.attrs:
        # the attribute holds each axis's scale references; reading it once and naming the
        # first reference is what ``dset.dims[axis][0].name`` does, without h5py opening
        # every scale as a Dataset and re-reading the attribute per axis (~0.2 ms per axis)
        try:
            per_axis = dset.attrs["DIMENSION_LIST"]
            for axis in range(min(dset.ndim, len(per_axis))):
                refs = per_axis[axis]
                if len(refs):
                    paths[axis] = _decoded(h5r.get_name(refs[0], dset.id))
        except (OSError, RuntimeError, ValueError, KeyError):
            paths = [None] * dset.ndim  # dangling references: treat as unlabeled
    return paths


def scale_names(dset: Any) -> list[str | None]:
    """For each axis, the base name of its first attached dimension scale, else None."""
    names = [p.split("/")[-1] if isinstance(p, str) else p for p in scale_paths(dset)]
    if dset.ndim and names[0] is None and is_dimension_scale(dset):
        names[0] = dset.name.split("/")[-1]  # a coordinate variable is its own dimension
    return names


def _decoded(name: bytes) -> Any:
    """An object path as h5py's ``.name`` gives it: UTF-8 text, else the bytes."""
    try:
        return name.decode("utf8")
    except UnicodeDecodeError:
        return name


def is_dimension_scale(dset: Any) -> bool:
    """True for datasets marked ``CLASS="DIMENSION_SCALE"`` (netCDF coordinate variables)."""
    try:
        return _attr_bytes(dset.attrs.get("CLASS", b"")) == b"DIMENSION_SCALE"
    except (OSError, TypeError, ValueError):
        return False


class PhonyDims:
    """Assigns ``phony_dim_N`` names to unlabeled axes, group by group."""

    def __init__(self) -> None:
        self._next = 0

    def name_group(
        self, datasets: list[tuple[tuple[int, ...], list[str | None]]]
    ) -> list[list[str]]:
        """Dimension names for each ``(shape, scale_names)`` of one group's datasets, in order."""
        needed: Counter[int] = Counter()
        for shape, names in datasets:
            unlabeled = Counter(size for size, n in zip(shape, names, strict=True) if n is None)
            needed |= unlabeled
        pool: dict[int, list[str]] = {}
        for size, count in needed.items():
            pool[size] = [f"phony_dim_{self._next + i}" for i in range(count)]
            self._next += count
        out = []
        for shape, names in datasets:
            used: Counter[int] = Counter()
            dims = []
            for size, n in zip(shape, names, strict=True):
                if n is None:
                    n = pool[size][used[size]]
                    used[size] += 1
                dims.append(n)
            out.append(dims)
        return out


def unlimited_axes(dset: Any) -> list[tuple[int, str]]:
    """``(axis, scale path)`` for each unlimited axis of ``dset`` with an attached scale."""
    maxshape = dset.maxshape or ()
    out: list[tuple[int, str]] = []
    if not any(m is None for m in maxshape):
        return out
    paths = scale_paths(dset)
    for axis, m in enumerate(maxshape):
        if m is not None:
            continue
        path = paths[axis] if axis < len(paths) else None
        if path is None and axis == 0 and is_dimension_scale(dset):
            path = dset.name
        if path is not None:
            out.append((axis, path))
    return out
