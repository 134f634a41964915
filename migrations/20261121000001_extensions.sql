-- Extensions the platform relies on. pgvector backs the similarity index of approved content
-- (all-MiniLM-L6-v2 embeddings, 384 dimensions). The set-up script builds it from Debian's source
-- package when the server does not have it.
CREATE EXTENSION IF NOT EXISTS vector;
