//! Sampling helpers shared by the samplers (PML's `common_functions`), on pml-core's
//! [`SeededRng`].

use pml_core::rng::SeededRng;

/// Indices per label, labels in order of first appearance (PML's `get_labels_to_indices`, with a
/// deterministic order so that a seed gives the same batches everywhere).
pub(crate) fn labels_to_indices(labels: &[i64]) -> Vec<(i64, Vec<usize>)> {
    let mut position = std::collections::HashMap::new();
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        let slot = *position.entry(label).or_insert_with(|| {
            groups.push((label, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(i);
    }
    groups
}

/// Shuffles `items` in place (Fisher-Yates).
pub(crate) fn shuffle<T>(rng: &SeededRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// `size` draws from `items`: without replacement when there are enough, else with replacement
/// (PML's `safe_random_choice`).
///
/// # Panics
/// If `items` is empty and `size > 0`.
pub(crate) fn safe_random_choice(rng: &SeededRng, items: &[usize], size: usize) -> Vec<usize> {
    if items.len() < size {
        (0..size).map(|_| items[rng.below(items.len())]).collect()
    } else {
        let mut pool = items.to_vec();
        for i in 0..size {
            let j = i + rng.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(size);
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_in_first_appearance_order() {
        assert_eq!(
            labels_to_indices(&[5, 3, 5, 9, 3]),
            vec![(5, vec![0, 2]), (3, vec![1, 4]), (9, vec![3])]
        );
    }

    #[test]
    fn choice_without_replacement_when_possible() {
        let rng = SeededRng::new(1);
        let mut picked = safe_random_choice(&rng, &[4, 5, 6, 7], 4);
        picked.sort_unstable();
        assert_eq!(picked, vec![4, 5, 6, 7]);
        let with_replacement = safe_random_choice(&rng, &[4, 5], 6);
        assert_eq!(with_replacement.len(), 6);
        assert!(with_replacement.iter().all(|i| [4, 5].contains(i)));
        let mut items = [1, 2, 3, 4, 5];
        shuffle(&rng, &mut items);
        items.sort_unstable();
        assert_eq!(items, [1, 2, 3, 4, 5]);
    }
}
