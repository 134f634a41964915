//! The labelled corpus (`guardrail/eval/`, described in its README): 1,693 problems, solutions and
//! debate posts labelled approve / flag / reject, in three splits. `train` and `dev` are compiled in
//! (the classifier is fitted on `train`; `dev` is for tuning); `test` is **not**: it is read from
//! disk only by `betterworld guardrail eval` and the quality tests, so nothing in the binary has seen
//! it.

use std::path::{Path, PathBuf};

use bw_domain::guardrail::ContentType;
use serde::Deserialize;

use crate::GuardrailError;

/// The training split, compiled in.
pub const TRAIN: &str = include_str!("../eval/train.jsonl");
/// The development split, compiled in.
pub const DEV: &str = include_str!("../eval/dev.jsonl");

/// Where the held-out split lives in a checkout (it is not compiled in).
pub fn test_split_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/test.jsonl")
}

/// A label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Approve,
    Flag,
    Reject,
}

impl Label {
    /// The three, in class-index order.
    pub const ALL: [Self; 3] = [Self::Approve, Self::Flag, Self::Reject];

    /// Its class index (approve 0, flag 1, reject 2).
    pub fn index(self) -> usize {
        match self {
            Self::Approve => 0,
            Self::Flag => 1,
            Self::Reject => 2,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Flag => "flag",
            Self::Reject => "reject",
        }
    }
}

/// What an item is an example of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Ordinary good content.
    Ordinary,
    /// Harm stated plainly.
    Overt,
    /// Harm under a benign title, euphemism, "for safety".
    Disguised,
    /// One half of a pair: work against a harm, or the harm itself.
    Contrastive,
    /// Text aimed at the classifier.
    Injection,
    /// Nothing to do with the fifteen domains.
    OffTopic,
    /// Genuinely needs a human.
    Borderline,
}

/// One labelled item.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub content_type: ContentType,
    pub label: Label,
    /// The harm category (or `off_topic`); for approved work against a harm, the harm it fights.
    pub category: Option<String>,
    pub domain: Option<String>,
    pub kind: Kind,
    /// `en`, `es`, `fr`, `pt`, `hi`, `sw`.
    pub language: String,
    /// The other half of a contrastive pair.
    pub pair: Option<String>,
    /// As an agent submits it (problems and solutions: title line, then the description).
    pub text: String,
}

impl Item {
    /// Harmful: anything not labelled approve (flag or reject).
    pub fn harmful(&self) -> bool {
        self.label != Label::Approve
    }

    /// Work against a harm: an approved contrastive item.
    pub fn against_harm(&self) -> bool {
        self.kind == Kind::Contrastive && self.label == Label::Approve
    }
}

/// Parses a split (`what` names it in errors).
pub fn parse(text: &str, what: &str) -> Result<Vec<Item>, GuardrailError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| GuardrailError::Corrupt(format!("{what}:{}: {e}", n + 1)))
        })
        .collect()
}

/// Reads a split from a file.
pub fn load(path: &Path) -> Result<Vec<Item>, GuardrailError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GuardrailError::Corrupt(format!("{}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// The compiled-in training split.
pub fn train() -> Result<Vec<Item>, GuardrailError> {
    parse(TRAIN, "eval/train.jsonl")
}

/// The compiled-in development split.
pub fn dev() -> Result<Vec<Item>, GuardrailError> {
    parse(DEV, "eval/dev.jsonl")
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn splits() -> Vec<(&'static str, Vec<Item>)> {
        vec![
            ("train", train().expect("train")),
            ("dev", dev().expect("dev")),
            ("test", load(&test_split_path()).expect("test")),
        ]
    }

    #[test]
    fn the_corpus_is_large_labelled_and_its_pairs_stay_in_one_split() {
        let splits = splits();
        let all: Vec<(&str, &Item)> = splits
            .iter()
            .flat_map(|(s, items)| items.iter().map(move |i| (*s, i)))
            .collect();
        assert!(all.len() >= 1_500, "{} items", all.len());
        let mut ids = HashSet::new();
        for (_, item) in &all {
            assert!(ids.insert(item.id.as_str()), "{} repeats", item.id);
            assert!(!item.text.trim().is_empty(), "{} is empty", item.id);
        }
        let split_of: HashMap<&str, &str> = all.iter().map(|(s, i)| (i.id.as_str(), *s)).collect();
        let by_id: HashMap<&str, &Item> = all.iter().map(|(_, i)| (i.id.as_str(), *i)).collect();
        for (split, item) in &all {
            let Some(pair) = &item.pair else { continue };
            let other = by_id.get(pair.as_str()).expect("pair exists");
            assert_eq!(
                other.pair.as_deref(),
                Some(item.id.as_str()),
                "{} ↔ {pair}",
                item.id
            );
            assert_eq!(
                split_of[pair.as_str()],
                *split,
                "{} and {pair} in one split",
                item.id
            );
            assert_ne!(item.label == Label::Approve, other.label == Label::Approve);
        }
    }

    #[test]
    fn the_corpus_covers_every_domain_type_category_and_language_in_the_held_out_split() {
        let splits = splits();
        let all: Vec<&Item> = splits.iter().flat_map(|(_, items)| items).collect();
        for domain in bw_domain::taxonomy::ProblemDomain::ALL {
            for content_type in [
                ContentType::Problem,
                ContentType::Solution,
                ContentType::Debate,
            ] {
                assert!(
                    all.iter().any(|i| i.label == Label::Approve
                        && i.domain.as_deref() == Some(domain.as_str())
                        && i.content_type == content_type),
                    "no approved {content_type:?} in {domain:?}"
                );
            }
        }
        for (category, _) in crate::prototypes::HARMS {
            for kind in [Kind::Overt, Kind::Disguised, Kind::Contrastive] {
                assert!(
                    all.iter().any(|i| i.harmful()
                        && i.kind == kind
                        && i.category.as_deref() == Some(category)),
                    "no {kind:?} {category}"
                );
            }
        }
        let (_, test) = &splits[2];
        for language in ["en", "es", "fr", "pt", "hi", "sw"] {
            assert!(
                test.iter().filter(|i| i.language == language).count() >= 5,
                "too few {language} items held out"
            );
        }
        for kind in [
            Kind::Contrastive,
            Kind::Injection,
            Kind::OffTopic,
            Kind::Disguised,
        ] {
            assert!(test.iter().any(|i| i.kind == kind), "no {kind:?} held out");
        }
    }
}
