-- Dimension coordinates whose values repeat (a non-unique index: selecting labels along it
-- is ambiguous), e.g. NEMO's `time_counter` = 0 in every file of a concatenated series:
-- one row per such coordinate array, severity warning, with the number of repeated values
-- and the most repeated one. Legal (xarray keeps such an index), so not an error.
-- No parameters. Tables: coord_values(dim, i, value DOUBLE, label), the decoded values of
-- the 1-D dimension coordinates (``dim`` holds the array name).
WITH repeated AS (
    SELECT dim, value, min(label) AS label, count(*) AS n
    FROM coord_values
    GROUP BY dim, value
    HAVING count(*) > 1
),
per_coord AS (
    SELECT dim, sum(n) AS n_values, arg_max(label, n) AS example, max(n) AS most
    FROM repeated GROUP BY dim
)
SELECT 'duplicate_coordinate_values' AS kind, 'warning' AS severity, p.dim AS "array",
       CAST(NULL AS INTEGER[]) AS chunk, CAST(NULL AS VARCHAR) AS source,
       p.n_values || ' of ' || t.total || ' values repeat (e.g. ' || p.example || ' appears '
           || p.most || ' times): selecting labels along this coordinate is ambiguous'
           AS detail
FROM per_coord p
JOIN (SELECT dim, count(*) AS total FROM coord_values GROUP BY dim) t USING (dim)
ORDER BY p.dim
