-- Which chunk rows a stack along a new leading dimension keeps, and how their index changes:
-- one row per kept (piece, array). Arrays listed in stacked keep the rows of every piece with
-- the piece number put in front of their index (lead); other arrays keep the first piece's
-- rows unchanged. d is always NULL, shift 0. Applied by vzsql.ops.piece_chunks.
-- No parameters. Tables: piece_arrays, stacked("array").
SELECT a.piece, a."array", CAST(NULL AS SMALLINT) AS d, CAST(0 AS BIGINT) AS shift,
       CASE WHEN s."array" IS NULL THEN NULL ELSE a.piece END AS lead
FROM piece_arrays a
LEFT JOIN stacked s ON s."array" = a."array"
WHERE s."array" IS NOT NULL OR a.piece = 0
