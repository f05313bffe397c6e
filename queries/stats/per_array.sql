-- Storage of each array: one row per array with its chunk counts, stored bytes (referenced
-- plus inline), decoded bytes (stored chunks decode to the full chunk_shape) and the
-- compression ratio decoded / stored, plus the smallest, median and largest chunk.
-- No parameters. Tables: arrays, chunks, itemsizes("array", itemsize).
WITH c AS (
    SELECT "array", count(*) AS chunks, count(data) AS inline_chunks,
           coalesce(sum(length), 0) AS stored_bytes,
           min(length) AS min_chunk_bytes, median(length) AS median_chunk_bytes,
           max(length) AS max_chunk_bytes
    FROM chunks GROUP BY "array"
)
SELECT a."array", a.dtype, a.shape, a.chunk_shape,
       coalesce(c.chunks, 0) AS chunks, coalesce(c.inline_chunks, 0) AS inline_chunks,
       CAST(coalesce(c.stored_bytes, 0) AS BIGINT) AS stored_bytes,
       CAST(coalesce(c.chunks, 0) * list_reduce(list_prepend(CAST(1 AS BIGINT), coalesce(a.chunk_shape, a.shape)), lambda x, y: x * y)
            * i.itemsize AS BIGINT) AS decoded_bytes,
       CASE WHEN coalesce(c.stored_bytes, 0) > 0
            THEN coalesce(c.chunks, 0) * list_reduce(list_prepend(CAST(1 AS BIGINT), coalesce(a.chunk_shape, a.shape)), lambda x, y: x * y)
                 * i.itemsize / c.stored_bytes END AS compression_ratio,
       c.min_chunk_bytes, c.median_chunk_bytes, c.max_chunk_bytes
FROM arrays a
LEFT JOIN c ON c."array" = a."array"
LEFT JOIN itemsizes i ON i."array" = a."array"
ORDER BY stored_bytes DESC, a."array"
