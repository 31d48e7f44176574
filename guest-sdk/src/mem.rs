//! `memcmp` and `bcmp` for plugins compiled to WebAssembly, eight bytes at a time.
//!
//! wasi-libc's are byte loops, and they are hot: Parquet's statistics and dictionaries compare
//! every string they see, as do sorts, hash maps and SQLite. Defined here, in every component
//! built with the SDK, they take the place of libc's at link time (the linker takes a symbol from
//! the first object that defines it; libc comes last). Native builds keep their libc's.

use std::cmp::Ordering;

/// Compares `n` bytes at `a` and `b` as C's `memcmp` does: negative, zero or positive as the
/// first differing byte of `a` is below, equal to or above `b`'s.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    unsafe { compare(a, b, n) as i32 }
}

/// C's `bcmp`: zero when the `n` bytes at `a` and `b` are equal (Rust's `==` on byte slices).
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    unsafe { compare(a, b, n) as i32 }
}

/// The order of the `n` bytes at `a` and at `b`, compared as unsigned bytes, first to last.
///
/// Words are read unaligned and compared big-endian, which orders them as their bytes; a tail
/// shorter than a word is read as one more word that overlaps bytes already found equal. No
/// loop here is a byte loop, so the compiler cannot turn one back into a call to `memcmp`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[inline(always)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> Ordering {
    // SAFETY (every read below): it lies within the `n` bytes the caller vouches for.
    unsafe {
        let word = |p: *const u8, at: usize| (p.add(at) as *const u64).read_unaligned().to_be();
        let half = |p: *const u8, at: usize| (p.add(at) as *const u32).read_unaligned().to_be();
        if n >= 8 {
            let mut at = 0;
            while at + 8 <= n {
                let (x, y) = (word(a, at), word(b, at));
                if x != y {
                    return x.cmp(&y);
                }
                at += 8;
            }
            if at < n {
                return word(a, n - 8).cmp(&word(b, n - 8));
            }
            return Ordering::Equal;
        }
        if n >= 4 {
            return half(a, 0)
                .cmp(&half(b, 0))
                .then_with(|| half(a, n - 4).cmp(&half(b, n - 4)));
        }
        let byte = |p: *const u8, at: usize| if at < n { *p.add(at) } else { 0 };
        let x = u32::from_be_bytes([byte(a, 0), byte(a, 1), byte(a, 2), 0]);
        let y = u32::from_be_bytes([byte(b, 0), byte(b, 1), byte(b, 2), 0]);
        x.cmp(&y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from 0 to 40 and every position of a single differing byte (both ways, and
    /// with the bytes' high bit set, which a signed comparison would get wrong), as slices
    /// compare.
    #[test]
    fn compare_orders_bytes_as_slices_do() {
        for n in 0..=40usize {
            let base: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            // SAFETY: both slices hold `n` bytes.
            let same = unsafe { compare(base.as_ptr(), base.clone().as_ptr(), n) };
            assert_eq!(same, Ordering::Equal, "n {n}");
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    // SAFETY: both slices hold `n` bytes.
                    let got = unsafe { compare(base.as_ptr(), other.as_ptr(), n) };
                    assert_eq!(got, base.as_slice().cmp(other.as_slice()), "n {n} at {at}");
                    // SAFETY: as above.
                    let back = unsafe { compare(other.as_ptr(), base.as_ptr(), n) };
                    assert_eq!(back, got.reverse(), "n {n} at {at}");
                }
            }
        }
    }

    /// Bytes beyond `n` are never looked at: they differ here, and the prefixes compare equal.
    #[test]
    fn compare_reads_only_n_bytes() {
        let (a, b) = (b"abcdefghijklmnopXYZ", b"abcdefghijklmnopxyz");
        for n in 0..=16 {
            // SAFETY: both hold at least 16 bytes.
            assert_eq!(
                unsafe { compare(a.as_ptr(), b.as_ptr(), n) },
                Ordering::Equal
            );
        }
    }
}
