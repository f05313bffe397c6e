-- Distribution of stored chunk sizes: one row per (array, power-of-two size bucket) with
-- the number of chunks whose length is in [bucket, 2 * bucket).
-- No parameters. Tables: chunks.
SELECT "array",
       CAST(CASE WHEN length >= 1 THEN pow(2, floor(log2(length))) ELSE 0 END AS BIGINT) AS bucket,
       count(*) AS chunks, CAST(sum(length) AS BIGINT) AS bytes
FROM chunks
GROUP BY ALL
ORDER BY "array", bucket
