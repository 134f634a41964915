-- The semantic index (issue #5): approved problems and solutions with their embedding and a
-- full-text vector. Rebuildable from the log; embeddings are cached outside it.

CREATE TABLE rm_search (
    content_type text NOT NULL,
    content_id   uuid NOT NULL,
    domain       text,
    title        text NOT NULL,
    body         text NOT NULL,
    model        text NOT NULL,
    embedding    vector(384) NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || body)) STORED,
    indexed_at   timestamptz NOT NULL,
    position     bigint NOT NULL,
    PRIMARY KEY (content_type, content_id)
);
CREATE INDEX rm_search_embedding ON rm_search USING hnsw (embedding vector_cosine_ops);
CREATE INDEX rm_search_tsv ON rm_search USING gin (tsv);

-- Embeddings by model and SHA-256 of the text: re-judging and rebuilding reuse them.
CREATE TABLE embedding_cache (
    model       text NOT NULL,
    text_sha256 bytea NOT NULL,
    embedding   vector(384) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_sha256)
);
