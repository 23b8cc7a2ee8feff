//! One small sort for the page's short lists. The standard library's sorts
//! cost ~3 KB of wasm per element type (a quicksort, a small-sort network
//! and a merge or a partition each); the page sorts tens to a few hundred
//! items that arrive nearly in order, where an insertion sort is as fast.

/// Sorts `v` by `key`, stably (equal keys keep their order), in place.
pub fn by_key<T, K: PartialOrd>(v: &mut [T], key: impl Fn(&T) -> K) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && key(&v[j - 1]) > key(&v[j]) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorts_stably() {
        let mut v = [(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        super::by_key(&mut v, |p| p.0);
        assert_eq!(v, [(1, 'b'), (1, 'e'), (2, 'd'), (3, 'a'), (3, 'c')]);
        let mut e: [i64; 0] = [];
        super::by_key(&mut e, |x| *x);
    }
}
