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

/// A perfect subtree of the tree over the log: it covers the `2^level` leaves from
/// `index · 2^level` (level 0: the leaves). Stored once complete (`log_nodes`), so that a root or an
/// audit path is read from O(log² n) of them instead of from every leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub level: u8,
    pub index: u64,
}

/// The perfect subtrees that make up the leaves `[lo, hi)`, left to right: the largest first, as
/// RFC 6962 splits. `lo` is a multiple of the largest of them (true of every range [`root`] and
/// [`inclusion_proof`] hash).
pub fn cover(lo: u64, hi: u64) -> Vec<Node> {
    let size = hi.saturating_sub(lo);
    let mut at = lo;
    let mut out = Vec::new();
    for level in (0..64u8).rev() {
        let span = 1u64 << level;
        if size & span != 0 {
            out.push(Node {
                level,
                index: at >> level,
            });
            at += span;
        }
    }
    out
}

/// The Merkle Tree Hash of a range from the hashes of its [`cover`], in order.
pub fn fold(cover: &[Hash]) -> Hash {
    match cover.split_last() {
        None => Sha256::digest([]).into(),
        Some((last, rest)) => rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)),
    }
}

/// For the audit path of leaf `index` in a tree of `size` leaves: the cover of each element,
/// bottom up (each element is the [`fold`] of its cover); `None` when `index` is out of range.
pub fn proof_covers(index: u64, size: u64) -> Option<Vec<Vec<Node>>> {
    if index >= size {
        return None;
    }
    let (mut lo, mut hi) = (0u64, size);
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let k = split(usize::try_from(hi - lo).unwrap_or(usize::MAX)) as u64;
        if index < lo + k {
            top_down.push(cover(lo + k, hi));
            hi = lo + k;
        } else {
            top_down.push(cover(lo, lo + k));
            lo += k;
        }
    }
    top_down.reverse();
    Some(top_down)
}

/// The nodes that complete when the tree grows from `old` to `new` leaves, leaves first, and the
/// nodes from before `old` their hashes need (left siblings, one per level at most).
pub fn growth(old: u64, new: u64) -> (Vec<Node>, Vec<Node>) {
    let mut completed = Vec::new();
    let mut needed = Vec::new();
    for level in 0..64u8 {
        let (first, end) = (old >> level, new >> level);
        if first >= end {
            if level > 0 {
                break;
            }
            continue;
        }
        if level > 0 && (2 * first) < (old >> (level - 1)) {
            needed.push(Node {
                level: level - 1,
                index: 2 * first,
            });
        }
        completed.extend((first..end).map(|index| Node { level, index }));
    }
    (completed, needed)
}

/// The hashes of [`growth`]'s completed nodes, given the new leaves' hashes (`old..new`, in order)
/// and the hashes of the nodes it said were needed.
pub fn grow(
    old: u64,
    leaves: &[Hash],
    known: &std::collections::HashMap<Node, Hash>,
) -> Option<Vec<(Node, Hash)>> {
    let new = old + leaves.len() as u64;
    let (completed, _) = growth(old, new);
    let mut hashes = known.clone();
    let mut out = Vec::with_capacity(completed.len());
    for node in completed {
        let hash = if node.level == 0 {
            *leaves.get(usize::try_from(node.index - old).ok()?)?
        } else {
            let child = |index| Node {
                level: node.level - 1,
                index,
            };
            node_hash(
                hashes.get(&child(2 * node.index))?,
                hashes.get(&child(2 * node.index + 1))?,
            )
        };
        hashes.insert(node, hash);
        out.push((node, hash));
    }
    Some(out)
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

#[cfg(test)]
mod stored_nodes {
    use std::collections::HashMap;

    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(i as i64 * 3, Uuid::from_u128(u128::from(i)), &[i as u8; 32]))
            .collect()
    }

    /// Grows a node store from 0 to `steps.last()` leaves in the given steps.
    fn store(all: &[Hash], steps: &[u64]) -> HashMap<Node, Hash> {
        let mut nodes = HashMap::new();
        let mut old = 0;
        for &new in steps {
            let (_, needed) = growth(old, new);
            let known: HashMap<Node, Hash> = needed.iter().map(|n| (*n, nodes[n])).collect();
            let range = &all[old as usize..new as usize];
            for (node, hash) in grow(old, range, &known).expect("every needed node given") {
                assert!(
                    nodes.insert(node, hash).is_none(),
                    "{node:?} completed twice"
                );
            }
            old = new;
        }
        nodes
    }

    #[test]
    fn roots_and_audit_paths_from_stored_nodes_equal_those_from_every_leaf() {
        // Every size to 70, grown in uneven steps, and every leaf's path in every tree size.
        let all = leaves(70);
        let steps: Vec<u64> = [1, 2, 3, 7, 8, 9, 16, 17, 31, 33, 40, 64, 65, 70].to_vec();
        let nodes = store(&all, &steps);
        for size in 1..=70u64 {
            let from_leaves = root(&all[..size as usize]);
            let peaks: Vec<Hash> = cover(0, size).iter().map(|n| nodes[n]).collect();
            assert_eq!(fold(&peaks), from_leaves, "root of {size}");
            for index in 0..size {
                let covers = proof_covers(index, size).expect("in range");
                let path: Vec<Hash> = covers
                    .iter()
                    .map(|c| fold(&c.iter().map(|n| nodes[n]).collect::<Vec<_>>()))
                    .collect();
                assert_eq!(
                    Some(path),
                    inclusion_proof(&all[..size as usize], index as usize),
                    "path of {index} in {size}"
                );
            }
        }
        assert_eq!(fold(&[]), root(&[]));
        assert!(proof_covers(3, 3).is_none());
    }

    #[test]
    fn growing_needs_only_left_siblings_from_before() {
        for old in 0..40u64 {
            for new in old..48 {
                let (completed, needed) = growth(old, new);
                assert_eq!(
                    completed.iter().filter(|n| n.level == 0).count() as u64,
                    new - old
                );
                for n in &needed {
                    assert!(
                        (n.index + 1) << n.level <= old,
                        "{n:?} existed before {old}"
                    );
                }
                let levels: std::collections::HashSet<u8> =
                    needed.iter().map(|n| n.level).collect();
                assert_eq!(levels.len(), needed.len(), "one per level");
            }
        }
    }
}
