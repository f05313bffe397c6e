-- Gaps in coverage: one row per run of consecutive grid slots along a dimension of an
-- array in which no chunk exists at all, with the element range [start, stop) it covers.
-- No parameters. Tables: coverage (the result of stats/coverage).
WITH empty AS (
    SELECT *, chunk - row_number() OVER (PARTITION BY "array", dim ORDER BY chunk) AS run
    FROM coverage WHERE chunks = 0
)
SELECT "array", dim, any_value(dim_name) AS dim_name, min(chunk) AS first_chunk,
       max(chunk) AS last_chunk, min(start) AS start, max(start + length) AS stop,
       count(*) AS slots
FROM empty
GROUP BY "array", dim, run
ORDER BY "array", dim, first_chunk
