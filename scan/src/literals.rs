//! Every occurrence of a small set of literals in one pass: the prefilter that decides which
//! files, lines and pieces the rules look at.
//!
//! A regex alternation would do (Teddy in aho-corasick), but only when the regex crates are
//! compiled optimised, which the cold build of the xtask cannot afford. This is the same idea at
//! a fraction of the code: a bit per byte pair that starts some literal, tested at each position;
//! where it is set, a bit per hash of the first four bytes, then the literals with that first
//! byte compared.

/// The literals, ready to search for.
#[derive(Debug, Clone)]
pub struct Literals {
    literals: Vec<Box<[u8]>>,
    /// Bit `(a << 8) | b`: some literal of two or more bytes starts with `a`, `b`. Tested at
    /// every position; the rest is looked at only where it is set.
    pairs: Vec<u64>,
    /// A bit per hash of the first four bytes of the literals of four or more bytes.
    quads: Vec<u64>,
    /// Literals of four or more bytes, and of two or three, by first byte.
    long_by_first: Vec<Vec<u32>>,
    short_by_first: Vec<Vec<u32>>,
    /// One-byte literals by their byte (rare: a one-letter namespace).
    singles: Vec<Vec<u32>>,
    any_single: bool,
}

const QUAD_BITS: u32 = 16;

#[inline(always)]
fn quad_slot(x: u32) -> usize {
    (x.wrapping_mul(0x9E37_79B1) >> (32 - QUAD_BITS)) as usize
}

#[inline(always)]
fn bit(bits: &[u64], at: usize) -> bool {
    bits[at >> 6] & (1 << (at & 63)) != 0
}

fn set_bit(bits: &mut [u64], at: usize) {
    bits[at >> 6] |= 1 << (at & 63);
}

impl Literals {
    /// The set of `literals` (an empty literal is never found).
    pub fn new<S: AsRef<[u8]>>(literals: &[S]) -> Literals {
        let mut pairs = vec![0u64; 1024];
        let mut quads = vec![0u64; 1 << (QUAD_BITS - 6)];
        let mut long_by_first = vec![Vec::new(); 256];
        let mut short_by_first = vec![Vec::new(); 256];
        let mut singles = vec![Vec::new(); 256];
        for (id, lit) in literals.iter().enumerate() {
            let lit = lit.as_ref();
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            match lit {
                [] => {}
                [b] => singles[usize::from(*b)].push(id),
                [a, b, rest @ ..] => {
                    let pair = (usize::from(*a) << 8) | usize::from(*b);
                    set_bit(&mut pairs, pair);
                    if let [c, d, ..] = rest {
                        set_bit(&mut quads, quad_slot(u32::from_le_bytes([*a, *b, *c, *d])));
                        long_by_first[usize::from(*a)].push(id);
                    } else {
                        short_by_first[usize::from(*a)].push(id);
                    }
                }
            }
        }
        let any_single = singles.iter().any(|s| !s.is_empty());
        Literals {
            literals: literals.iter().map(|l| l.as_ref().to_vec().into_boxed_slice()).collect(),
            pairs,
            quads,
            long_by_first,
            short_by_first,
            singles,
            any_single,
        }
    }

    /// Every occurrence of every literal in `hay` as `(start, id)`, overlapping ones included,
    /// in order of `start` (`id`: the literal's index in the list given to `new`).
    ///
    /// Not generic (no callback): a generic function is compiled in the crate that calls it, at
    /// that crate's opt-level, and this loop must be compiled here, optimised.
    pub fn find_all(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let pairs = &self.pairs[..1024];
        for (i, w) in hay.windows(2).enumerate() {
            if self.any_single {
                self.singles_at(hay, i, &mut found);
            }
            let pair = (usize::from(w[0]) << 8) | usize::from(w[1]);
            if bit(pairs, pair) {
                self.verify(hay, i, &mut found);
            }
        }
        if let Some(last) = hay.len().checked_sub(1) {
            if self.any_single {
                self.singles_at(hay, last, &mut found);
            }
        }
        found
    }

    #[inline(never)]
    fn singles_at(&self, hay: &[u8], i: usize, found: &mut Vec<(usize, usize)>) {
        for &id in &self.singles[usize::from(hay[i])] {
            found.push((i, id as usize));
        }
    }

    /// The literals starting at `i`, where the pair table says some may.
    #[inline(never)]
    fn verify(&self, hay: &[u8], i: usize, found: &mut Vec<(usize, usize)>) {
        let first = usize::from(hay[i]);
        if let Some(q) = hay.get(i..i + 4) {
            if bit(&self.quads, quad_slot(u32::from_le_bytes([q[0], q[1], q[2], q[3]]))) {
                for &id in &self.long_by_first[first] {
                    if hay[i..].starts_with(&self.literals[id as usize]) {
                        found.push((i, id as usize));
                    }
                }
            }
        }
        for &id in &self.short_by_first[first] {
            if hay[i..].starts_with(&self.literals[id as usize]) {
                found.push((i, id as usize));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive search: every start of every literal.
    fn naive(literals: &[&str], hay: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for i in 0..hay.len() {
            for (id, l) in literals.iter().enumerate() {
                if !l.is_empty() && hay.as_bytes()[i..].starts_with(l.as_bytes()) {
                    out.push((i, id));
                }
            }
        }
        out
    }

    fn fast(literals: &[&str], hay: &str) -> Vec<(usize, usize)> {
        let mut out = Literals::new(literals).find_all(hay.as_bytes());
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_what_the_naive_search_finds() {
        let literals = ["/tmp", "kubectl", "ku", "s", "", "-p ", "[::1]:", "é"];
        let hays = [
            "",
            "s",
            "kubectl -n sut delete /tmp/x",
            "kukubectlkubectl",
            "ends with -p ",
            "curl [::1]:8080 é/tmp",
            "sss",
        ];
        for hay in hays {
            assert_eq!(fast(&literals, hay), naive(&literals, hay), "in {hay:?}");
        }
    }

    #[test]
    fn random_bytes_agree_with_the_naive_search() {
        for literals in
            [&["ab", "abc", "b", "ca", "aaa"][..], &["abca", "aaaa", "bcab"], &["cab", "abcab", "x"]]
        {
            random_agreement(literals);
        }
    }

    fn random_agreement(literals: &[&str]) {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let len = (seed % 40) as usize;
            let mut hay = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                hay.push(['a', 'b', 'c', 'x'][(seed % 4) as usize]);
            }
            assert_eq!(fast(literals, &hay), naive(literals, &hay), "{literals:?} in {hay:?}");
        }
    }
}
