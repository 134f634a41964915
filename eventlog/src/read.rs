//! Named reads of the log for other crates.
