-- The arrays table of a concatenation along an existing dimension: one row per array, the
-- first piece's row with the extent along the concatenated dimension summed over pieces.
-- Arrays without that dimension are the first piece's rows unchanged.
-- No parameters. Tables: piece_arrays, offsets (from concat_offsets).
WITH firsts AS (
    SELECT "array", min(piece) AS piece FROM piece_arrays GROUP BY "array"
),
totals AS (
    SELECT "array", any_value(d) AS d, CAST(sum(extent) AS BIGINT) AS extent
    FROM offsets GROUP BY "array"
)
SELECT a."array", a.dims,
       CASE WHEN t.d IS NULL THEN a.shape
            ELSE list_transform(a.shape, lambda s, i: CASE WHEN i = t.d + 1 THEN t.extent ELSE s END)
       END AS shape,
       a.chunk_shape, a.dtype, a.fill_value, a.codecs, a.attrs, a.attr_dtypes
FROM piece_arrays a
JOIN firsts f ON f."array" = a."array" AND f.piece = a.piece
LEFT JOIN totals t ON t."array" = a."array"
ORDER BY a.piece, a.pos
