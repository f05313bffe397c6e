-- The sources table with URIs re-rooted: one row per source; a URI starting with $old is
-- rewritten to start with $new instead (e.g. after moving an archive into a bucket).
-- Parameters: $old, $new (URI prefixes). Tables: sources.
SELECT source_id,
       CASE WHEN starts_with(uri, $old) THEN $new || substr(uri, length($old) + 1) ELSE uri END
           AS uri,
       format, size, mtime, etag, scanned_at
FROM sources
ORDER BY source_id
