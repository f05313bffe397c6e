"""A small real netCDF4 archive (daily files, one per month) written by netCDF-C."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzsql.demo import write_archive


@pytest.fixture(scope="session")
def monthly_archive(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_archive(tmp_path_factory.mktemp("archive"), months=3)
