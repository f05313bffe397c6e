-- The arrays table after selecting [$a, $b) along dimension $dim: one row per array, the
-- extent along $dim set to $b - $a for arrays that have it.
-- Parameters: $a, $b. Tables: arrays (with a pos column for row order), plan (from subset_plan).
SELECT a."array", a.dims,
       CASE WHEN p.d IS NULL THEN a.shape
            ELSE list_transform(a.shape, lambda s, i: CASE WHEN i = p.d + 1 THEN CAST($b - $a AS BIGINT) ELSE s END)
       END AS shape,
       a.chunk_shape, a.dtype, a.fill_value, a.codecs, a.attrs, a.attr_dtypes
FROM arrays a
LEFT JOIN plan p ON p."array" = a."array"
ORDER BY a.pos
