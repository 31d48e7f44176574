//! A small, dependency-free mutation fuzzer for the bounded fuzz runs in the test suites: the
//! spec loader, the decoding of plugin output (Arrow IPC over the component boundary, protobuf
//! over gRPC). Each run starts from a corpus of valid inputs checked in under `tests/fuzz/` and
//! mutates them with a fixed seed, so a failure reproduces; `QUARRY_FUZZ_ITERATIONS` (per corpus
//! entry) makes a longer local run. It lives here, not in each crate's tests, so every target
//! mutates the same way. Not part of the plugin API.

use std::path::{Path, PathBuf};

/// Mutants per corpus entry: `QUARRY_FUZZ_ITERATIONS`, else `default`.
pub fn iterations(default: u64) -> u64 {
    std::env::var("QUARRY_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The files of `dir` whose names end in `suffix`, sorted, with their bytes; panics if there are
/// fewer than `at_least` (a missing corpus must fail the run, not make it trivially pass).
pub fn corpus(dir: &Path, suffix: &str, at_least: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the fuzz corpus {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a corpus file");
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= at_least,
        "the fuzz corpus {} has {} `{suffix}` files, expected at least {at_least}",
        dir.display(),
        files.len()
    );
    files
}

/// Byte-level mutations from a fixed seed (xorshift64).
pub struct Mutator {
    state: u64,
    /// Bytes that inserts and overwrites draw from.
    alphabet: &'static [u8],
}

/// Values that often sit at a boundary of a length, count or offset.
const BOUNDARY: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

impl Mutator {
    /// A mutator for binary input: any byte, boundary bytes more often.
    pub fn binary(seed: u64) -> Self {
        Mutator {
            state: seed | 1,
            alphabet: BOUNDARY,
        }
    }

    /// A mutator for text input, inserting and overwriting with `alphabet`.
    pub fn text(seed: u64, alphabet: &'static [u8]) -> Self {
        Mutator {
            state: seed | 1,
            alphabet,
        }
    }

    /// The next pseudo-random number.
    pub fn random(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn below(&mut self, n: usize) -> usize {
        (self.random() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        if self.alphabet == BOUNDARY && self.random().is_multiple_of(2) {
            self.random() as u8
        } else {
            self.alphabet[self.below(self.alphabet.len())]
        }
    }

    /// `input` with one to four mutations: a byte removed, inserted, overwritten or bit-flipped,
    /// two bytes swapped, a run duplicated, a little-endian word set to a boundary value, or the
    /// tail cut off.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut bytes = input.to_vec();
        for _ in 0..1 + self.random() % 4 {
            if bytes.is_empty() {
                bytes.push(self.byte());
                continue;
            }
            let i = self.below(bytes.len());
            match self.random() % 8 {
                0 => {
                    bytes.remove(i);
                }
                1 => {
                    let b = self.byte();
                    bytes.insert(i, b);
                }
                2 => bytes[i] = self.byte(),
                3 => bytes[i] ^= 1 << (self.random() % 8),
                4 => {
                    let j = self.below(bytes.len());
                    bytes.swap(i, j);
                }
                5 => {
                    let len = 1 + self.below(16.min(bytes.len() - i));
                    let run = bytes[i..i + len].to_vec();
                    let at = self.below(bytes.len());
                    bytes.splice(at..at, run);
                }
                6 if bytes.len() >= i + 4 => {
                    let value: i32 = match self.random() % 4 {
                        0 => 0,
                        1 => -1,
                        2 => i32::MAX,
                        _ => (self.random() % 4096) as i32,
                    };
                    bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
                }
                _ => bytes.truncate(i),
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutants_and_they_differ_from_the_input() {
        let input = b"a seed of some length".to_vec();
        let mut a = Mutator::binary(7);
        let mut b = Mutator::binary(7);
        let mut changed = 0;
        for _ in 0..1000 {
            let m = a.mutate(&input);
            assert_eq!(m, b.mutate(&input));
            changed += usize::from(m != input);
        }
        assert!(changed > 900, "only {changed} of 1000 mutants differ");
    }
}
