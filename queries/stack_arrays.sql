-- The arrays table of a concatenation along a NEW dimension $dim (stacking): one row per
-- array. Arrays listed in stacked get $dim in front (extent = number of pieces, stored
-- chunk extent 1); other arrays are the first piece's rows unchanged.
-- Parameters: $dim (new dimension name), $n_pieces. Tables: piece_arrays, stacked("array").
SELECT a."array",
       CASE WHEN s."array" IS NULL THEN a.dims ELSE list_prepend($dim, a.dims) END AS dims,
       CASE WHEN s."array" IS NULL THEN a.shape
            ELSE list_prepend(CAST($n_pieces AS BIGINT), a.shape) END AS shape,
       CASE WHEN s."array" IS NULL THEN a.chunk_shape
            ELSE list_prepend(CAST(1 AS BIGINT), a.chunk_shape) END AS chunk_shape,
       a.dtype, a.fill_value, a.codecs, a.attrs, a.attr_dtypes
FROM piece_arrays a
LEFT JOIN stacked s ON s."array" = a."array"
WHERE a.piece = 0
ORDER BY a.pos
