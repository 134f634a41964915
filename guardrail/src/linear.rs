//! A softmax (multinomial logistic) regression over sentence embeddings: three classes (approve,
//! flag, reject), L2-regularised, fitted by full-batch gradient descent from zero — deterministic,
//! so every instance that fits it on the same examples gets the same weights.

/// The fitted model: one weight row (and a bias) per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

/// Gradient steps.
const ITERATIONS: usize = 300;
/// Step size.
const RATE: f32 = 20.0;

impl Linear {
    /// Fits `classes` classes on `(vector, class)` examples with L2 penalty `lambda`, weighting the
    /// classes so each counts equally however many examples it has.
    pub fn fit(examples: &[(&[f32], usize)], classes: usize, lambda: f32) -> Self {
        let dims = examples.first().map_or(0, |e| e.0.len());
        let mut weights = vec![vec![0.0f32; dims]; classes];
        let mut bias = vec![0.0f32; classes];
        let mut counts = vec![0usize; classes];
        for (_, c) in examples {
            counts[*c] += 1;
        }
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|n| {
                if *n == 0 {
                    0.0
                } else {
                    examples.len() as f32 / (classes * n) as f32
                }
            })
            .collect();
        let n = examples.len().max(1) as f32;
        for _ in 0..ITERATIONS {
            let mut grad_w = vec![vec![0.0f32; dims]; classes];
            let mut grad_b = vec![0.0f32; classes];
            for (x, y) in examples {
                let p = softmax(&weights, &bias, x);
                let cw = class_weight[*y];
                for c in 0..classes {
                    let err = cw * (p[c] - if c == *y { 1.0 } else { 0.0 });
                    grad_b[c] += err;
                    for (g, xi) in grad_w[c].iter_mut().zip(x.iter()) {
                        *g += err * xi;
                    }
                }
            }
            for c in 0..classes {
                bias[c] -= RATE * grad_b[c] / n;
                for (w, g) in weights[c].iter_mut().zip(&grad_w[c]) {
                    *w -= RATE * (g / n + lambda * *w);
                }
            }
        }
        Self { weights, bias }
    }

    /// Class probabilities of `x`.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        softmax(&self.weights, &self.bias, x)
    }
}

fn softmax(weights: &[Vec<f32>], bias: &[f32], x: &[f32]) -> Vec<f32> {
    let logits: Vec<f32> = weights
        .iter()
        .zip(bias)
        .map(|(w, b)| b + w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
        .collect();
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_examples_are_learned_and_fitting_is_deterministic() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        let examples = [(&a[..], 0), (&b[..], 1), (&a[..], 0)];
        let model = Linear::fit(&examples, 2, 1e-4);
        assert!(model.probabilities(&a)[0] > 0.9);
        assert!(model.probabilities(&b)[1] > 0.9);
        assert_eq!(model, Linear::fit(&examples, 2, 1e-4));
    }
}
