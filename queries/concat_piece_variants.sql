-- The distinct variants of each array among pieces about to be concatenated or merged: one
-- row of piece_arrays per distinct (array, the properties checks/piece_disagreement compares),
-- the first piece holding that variant, plus incomplete: the array has $dim but some piece
-- lacks it. Thousands of pieces of one series usually hold one variant per array, so the
-- disagreement check runs over these rows, and over all pieces only if they differ.
-- Parameters: $dim (concatenated dimension, NULL for merge). Tables: piece_arrays (arrays +
-- piece, codecs_key, label), piece_labels(piece, label).
WITH masked AS (
    -- the extent along $dim may differ between pieces: left out of the comparison
    SELECT "array", dtype, codecs_key, fill_value, dims, attrs, piece,
           list_transform(shape, lambda s, i:
               CASE WHEN i = coalesce(list_position(dims, $dim), 0) THEN NULL ELSE s END) AS shape_
    FROM piece_arrays
),
exact AS (
    -- cheap first pass: identical rows (attributes included) are one variant
    SELECT "array", dtype, codecs_key, fill_value, dims, shape_, attrs,
           min(piece) AS piece
    FROM masked GROUP BY ALL
),
variants AS (
    SELECT "array", piece FROM exact
    QUALIFY row_number() OVER (
        PARTITION BY "array", dtype, codecs_key, fill_value, dims, shape_,
            CAST(json_extract(attrs, '$.units') AS VARCHAR),
            CAST(json_extract(attrs, '$.calendar') AS VARCHAR),
            CAST(json_extract(attrs, '$.scale_factor') AS VARCHAR),
            CAST(json_extract(attrs, '$.add_offset') AS VARCHAR),
            CAST(json_extract(attrs, '$._FillValue') AS VARCHAR),
            CAST(json_extract(attrs, '$.missing_value') AS VARCHAR)
        ORDER BY piece) = 1
),
held AS (
    SELECT "array", count(DISTINCT piece) AS n FROM piece_arrays GROUP BY "array"
)
SELECT a.*,
       coalesce(list_contains(a.dims, $dim), false)
           AND h.n < (SELECT count(*) FROM piece_labels) AS incomplete
FROM piece_arrays a
JOIN variants v ON v."array" = a."array" AND v.piece = a.piece
JOIN held h ON h."array" = a."array"
ORDER BY a."array", a.piece
