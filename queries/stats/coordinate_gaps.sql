-- Gaps in coordinate values (e.g. missing days in a time series): one row per jump between
-- consecutive values of a dimension coordinate larger than 1.5 times its median step.
-- No parameters. Tables: coord_values(dim, i, value DOUBLE, label).
WITH steps AS (
    SELECT dim, i, value, label,
           lag(value) OVER (PARTITION BY dim ORDER BY i) AS prev_value,
           lag(label) OVER (PARTITION BY dim ORDER BY i) AS prev_label
    FROM coord_values
),
typical AS (
    SELECT dim, median(value - prev_value) AS step FROM steps
    WHERE prev_value IS NOT NULL GROUP BY dim
)
SELECT s.dim, s.i AS position, s.prev_label AS after, s.label AS before,
       s.value - s.prev_value AS jump, t.step AS typical_step,
       CAST(round((s.value - s.prev_value) / t.step) - 1 AS BIGINT) AS missing_steps
FROM steps s JOIN typical t USING (dim)
WHERE s.prev_value IS NOT NULL AND t.step > 0 AND s.value - s.prev_value > 1.5 * t.step
ORDER BY s.dim, s.i
