-- The chunks table of a stack along a new leading dimension: one row per chunk. Chunks of
-- stacked arrays come from every piece with the piece number prepended to their index;
-- other arrays' chunks come from the first piece.
-- No parameters. Tables: piece_chunks (sources already renumbered), stacked("array").
SELECT c."array",
       CASE WHEN s."array" IS NULL THEN c.index ELSE list_prepend(c.piece, c.index) END AS index,
       c.source_id, c."offset", c.length, c.data
FROM piece_chunks c
LEFT JOIN stacked s ON s."array" = c."array"
WHERE s."array" IS NOT NULL OR c.piece = 0
ORDER BY c."array", c.piece, c.pos
