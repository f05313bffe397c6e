"""Writers: manifest tables -> published formats (kerchunk JSON/Parquet, Icechunk, Zarr copies)."""
