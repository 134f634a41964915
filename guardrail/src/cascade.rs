//! The cascade (`BW_GUARDRAIL_CLASSIFIER=cascade`): the local semantic classifier judges first; only
//! when it is unsure — its calibrated top-class probability is below `confident` — is the content
//! sent to a second judge (the LLM). If that judge fails or is over budget the assessment is `None`
//! and an admin decides. So the LLM is asked about the uncertain band alone: on the held-out test
//! split that is the share `betterworld guardrail eval` reports under "cascade".

use std::sync::Arc;

use bw_domain::guardrail::{Assessment, ContentType, Explanation};
use futures::future::BoxFuture;

use crate::{Classifier, GuardrailError, classifier::Semantic};

/// The default confidence below which the LLM is asked: on the dev split 17.5 % of items fall
/// below it, on the held-out test split 20.4 % (`betterworld guardrail eval`, docs/guardrails.md).
pub const DEFAULT_CONFIDENT: f64 = 0.55;

/// The calibrated probability of the class the explanation's model finds likeliest.
pub fn confidence(explanation: &Explanation) -> f64 {
    explanation
        .approve
        .max(explanation.flag)
        .max(explanation.reject)
}

/// The local classifier, then `judge` for what it is unsure of.
#[derive(Debug)]
pub struct Cascade {
    local: Arc<Semantic>,
    judge: Arc<dyn Classifier>,
    confident: f64,
    name: String,
}

impl Cascade {
    /// `local` first; `judge` when `local`'s confidence is below `confident`.
    pub fn new(local: Arc<Semantic>, judge: Arc<dyn Classifier>, confident: f64) -> Self {
        let name = format!(
            "cascade({}<{confident}>{})",
            Classifier::name(&local),
            judge.name()
        );
        Self {
            local,
            judge,
            confident,
            name,
        }
    }

    /// The second opinion on an assessment `local` was unsure of: the judge's, carrying the local
    /// explanation for the admin; `None` (an admin decides) when the judge cannot answer.
    async fn escalate(
        &self,
        content_type: ContentType,
        text: &str,
        local: Assessment,
    ) -> Result<Option<Assessment>, GuardrailError> {
        match self.judge.assess(content_type, text).await {
            Ok(Some(mut judged)) => {
                judged.explanation = local.explanation;
                Ok(Some(judged))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "the cascade's judge failed; an admin decides");
                Ok(None)
            }
        }
    }
}

impl Classifier for Cascade {
    fn name(&self) -> &str {
        &self.name
    }

    fn assess<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        self.assess_embedded(content_type, text, None)
    }

    fn assess_embedded<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
        vector: Option<Vec<f32>>,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        Box::pin(async move {
            let Some(local) = self
                .local
                .assess_embedded(content_type, text, vector)
                .await?
            else {
                return Ok(None);
            };
            let sure = local
                .explanation
                .as_ref()
                .is_some_and(|e| confidence(e) >= self.confident);
            if sure {
                Ok(Some(local))
            } else {
                self.escalate(content_type, text, local).await
            }
        })
    }
}
