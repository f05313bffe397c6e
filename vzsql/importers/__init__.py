"""Importers: existing reference sets (kerchunk JSON/Parquet, Icechunk) -> manifest tables."""
