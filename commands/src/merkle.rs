//! The Merkle tree over the log in global order, and its signed checkpoints (ADR 0006).
//!
//! ```text
//! leaf(e)      = SHA-256( 0x00 || "bw.leaf.v1" || position (8 bytes, big-endian) || event_id (16 bytes) || hash(e) )
//! node(l, r)   = SHA-256( 0x01 || l || r )
//! root(leaves) = the Merkle Tree Hash of RFC 6962 §2.1 over the leaves in global order
//!                (split at the largest power of two below n; the root of no leaves is SHA-256(""))
//! checkpoint   = Ed25519 signature over the UTF-8 JSON array
//!                ["bw.checkpoint.v1", tree_size, up_to_position, root (hex), signed_at (RFC 3339, µs, Z)]
//! ```
//!
//! A leaf binds an event's place in the global order (its position), its identity and its
//! per-stream chained hash ([`crate::canonical`]), which binds its content and everything before it
//! in its stream. Inclusion proofs are RFC 6962 audit paths; [`verify_inclusion`] is the algorithm
//! of RFC 9162 §2.1.3.2.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// The leaf of the event at `position` with id `event_id` and chained hash `event_hash`.
pub fn leaf_hash(position: i64, event_id: Uuid, event_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(b"bw.leaf.v1");
    h.update(position.to_be_bytes());
    h.update(event_id.as_bytes());
    h.update(event_hash);
    h.finalize().into()
}

/// An inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root over `leaves` (RFC 6962 Merkle Tree Hash).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves` (RFC 6962 §2.1.1), bottom up; `None`
/// when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut range = leaves;
    let mut at = index;
    // Top down, then reversed: each level records the root of the other half.
    let mut top_down = Vec::new();
    while range.len() > 1 {
        let k = split(range.len());
        if at < k {
            top_down.push(root(&range[k..]));
            range = &range[..k];
        } else {
            top_down.push(root(&range[..k]));
            range = &range[k..];
            at -= k;
        }
    }
    path.extend(top_down.into_iter().rev());
    Some(path)
}

/// Whether `proof` shows `leaf` at `index` in a tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// What a checkpoint signs.
pub fn checkpoint_message(
    tree_size: i64,
    up_to_position: i64,
    root: &Hash,
    signed_at: DateTime<Utc>,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([
        "bw.checkpoint.v1",
        tree_size,
        up_to_position,
        hex::encode(root),
        signed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ]))
    .unwrap_or_default()
}

/// The id of a checkpoint signing key: the first 16 hex digits of SHA-256 of its public key.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(i as i64 * 7 + 1, Uuid::from_u128(i as u128), &[i as u8; 32]))
            .collect()
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_and_nothing_else_does() {
        for n in 1..=33 {
            let leaves = leaves(n);
            let r = root(&leaves);
            for (i, leaf) in leaves.iter().enumerate() {
                let proof = inclusion_proof(&leaves, i).expect("in range");
                assert!(
                    verify_inclusion(leaf, i as u64, n as u64, &proof, &r),
                    "n={n} i={i}"
                );
                // Another index, another size, another leaf, a changed path: refused.
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(!verify_inclusion(leaf, other as u64, n as u64, &proof, &r));
                    assert!(!verify_inclusion(
                        &leaves[other],
                        i as u64,
                        n as u64,
                        &proof,
                        &r
                    ));
                    let mut bent = proof.clone();
                    bent[0][0] ^= 1;
                    assert!(!verify_inclusion(leaf, i as u64, n as u64, &bent, &r));
                }
                // (The tree size is bound by the checkpoint's signature, not by the path: a path
                // can fit two sizes with the same shape.)
            }
            assert!(inclusion_proof(&leaves, n).is_none());
        }
    }

    #[test]
    fn the_root_depends_on_order_position_and_content() {
        let base = leaves(5);
        let r = root(&base);
        let mut swapped = base.clone();
        swapped.swap(1, 2);
        assert_ne!(root(&swapped), r);
        let moved = leaf_hash(999, Uuid::from_u128(1), &[1; 32]);
        let mut shifted = base.clone();
        shifted[1] = moved;
        assert_ne!(root(&shifted), r);
        assert_ne!(root(&base[..4]), r);
        // RFC 6962: a one-leaf tree's root is the leaf; two leaves are one node.
        assert_eq!(root(&base[..1]), base[0]);
        assert_eq!(root(&base[..2]), node_hash(&base[0], &base[1]));
    }

    #[test]
    fn the_signed_message_is_the_documented_one() {
        let at = DateTime::from_timestamp(1_700_000_000, 5_000).expect("valid");
        let message = checkpoint_message(3, 42, &[0xab; 32], at);
        assert_eq!(
            String::from_utf8(message).expect("utf-8"),
            format!(
                r#"["bw.checkpoint.v1",3,42,"{}","2023-11-14T22:13:20.000005Z"]"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(key_id(&[7; 32]).len(), 16);
    }
}
