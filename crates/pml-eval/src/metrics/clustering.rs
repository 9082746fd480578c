//! Clustering scores with scikit-learn's definitions (natural logarithms, arithmetic mean of
//! the entropies as normalizer).

use std::collections::HashMap;

/// The contingency table of two labelings: class sizes `a`, cluster sizes `b`, and the
/// non-zero cells `(class, cluster, count)`.
struct Contingency {
    a: Vec<u64>,
    b: Vec<u64>,
    cells: Vec<(usize, usize, u64)>,
    n: u64,
}

fn contingency(labels_true: &[i64], labels_pred: &[i64]) -> Contingency {
    let index = |labels: &[i64]| {
        let mut unique: Vec<i64> = labels.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let pos: HashMap<i64, usize> = unique.iter().enumerate().map(|(i, &l)| (l, i)).collect();
        (
            unique.len(),
            labels.iter().map(|l| pos[l]).collect::<Vec<_>>(),
        )
    };
    let (r, ti) = index(labels_true);
    let (c, pi) = index(labels_pred);
    let mut a = vec![0u64; r];
    let mut b = vec![0u64; c];
    let mut cells: HashMap<(usize, usize), u64> = HashMap::new();
    for (&i, &j) in ti.iter().zip(&pi) {
        a[i] += 1;
        b[j] += 1;
        *cells.entry((i, j)).or_default() += 1;
    }
    let mut cells: Vec<(usize, usize, u64)> =
        cells.into_iter().map(|((i, j), v)| (i, j, v)).collect();
    cells.sort_unstable();
    Contingency {
        a,
        b,
        cells,
        n: labels_true.len() as u64,
    }
}

fn entropy(sizes: &[u64], n: u64) -> f64 {
    if sizes.len() <= 1 {
        return 0.0;
    }
    let n = n as f64;
    -sizes
        .iter()
        .filter(|&&s| s > 0)
        .map(|&s| {
            let p = s as f64 / n;
            p * p.ln()
        })
        .sum::<f64>()
}

fn mutual_information(t: &Contingency) -> f64 {
    if t.a.len() == 1 || t.b.len() == 1 {
        return 0.0;
    }
    let n = t.n as f64;
    let mi: f64 = t
        .cells
        .iter()
        .map(|&(i, j, v)| {
            let v = v as f64;
            (v / n) * ((n * v).ln() - (t.a[i] as f64 * t.b[j] as f64).ln())
        })
        .sum();
    mi.max(0.0)
}

/// `ln(i!)` for `i = 0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let mut acc = 0.0f64;
    out.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        out.push(acc);
    }
    out
}

/// The expected mutual information of two random labelings with the table's marginals
/// (Vinh, Epps & Bailey 2010), as scikit-learn's `expected_mutual_information`.
fn expected_mutual_information(t: &Contingency) -> f64 {
    if t.a.len() == 1 || t.b.len() == 1 {
        return 0.0;
    }
    let n = t.n as usize;
    let lf = ln_factorials(n);
    let nf = n as f64;
    let mut emi = 0.0;
    for &ai in &t.a {
        for &bj in &t.b {
            let (ai, bj) = (ai as usize, bj as usize);
            let start = (ai + bj).saturating_sub(n).max(1);
            let end = ai.min(bj);
            let fixed = lf[ai] + lf[bj] + lf[n - ai] + lf[n - bj] - lf[n];
            for nij in start..=end {
                let term1 = nij as f64 / nf;
                let term2 = (nf * nij as f64).ln() - (ai as f64).ln() - (bj as f64).ln();
                let gln = fixed - lf[nij] - lf[ai - nij] - lf[bj - nij] - lf[n + nij - ai - bj];
                emi += term1 * term2 * gln.exp();
            }
        }
    }
    emi
}

/// Normalized mutual information, scikit-learn's `normalized_mutual_info_score` with the
/// arithmetic mean: `NMI = MI(U, V) / ((H(U) + H(V)) / 2)`; 1 when both labelings have a single
/// (or no) group, 0 when `MI = 0`.
///
/// # Panics
/// If the labelings differ in length.
pub fn normalized_mutual_info(labels_true: &[i64], labels_pred: &[i64]) -> f64 {
    assert_eq!(
        labels_true.len(),
        labels_pred.len(),
        "normalized_mutual_info: labelings of lengths {} and {}",
        labels_true.len(),
        labels_pred.len()
    );
    let t = contingency(labels_true, labels_pred);
    if t.a.len() == t.b.len() && t.a.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_information(&t);
    if mi == 0.0 {
        return 0.0;
    }
    let normalizer = (entropy(&t.a, t.n) + entropy(&t.b, t.n)) / 2.0;
    mi / normalizer
}

/// Adjusted mutual information, scikit-learn's `adjusted_mutual_info_score` with the arithmetic
/// mean: `AMI = (MI − E[MI]) / (mean(H(U), H(V)) − E[MI])`, with `E[MI]` the expected mutual
/// information under random labelings of the same group sizes. 1 when both labelings have a
/// single group, 0 when exactly one of them has.
///
/// # Panics
/// If the labelings differ in length.
pub fn adjusted_mutual_info(labels_true: &[i64], labels_pred: &[i64]) -> f64 {
    assert_eq!(
        labels_true.len(),
        labels_pred.len(),
        "adjusted_mutual_info: labelings of lengths {} and {}",
        labels_true.len(),
        labels_pred.len()
    );
    let t = contingency(labels_true, labels_pred);
    let (r, c) = (t.a.len(), t.b.len());
    if r == c && r <= 1 {
        return 1.0;
    }
    if r == 1 || c == 1 {
        return 0.0;
    }
    let mi = mutual_information(&t);
    let emi = expected_mutual_information(&t);
    let normalizer = (entropy(&t.a, t.n) + entropy(&t.b, t.n)) / 2.0;
    let keep_sign = |x: f64| {
        if x < 0.0 {
            x.min(-f64::EPSILON)
        } else {
            x.max(f64::EPSILON)
        }
    };
    keep_sign(mi - emi) / keep_sign(normalizer - emi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn matches_scikit_learn() {
        // Values from scikit-learn 1.9.
        let t = [0, 0, 0, 1, 1, 1, 2, 2];
        let p = [0, 0, 1, 1, 1, 2, 2, 2];
        close(normalized_mutual_info(&t, &p), 0.5588730382170324);
        close(adjusted_mutual_info(&t, &p), 0.31967265056964694);
        // A relabelled perfect match.
        close(normalized_mutual_info(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        close(adjusted_mutual_info(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        close(adjusted_mutual_info(&[0, 0, 0, 0], &[0, 1, 2, 3]), 0.0);
        close(normalized_mutual_info(&[0, 0, 0, 0], &[0, 1, 2, 3]), 0.0);
        close(normalized_mutual_info(&[5, 5], &[1, 1]), 1.0);
        // A larger, nearly independent pair: the expected mutual information matters.
        let t: Vec<i64> = (0..2000).map(|i| i % 20).collect();
        let p: Vec<i64> = (0..2000).map(|i| (i * 7 + i / 3) % 17).collect();
        close(normalized_mutual_info(&t, &p), 0.0005316598814504441);
        close(adjusted_mutual_info(&t, &p), -0.027323949400111108);
    }
}
