-- Search through binary sketches, re-ranked by the exact distance.
--
-- Each row keeps the sign bits of its embedding (`sketch`, binary_quantize: 1536 dims ->
-- 192 bytes), kept in step with the embedding by Postgres itself (a stored generated column).
-- A search takes the `candidates` rows whose sketches are nearest in Hamming distance, then
-- orders those by the exact cosine distance:
-- - within a session: the session's sketches from a covering index (an index-only scan of
--   ~220-byte entries instead of one 6 kB heap page per row, and a popcount instead of 1536
--   multiplications), so even a 30,000-row session is cheap to scan whole;
-- - across sessions (and within very large sessions): an HNSW graph over the sketches, 16x
--   smaller than one over the vectors, built in a fraction of the time, and cheaper to insert
--   into.
-- The graph over the full vectors is dropped: nothing searches it any more, and every insert
-- paid for it. benchmarks/pgvector_search.py measures the recall of the re-ranked search
-- against the exact top 10 (docs/arena-memory.md).
-- Adding the generated column rewrites the table once (about a minute per 100k rows of 1536
-- dims on 2 cores), inside this migration's transaction.
ALTER TABLE arena_embeddings ADD COLUMN IF NOT EXISTS sketch bit({{dimensions}})
    GENERATED ALWAYS AS (binary_quantize(embedding)::bit({{dimensions}})) STORED;

CREATE INDEX IF NOT EXISTS arena_embeddings_session_sketch
    ON arena_embeddings (session) INCLUDE (id, sketch);

CREATE INDEX IF NOT EXISTS arena_embeddings_sketch_hnsw
    ON arena_embeddings USING hnsw (sketch bit_hamming_ops) WITH (m = 16, ef_construction = 128);

DROP INDEX IF EXISTS arena_embeddings_embedding_hnsw;
