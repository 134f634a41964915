//! Random JSON values for property tests of the canonical form, here and in the integration tests
//! (feature `testing`): the floats, integers and text that break naive canonical forms.

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value PostgreSQL's `jsonb` can store: floats of every magnitude and precision (1e-7,
/// 1e21, -0.0, f32 values widened to f64, the extremes), integers past 2^53 and up to u64, text with
/// combining marks, emoji, U+2028/U+2029, `<>&`, quotes and control characters, nesting up to six
/// levels, objects with any keys. Strings never hold U+0000, which `jsonb` refuses.
pub fn any_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::from(f64::from(f))),
        (-30i32..30, 1u32..1000).prop_map(|(e, m)| Value::from(f64::from(m) * 10f64.powi(e))),
        (0.0f64..1.0).prop_map(Value::from),
        Just(Value::from(-0.0)),
        Just(Value::from(1e-7)),
        Just(Value::from(1e16)),
        Just(Value::from(1e21)),
        Just(Value::from(f64::MAX)),
        Just(Value::from(f64::MIN_POSITIVE)),
        Just(Value::from(5e-324)),
        Just(Value::from(9_007_199_254_740_993_u64)),
    ];
    let text = prop_oneof![
        "[^\u{0}]*",
        "[a-z]{0,8}",
        Just("e\u{301}\u{2028}\u{2029}<>&'\"\\/😀\u{1}\u{1f}\u{7f}\u{fffd}".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number,
        text.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(text.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
