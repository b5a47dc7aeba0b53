//! The in-memory hash index: multi-index hashing (Norouzi et al.) over 64- and 128-bit keys.
//!
//! A key is cut into 16-bit chunks (every fourth bit of a word, see `chunk`), each with its
//! own bucket table. Two keys within Hamming
//! distance `c·(ρ+1) - 1` (c chunks) share at least one chunk within distance ρ, so probing
//! every bucket at chunk distance 0, 1, … ρ finds them all. Nearest-neighbour search grows ρ
//! until k keys are certainly found, so a true match (a few bits off) costs a few hundred
//! probes even among millions of keys. Tables are counting-sorted arrays, not hash maps: one
//! allocation each, ~4 bytes per key per chunk.

use std::sync::OnceLock;

const CHUNK_BITS: u32 = 16;
const BUCKETS: usize = 1 << CHUNK_BITS;

/// One bucket table: items of bucket b are `items[offsets[b]..offsets[b + 1]]`. For 64-bit
/// keys the keys themselves sit beside the items (`inline`), so scanning a bucket reads memory
/// in order instead of jumping to each key: the crop pass makes hundreds of searches per image.
/// (For 128-bit keys half a key is too weak a bound to pay for its memory.)
struct Table {
    offsets: Vec<u32>,
    items: Vec<u32>,
    inline: Vec<u64>,
}

/// A multi-index over `n` keys of `words` × 64 bits.
pub struct Mih {
    words: usize,
    keys: Vec<u64>,
    tables: Vec<Table>,
}

/// A key found by a search: its position in insertion order and its distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    pub distance: u32,
    pub item: u32,
}

fn masks_by_weight() -> &'static Vec<Vec<u16>> {
    static MASKS: OnceLock<Vec<Vec<u16>>> = OnceLock::new();
    MASKS.get_or_init(|| {
        let mut by = vec![Vec::new(); CHUNK_BITS as usize + 1];
        for m in 0..=u16::MAX {
            by[m.count_ones() as usize].push(m);
        }
        by
    })
}

impl Mih {
    /// Builds the index over `keys`, `words` u64 per key, laid out key after key.
    pub fn build(words: usize, keys: Vec<u64>) -> Mih {
        assert!(words > 0 && keys.len().is_multiple_of(words));
        let n = keys.len() / words;
        let chunks = words * 4;
        let tables = (0..chunks)
            .map(|c| {
                let chunk_of = |i: usize| chunk(&keys[i * words..(i + 1) * words], c);
                let mut offsets = vec![0u32; BUCKETS + 1];
                for i in 0..n {
                    offsets[chunk_of(i) as usize + 1] += 1;
                }
                for b in 0..BUCKETS {
                    offsets[b + 1] += offsets[b];
                }
                let mut fill = offsets.clone();
                let mut items = vec![0u32; n];
                for i in 0..n {
                    let b = chunk_of(i) as usize;
                    items[fill[b] as usize] = i as u32;
                    fill[b] += 1;
                }
                let inline = if words == 1 {
                    items.iter().map(|&i| keys[i as usize]).collect()
                } else {
                    Vec::new()
                };
                Table {
                    offsets,
                    items,
                    inline,
                }
            })
            .collect();
        Mih {
            words,
            keys,
            tables,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len() / self.words
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held by the index (keys and tables).
    pub fn heap_bytes(&self) -> usize {
        self.keys.len() * 8
            + self
                .tables
                .iter()
                .map(|t| t.offsets.len() * 4 + t.items.len() * 4 + t.inline.len() * 8)
                .sum::<usize>()
    }

    #[inline(always)]
    fn distance(&self, item: usize, query: &[u64]) -> u32 {
        self.keys[item * self.words..(item + 1) * self.words]
            .iter()
            .zip(query)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// The up to `k` nearest keys within `max_distance`, nearest first. Exact: no key within
    /// `max_distance` that is nearer than a returned one is missed.
    pub fn nearest(&self, query: &[u64], k: usize, max_distance: u32) -> Vec<Hit> {
        // A search is mostly population counts: with the CPU's instruction they cost a third
        // of the portable sequence (x86-64's baseline has none).
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the one instruction `nearest_popcnt` is compiled to use.
            return unsafe { self.nearest_popcnt(query, k, max_distance) };
        }
        self.search(query, k, max_distance)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn nearest_popcnt(&self, query: &[u64], k: usize, max_distance: u32) -> Vec<Hit> {
        self.search(query, k, max_distance)
    }

    #[inline(always)]
    fn search(&self, query: &[u64], k: usize, max_distance: u32) -> Vec<Hit> {
        assert_eq!(query.len(), self.words);
        let n = self.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let chunks = self.tables.len() as u32;
        let mut seen = if self.words == 1 {
            Vec::new()
        } else {
            vec![0u64; n.div_ceil(64)]
        };
        let mut hits: Vec<Hit> = Vec::new();
        let masks = masks_by_weight();
        for rho in 0..=CHUNK_BITS {
            for (c, table) in self.tables.iter().enumerate() {
                let q = chunk(query, c);
                for &m in &masks[rho as usize] {
                    let b = (q ^ m) as usize;
                    let (lo, hi) = (table.offsets[b] as usize, table.offsets[b + 1] as usize);
                    if self.words == 1 {
                        // A key found through several chunks is pushed once per chunk; the
                        // duplicates go below.
                        for (j, &key) in table.inline[lo..hi].iter().enumerate() {
                            let distance = (key ^ query[0]).count_ones();
                            if distance <= max_distance {
                                hits.push(Hit {
                                    distance,
                                    item: table.items[lo + j],
                                });
                            }
                        }
                        continue;
                    }
                    for &item in &table.items[lo..hi] {
                        let (w, bit) = (item as usize / 64, item % 64);
                        if seen[w] >> bit & 1 == 1 {
                            continue;
                        }
                        seen[w] |= 1 << bit;
                        let distance = self.distance(item as usize, query);
                        if distance <= max_distance {
                            hits.push(Hit { distance, item });
                        }
                    }
                }
            }
            // Every key within this distance has now been seen.
            let certain = chunks * (rho + 1) - 1;
            hits.sort_unstable();
            hits.dedup();
            hits.truncate(k.max(1) * 4);
            let found = hits.iter().filter(|h| h.distance <= certain).count();
            if found >= k || certain >= max_distance {
                break;
            }
        }
        hits.truncate(k);
        hits
    }
}

/// Chunk `c` of a key: every fourth bit of word `c / 4`, from bit `c % 4`. Perceptual hash
/// bits next to each other are correlated (neighbouring frequencies, neighbouring gradients),
/// so contiguous 16-bit chunks fill a few buckets with most keys; interleaved ones spread
/// them, and a search visits fewer keys.
fn chunk(key: &[u64], c: usize) -> u16 {
    let mut x = (key[c / 4] >> (c % 4)) & 0x1111_1111_1111_1111;
    x = (x | x >> 3) & 0x0303_0303_0303_0303;
    x = (x | x >> 6) & 0x000F_000F_000F_000F;
    x = (x | x >> 12) & 0x0000_00FF_0000_00FF;
    x = (x | x >> 24) & 0x0000_0000_0000_FFFF;
    x as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn brute(keys: &[u64], words: usize, q: &[u64], k: usize, max: u32) -> Vec<Hit> {
        let mut all: Vec<Hit> = keys
            .chunks(words)
            .enumerate()
            .map(|(i, key)| Hit {
                distance: key.iter().zip(q).map(|(a, b)| (a ^ b).count_ones()).sum(),
                item: i as u32,
            })
            .filter(|h| h.distance <= max)
            .collect();
        all.sort_unstable();
        all.truncate(k);
        all
    }

    #[test]
    fn agrees_with_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for words in [1usize, 2] {
            let keys: Vec<u64> = (0..5000 * words).map(|_| rng.random()).collect();
            let mih = Mih::build(words, keys.clone());
            for t in 0..50 {
                // queries near a stored key, and random ones
                let mut q: Vec<u64> = if t % 2 == 0 {
                    keys[(t * 37 % 5000) * words..][..words].to_vec()
                } else {
                    (0..words).map(|_| rng.random()).collect()
                };
                for _ in 0..(t % 12) {
                    let bit = rng.random_range(0..64 * words);
                    q[bit / 64] ^= 1 << (bit % 64);
                }
                let max = if words == 1 { 20 } else { 44 };
                let got: Vec<u32> = mih.nearest(&q, 5, max).iter().map(|h| h.distance).collect();
                let want: Vec<u32> = brute(&keys, words, &q, 5, max)
                    .iter()
                    .map(|h| h.distance)
                    .collect();
                assert_eq!(got, want, "words {words} query {t}");
            }
        }
    }

    #[test]
    fn chunks_take_every_fourth_bit() {
        let key = [1u64 << 4 | 1 << 61, 1 << 2];
        assert_eq!(chunk(&key, 0), 0b10);
        assert_eq!(chunk(&key, 1), 1 << 15);
        assert_eq!(chunk(&key, 6), 1);
        let all: u32 = (0..8).map(|c| chunk(&[u64::MAX, 0], c).count_ones()).sum();
        assert_eq!(all, 64);
    }

    #[test]
    fn empty_index_finds_nothing() {
        let mih = Mih::build(2, Vec::new());
        assert!(mih.nearest(&[0, 0], 3, 128).is_empty());
    }
}
