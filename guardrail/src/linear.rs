//! A softmax (multinomial logistic) regression over [`Features`]: three classes (approve, flag,
//! reject), class-balanced, L2-regularised, fitted by full-batch Adam from zero — deterministic, so
//! every run on the same examples gets the same weights. A temperature fitted on held-apart items
//! (the dev split) calibrates its probabilities.

use crate::features::{Features, SPARSE_DIMS};

/// The fitted model: per class a bias, dense weights and sparse weights; and its temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    bias: Vec<f32>,
    dense: Vec<Vec<f32>>,
    sparse: Vec<Vec<f32>>,
    /// Logits are divided by it before the softmax (1 until calibrated).
    temperature: f32,
}

/// Full-batch Adam steps.
const ITERATIONS: usize = 300;
/// Adam's step size.
const RATE: f32 = 0.05;

impl Linear {
    /// Fits `classes` classes on `(features, class)` examples with L2 penalty `lambda`, weighting
    /// the classes so each counts equally however many examples it has.
    pub fn fit(examples: &[(&Features, usize)], classes: usize, lambda: f32) -> Self {
        let dims = examples.first().map_or(0, |e| e.0.dense.len());
        let mut model = Self {
            bias: vec![0.0; classes],
            dense: vec![vec![0.0; dims]; classes],
            sparse: vec![vec![0.0; SPARSE_DIMS]; classes],
            temperature: 1.0,
        };
        let mut counts = vec![0usize; classes];
        for (_, c) in examples {
            counts[*c] += 1;
        }
        let n = examples.len().max(1) as f32;
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|k| {
                if *k == 0 {
                    0.0
                } else {
                    n / (classes * k) as f32
                }
            })
            .collect();
        // Adam's moments, one pair per parameter, laid out as the parameters are.
        let mut adam = Adam::new(classes, dims);
        for step in 1..=ITERATIONS {
            let mut grad = Gradient::zero(classes, dims);
            for (x, y) in examples {
                let p = model.raw_probabilities(x);
                for (c, pc) in p.iter().enumerate() {
                    let err = class_weight[*y] * (pc - if c == *y { 1.0 } else { 0.0 }) / n;
                    grad.bias[c] += err;
                    for (g, xi) in grad.dense[c].iter_mut().zip(&x.dense) {
                        *g += err * xi;
                    }
                    for (i, xi) in &x.sparse {
                        grad.sparse[c][*i as usize] += err * xi;
                    }
                }
            }
            adam.step(&mut model, &grad, lambda, step as i32);
        }
        model
    }

    /// The raw scores of `x`, one per class.
    pub fn logits(&self, x: &Features) -> Vec<f32> {
        self.bias
            .iter()
            .enumerate()
            .map(|(c, b)| {
                b + self.dense[c]
                    .iter()
                    .zip(&x.dense)
                    .map(|(w, v)| w * v)
                    .sum::<f32>()
                    + x.sparse
                        .iter()
                        .map(|(i, v)| self.sparse[c][*i as usize] * v)
                        .sum::<f32>()
            })
            .collect()
    }

    fn raw_probabilities(&self, x: &Features) -> Vec<f32> {
        softmax(&self.logits(x), 1.0)
    }

    /// Calibrated class probabilities of `x`.
    pub fn probabilities(&self, x: &Features) -> Vec<f32> {
        softmax(&self.logits(x), self.temperature)
    }

    /// The temperature in use.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// This model calibrated on `(features, class)` items it was not fitted on: the temperature
    /// with the lowest negative log-likelihood (a grid from 0.25 to 16, ratio 1.05 per step).
    pub fn calibrated(mut self, items: &[(&Features, usize)]) -> Self {
        let logits: Vec<(Vec<f32>, usize)> =
            items.iter().map(|(x, y)| (self.logits(x), *y)).collect();
        let nll = |t: f32| -> f64 {
            logits
                .iter()
                .map(|(l, y)| -f64::from(softmax(l, t)[*y].max(1e-12)).ln())
                .sum()
        };
        let mut best = (1.0f32, nll(1.0));
        let mut t = 0.25f32;
        while t <= 16.0 {
            let v = nll(t);
            if v < best.1 {
                best = (t, v);
            }
            t *= 1.05;
        }
        self.temperature = best.0;
        self
    }

    /// The model as bytes (`guardrail train` ships them): a header line
    /// `bw-linear 1 <classes> <dense dims> <sparse dims> <temperature> <digest>\n`, then little-endian
    /// `f32` biases, dense weights and sparse weights, class by class.
    pub fn encode(&self, digest: &str) -> Vec<u8> {
        let mut out = format!(
            "bw-linear 1 {} {} {} {} {digest}\n",
            self.bias.len(),
            self.dense.first().map_or(0, Vec::len),
            SPARSE_DIMS,
            self.temperature
        )
        .into_bytes();
        let values = self
            .bias
            .iter()
            .chain(self.dense.iter().flatten())
            .chain(self.sparse.iter().flatten());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The model in `bytes`, if it was written for `digest` with this crate's feature layout.
    pub fn decode(bytes: &[u8], digest: &str) -> Result<Self, String> {
        let newline = bytes.iter().position(|b| *b == b'\n').ok_or("no header")?;
        let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header")?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [
            "bw-linear",
            "1",
            classes,
            dims,
            sparse,
            temperature,
            written_for,
        ] = fields.as_slice()
        else {
            return Err("not a bw-linear 1 file".into());
        };
        if *written_for != digest {
            return Err("fitted on other data or features".into());
        }
        let number = |s: &str| s.parse::<usize>().map_err(|_| format!("bad number {s}"));
        let (classes, dims) = (number(classes)?, number(dims)?);
        if number(sparse)? != SPARSE_DIMS {
            return Err("another n-gram layout".into());
        }
        let temperature: f32 = temperature.parse().map_err(|_| "temperature")?;
        let body = &bytes[newline + 1..];
        let total = classes * (1 + dims + SPARSE_DIMS);
        if body.len() != total * 4 {
            return Err("size".into());
        }
        let mut values = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let mut take = |n: usize| values.by_ref().take(n).collect::<Vec<f32>>();
        let bias = take(classes);
        let dense = (0..classes).map(|_| take(dims)).collect();
        let sparse = (0..classes).map(|_| take(SPARSE_DIMS)).collect();
        Ok(Self {
            bias,
            dense,
            sparse,
            temperature,
        })
    }
}

/// A gradient laid out as the model's parameters.
struct Gradient {
    bias: Vec<f32>,
    dense: Vec<Vec<f32>>,
    sparse: Vec<Vec<f32>>,
}

impl Gradient {
    fn zero(classes: usize, dims: usize) -> Self {
        Self {
            bias: vec![0.0; classes],
            dense: vec![vec![0.0; dims]; classes],
            sparse: vec![vec![0.0; SPARSE_DIMS]; classes],
        }
    }
}

/// Adam's first and second moments for every parameter.
struct Adam {
    m: Gradient,
    v: Gradient,
}

impl Adam {
    fn new(classes: usize, dims: usize) -> Self {
        Self {
            m: Gradient::zero(classes, dims),
            v: Gradient::zero(classes, dims),
        }
    }

    /// One step on `model` with gradient `g` (the L2 penalty added here; it leaves biases alone).
    fn step(&mut self, model: &mut Linear, g: &Gradient, lambda: f32, t: i32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        let c1 = 1.0 - B1.powi(t);
        let c2 = 1.0 - B2.powi(t);
        let update = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
            if g == 0.0 && *m == 0.0 && *w == 0.0 {
                return; // a feature no example has: stays zero
            }
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *w -= RATE * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        };
        for c in 0..model.bias.len() {
            update(
                &mut model.bias[c],
                g.bias[c],
                &mut self.m.bias[c],
                &mut self.v.bias[c],
            );
            let rows = [
                (
                    &mut model.dense[c],
                    &g.dense[c],
                    &mut self.m.dense[c],
                    &mut self.v.dense[c],
                ),
                (
                    &mut model.sparse[c],
                    &g.sparse[c],
                    &mut self.m.sparse[c],
                    &mut self.v.sparse[c],
                ),
            ];
            for (w, g, m, v) in rows {
                for i in 0..w.len() {
                    let gi = g[i] + lambda * w[i];
                    update(&mut w[i], gi, &mut m[i], &mut v[i]);
                }
            }
        }
    }
}

/// Softmax of `logits / temperature`.
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let max = scaled.iter().copied().fold(f32::MIN, f32::max);
    let exp: Vec<f32> = scaled.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(dense: [f32; 2], sparse: &[(u32, f32)]) -> Features {
        Features {
            dense: dense.to_vec(),
            sparse: sparse.to_vec(),
        }
    }

    #[test]
    fn separable_examples_are_learned_and_fitting_is_deterministic() {
        let a = features([1.0, 0.0], &[]);
        let b = features([0.0, 1.0], &[]);
        // told apart by an n-gram alone
        let c = features([0.5, 0.5], &[(7, 1.0)]);
        let examples = [(&a, 0), (&b, 1), (&a, 0), (&c, 2)];
        let model = Linear::fit(&examples, 3, 1e-4);
        assert!(model.probabilities(&a)[0] > 0.9);
        assert!(model.probabilities(&b)[1] > 0.9);
        assert!(model.probabilities(&c)[2] > 0.9);
        assert_eq!(model, Linear::fit(&examples, 3, 1e-4));
    }

    #[test]
    fn calibration_softens_an_overconfident_model() {
        let a = features([1.0, 0.0], &[]);
        let b = features([0.0, 1.0], &[]);
        let model = Linear::fit(&[(&a, 0), (&b, 1)], 2, 1e-6);
        // held-apart items where the features mean little: half of each class looks like `a`
        let held = [(&a, 0), (&a, 1), (&b, 1), (&b, 0)];
        let calibrated = model.clone().calibrated(&held);
        assert!(calibrated.temperature() > model.temperature());
        assert!(calibrated.probabilities(&a)[0] < model.probabilities(&a)[0]);
        assert!(calibrated.probabilities(&a)[0] < 0.6);
    }

    #[test]
    fn weights_round_trip_and_refuse_other_data() {
        let a = features([1.0, 0.0], &[(3, 1.0)]);
        let b = features([0.0, 1.0], &[(SPARSE_DIMS as u32 - 1, 1.0)]);
        let model = Linear::fit(&[(&a, 0), (&b, 1)], 2, 1e-4).calibrated(&[(&a, 0), (&b, 1)]);
        let bytes = model.encode("abc");
        assert_eq!(Linear::decode(&bytes, "abc").expect("decodes"), model);
        assert!(Linear::decode(&bytes, "abd").is_err());
        assert!(Linear::decode(&bytes[..bytes.len() - 4], "abc").is_err());
    }
}
