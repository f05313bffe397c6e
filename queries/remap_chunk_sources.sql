-- Chunks of several pieces with source ids renumbered: one row per chunk of every piece, in
-- no particular order (every consumer orders by piece and pos; sorting here cost a third of
-- a concatenation's time).
-- Tables: piece_chunks, source_map (from union_sources). No parameters.
SELECT c."array", c.index, m.source_id, c."offset", c.length, c.data, c.piece, c.pos
FROM piece_chunks c
LEFT JOIN source_map m ON m.piece = c.piece AND m.old_id = c.source_id
