-- Dimensions whose length differs between the arrays being merged: one row per dimension
-- (named within its group) with the distinct lengths and which piece/array has each.
-- No parameters. Tables: piece_arrays (with label).
WITH d AS (
    SELECT label, "array",
           CASE WHEN contains("array", '/') THEN regexp_replace("array", '/[^/]*$', '') ELSE '' END
               AS grp,
           unnest(dims) AS dim, unnest(shape) AS length
    FROM piece_arrays
)
SELECT grp, dim, list(DISTINCT length ORDER BY length) AS lengths,
       list(DISTINCT length || ' in ' || "array" || ' of ' || label ORDER BY length || ' in ' || "array" || ' of ' || label) AS where_
FROM d
GROUP BY grp, dim
HAVING count(DISTINCT length) > 1
ORDER BY grp, dim
