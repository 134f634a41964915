//! What the guardrail's integration tests share.

/// The embedding model's directory: `BW_MODEL_DIR`, else the checkout's `.bw/models` (where
/// `scripts/bw setup` puts it).
pub fn model_dir() -> std::path::PathBuf {
    std::env::var("BW_MODEL_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.bw/models/all-MiniLM-L6-v2"),
        std::path::PathBuf::from,
    )
}
