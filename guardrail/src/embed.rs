//! Sentence embeddings with all-MiniLM-L6-v2 in process (candle, CPU): tokenise (padding to the
//! longest text of the batch, truncation at 256 tokens) → BERT → mean over the attention mask →
//! L2-normalise. 384 dimensions. The model files come from `BW_MODEL_DIR` (`scripts/bw` fetches and
//! verifies them); nothing is downloaded at build or run time.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::GuardrailError;

/// The model's name as recorded with every vector and verdict.
pub const MODEL: &str = "all-MiniLM-L6-v2";
/// Vector length.
pub const DIMENSIONS: usize = 384;
/// Longest input, in tokens.
const MAX_TOKENS: usize = 256;

/// The embedder. CPU-bound: call [`Embedder::embed`] from a blocking thread.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &MODEL)
            .finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> GuardrailError {
    GuardrailError::Classifier {
        classifier: MODEL.to_owned(),
        reason: format!("{what}: {e}"),
    }
}

impl Embedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, GuardrailError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| failed(&format!("{}/{name}", dir.display()), e))
        };
        let config: Config =
            serde_json::from_slice(&read("config.json")?).map_err(|e| failed("config.json", e))?;
        let weights =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DTYPE, &Device::Cpu)
                .map_err(|e| failed("model.safetensors", e))?;
        let model = BertModel::load(weights, &config).map_err(|e| failed("model", e))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| failed("tokenizer.json", e))?;
        // The shipped tokenizer pads everything to 128 tokens; pad to the batch's longest instead.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| failed("truncation", e))?;
        Ok(Self { model, tokenizer })
    }

    /// Unit vectors of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, GuardrailError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| failed("tokenize", e))?;
        let rows =
            |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, GuardrailError> {
                let rows = encodings
                    .iter()
                    .map(|e| Tensor::new(f(e).as_slice(), &Device::Cpu))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed("tensor", e))?;
                Tensor::stack(&rows, 0).map_err(|e| failed("tensor", e))
            };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let type_ids = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let pooled = (|| {
            let output = self.model.forward(&ids, &type_ids, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = output.broadcast_mul(&mask)?.sum(1)?;
            let mean = sum.broadcast_div(&mask.sum(1)?)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })()
        .map_err(|e| failed("forward", e))?;
        Ok(pooled)
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
