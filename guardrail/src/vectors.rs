//! The training split's all-MiniLM-L6-v2 vectors, shipped with the source
//! (`guardrail/model/train.vectors`) so that a guardrail starts in milliseconds instead of embedding
//! a thousand examples (~30 s on two cores). `betterworld guardrail train` writes the file; it names
//! the SHA-256 of the split it was computed from, and a file that does not match the compiled-in
//! split is ignored (the classifier then embeds the split itself, and a test fails until the file is
//! written again).
//!
//! Format: one header line `bw-vectors 1 <model> <dimensions> <count> <sha256 of train.jsonl>\n`,
//! then `count × dimensions` little-endian `f32`, in the split's order.

use sha2::{Digest, Sha256};

use crate::{GuardrailError, corpus, embed};

/// The shipped file (empty until `guardrail train` has written it).
const SHIPPED: &[u8] = include_bytes!("../model/train.vectors");

/// Where `guardrail train` writes it in a checkout.
pub fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/train.vectors")
}

/// The SHA-256 (hex) of a split's text.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The shipped vectors of the compiled-in training split, if the file matches it.
pub fn shipped() -> Option<Vec<Vec<f32>>> {
    decode(SHIPPED, corpus::TRAIN).ok()
}

/// The vectors in `bytes`, if they were computed by this model from exactly `split`.
pub fn decode(bytes: &[u8], split: &str) -> Result<Vec<Vec<f32>>, GuardrailError> {
    let corrupt = |why: &str| GuardrailError::Corrupt(format!("train.vectors: {why}"));
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no header"))?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt("header"))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, "1", model, dims, count, sha] = fields.as_slice() else {
        return Err(corrupt("header"));
    };
    if *magic != "bw-vectors" || *model != embed::MODEL {
        return Err(corrupt("another model or format"));
    }
    if *sha != digest(split) {
        return Err(corrupt("computed from another version of train.jsonl"));
    }
    let dims: usize = dims.parse().map_err(|_| corrupt("dimensions"))?;
    let count: usize = count.parse().map_err(|_| corrupt("count"))?;
    let body = &bytes[newline + 1..];
    if dims != embed::DIMENSIONS || body.len() != count * dims * 4 {
        return Err(corrupt("size"));
    }
    Ok(body
        .chunks_exact(dims * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

/// The file's bytes for `vectors` computed from `split`.
pub fn encode(vectors: &[Vec<f32>], split: &str) -> Vec<u8> {
    let mut out = format!(
        "bw-vectors 1 {} {} {} {}\n",
        embed::MODEL,
        embed::DIMENSIONS,
        vectors.len(),
        digest(split)
    )
    .into_bytes();
    for v in vectors {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Embeds every item of `split` (the text of a split file; blocking, CPU-bound: about 30 ms per
/// item on two cores).
pub fn compute(embedder: &embed::Embedder, split: &str) -> Result<Vec<Vec<f32>>, GuardrailError> {
    let items = corpus::parse(split, "split")?;
    let texts: Vec<String> = items
        .iter()
        .map(|i| bw_domain::guardrail::normalise(&i.text))
        .collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(16) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(embedder.embed(&refs)?);
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_a_changed_split_is_refused() {
        let vectors = vec![
            vec![0.5f32; embed::DIMENSIONS],
            vec![-0.25f32; embed::DIMENSIONS],
        ];
        let bytes = encode(&vectors, "two lines\n");
        assert_eq!(decode(&bytes, "two lines\n").expect("decodes"), vectors);
        assert!(decode(&bytes, "two lines, edited\n").is_err());
        assert!(decode(&bytes[..bytes.len() - 1], "two lines\n").is_err());
    }

    #[test]
    fn the_shipped_vectors_match_the_compiled_in_training_split() {
        // Fails after train.jsonl changes until `betterworld guardrail train` writes them again.
        let vectors = shipped().expect("guardrail/model/train.vectors is current");
        assert_eq!(vectors.len(), corpus::train().expect("train").len());
    }
}
