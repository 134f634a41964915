//! People (`domain-reference.md` §1.3, ADR 0003) on the command side: what is written beside the
//! `Human` stream's events and never in the log — the person's key, credentials, codes and
//! sessions. Personal fields reach this module already parsed; the e-mail address and the name are
//! sealed here at registration, so the log only ever holds ciphertext.
//!
//! # Layout
//!
//! - [`register`]: [`NewHuman`] and [`register_human`]: key, credentials and the first code in the
//!   registration's transaction.
//! - [`keys`]: the person's key (`person_keys`): stored, loaded, destroyed.
//! - [`credentials`]: `human_credentials`: lookup by e-mail fingerprint, e-mail verification, login
//!   with failed-login counting and lockout.
//! - [`sessions`]: access tokens and refresh tokens (`refresh_tokens`): issue, rotate, reuse
//!   detection, revoke.
//! - [`erase`]: forgetting a person: key, credentials, codes and sessions go with `HumanForgotten`.

pub mod credentials;
pub mod erase;
pub mod keys;
pub mod register;
pub mod sessions;

pub use register::{NewHuman, register_human};
