-- Disagreements between pieces about to be concatenated or merged: one row per (array,
-- piece, property) where the piece differs from the first piece holding the array, for
-- dtype, codecs (compared without compression levels), fill value, dims, shape outside the
-- concatenated dimension, and the CF attributes units, calendar, scale_factor, add_offset,
-- _FillValue, missing_value. With $dim set, an array that has $dim but is absent from a piece is
-- reported too (kind disagree_presence).
-- Parameters: $dim (concatenated dimension, NULL for merge).
-- Tables: piece_arrays (arrays + piece, codecs_key, label), piece_labels(piece, label).
WITH a AS (
    SELECT *, coalesce(list_position(dims, $dim), 0) AS dpos FROM piece_arrays
),
firsts AS (
    SELECT * FROM a QUALIFY row_number() OVER (PARTITION BY "array" ORDER BY piece) = 1
),
props AS (
    SELECT a."array", a.label, f.label AS first_label,
           unnest([
               {'what': 'dtype', 'here': a.dtype, 'there': f.dtype},
               {'what': 'codecs', 'here': a.codecs_key, 'there': f.codecs_key},
               {'what': 'fill_value', 'here': a.fill_value, 'there': f.fill_value},
               {'what': 'dims', 'here': CAST(a.dims AS VARCHAR), 'there': CAST(f.dims AS VARCHAR)},
               {'what': 'shape',
                'here': CAST(list_transform(a.shape, lambda s, i: CASE WHEN i = a.dpos THEN NULL ELSE s END) AS VARCHAR),
                'there': CAST(list_transform(f.shape, lambda s, i: CASE WHEN i = f.dpos THEN NULL ELSE s END) AS VARCHAR)},
               {'what': 'units', 'here': CAST(json_extract(a.attrs, '$.units') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$.units') AS VARCHAR)},
               {'what': 'calendar', 'here': CAST(json_extract(a.attrs, '$.calendar') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$.calendar') AS VARCHAR)},
               {'what': 'scale_factor', 'here': CAST(json_extract(a.attrs, '$.scale_factor') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$.scale_factor') AS VARCHAR)},
               {'what': 'add_offset', 'here': CAST(json_extract(a.attrs, '$.add_offset') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$.add_offset') AS VARCHAR)},
               {'what': '_FillValue', 'here': CAST(json_extract(a.attrs, '$._FillValue') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$._FillValue') AS VARCHAR)},
               {'what': 'missing_value', 'here': CAST(json_extract(a.attrs, '$.missing_value') AS VARCHAR),
                'there': CAST(json_extract(f.attrs, '$.missing_value') AS VARCHAR)}
           ], recursive := true)
    FROM a JOIN firsts f ON f."array" = a."array"
    WHERE a.piece <> f.piece
),
absent AS (
    SELECT f."array", p.label, f.label AS first_label
    FROM firsts f
    CROSS JOIN piece_labels p
    WHERE $dim IS NOT NULL AND f.dpos > 0
      AND NOT EXISTS (SELECT 1 FROM piece_arrays x WHERE x."array" = f."array" AND x.piece = p.piece)
)
SELECT 'disagree_' || what AS kind, 'error' AS severity, "array", CAST(NULL AS INTEGER[]) AS chunk,
       label AS source,
       what || ' is ' || coalesce(here, '(absent)') || ' here but ' || coalesce(there, '(absent)')
           || ' in ' || first_label AS detail
FROM props
WHERE here IS DISTINCT FROM there
UNION ALL
SELECT 'disagree_presence', 'error', "array", CAST(NULL AS INTEGER[]), label,
       'array is missing here but present in ' || first_label
FROM absent
ORDER BY 3, 1, 5
