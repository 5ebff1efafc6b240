//! Text building without `core::fmt`: the browser's wasm must not carry the
//! formatting machinery (`format!`, `to_string()`, `{:?}` pull several KB of
//! it in), so the code paths the browser runs build their text with these.

/// Appends the decimal digits of `n`.
pub(crate) fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut v = n.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for d in digits.iter().skip(i) {
        out.push(char::from(*d));
    }
}

/// Appends `n` zero-padded to `width` digits (`n` ≥ 0).
pub(crate) fn push_padded(out: &mut String, n: i64, width: usize) {
    let mut s = String::new();
    push_int(&mut s, n);
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

/// `parts` concatenated.
pub(crate) fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// The decimal text of `n`.
pub(crate) fn int(n: i64) -> String {
    let mut s = String::new();
    push_int(&mut s, n);
    s
}

/// Appends `bytes` as lower-case hex (without `core::fmt`).
pub(crate) fn push_hex(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from(if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 }));
        }
    }
}

/// `s` lower-cased for the Latin (ASCII, Latin-1, Latin Extended-A), Greek
/// and Cyrillic capitals, the scripts of the EU's official languages; other
/// characters are kept. `str::to_lowercase` would bring ~9 KB of Unicode
/// tables into the browser's wasm. Where it maps a character, it maps it as
/// `char::to_lowercase` does (`İ` to `i`, and `Σ` always to `σ`).
pub(crate) fn lowercase(s: &str) -> String {
    s.chars().map(lower).collect()
}

fn lower(c: char) -> char {
    let u = u32::from(c);
    let l = match u {
        0x41..=0x5A | 0xC0..=0xD6 | 0xD8..=0xDE => u + 32,
        0x130 => 0x69,
        0x100..=0x137 | 0x14A..=0x177 if u % 2 == 0 => u + 1,
        0x139..=0x148 | 0x179..=0x17E if u % 2 == 1 => u + 1,
        0x178 => 0xFF,
        0x386 => 0x3AC,
        0x388..=0x38A => u + 37,
        0x38C => 0x3CC,
        0x38E..=0x38F => u + 63,
        0x391..=0x3A1 | 0x3A3..=0x3AB | 0x410..=0x42F => u + 32,
        0x400..=0x40F => u + 80,
        _ => u,
    };
    char::from_u32(l).unwrap_or(c)
}

/// A plain decimal (`-12`, `+0.5`, `3.`, `.25`) as the nearest `f64`, the
/// same value `str::parse::<f64>` gives; `None` for anything else, including
/// exponents and more than 2^53 in the digits (no trait needs them). One
/// division of two exact floats is correctly rounded, which is why this
/// needs no big-number tables (`str::parse::<f64>` brings ~8 KB of them).
pub(crate) fn parse_decimal(s: &str) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.len() + frac.len() == 0 {
        return None;
    }
    let mut m: u64 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        m = m.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if m > 1 << 53 {
            return None;
        }
    }
    let x = m as f64 / POW10.get(frac.len()).copied()?;
    Some(if negative { -x } else { x })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decimals_parse_like_std(text in "[+-]?[0-9]{0,17}(\\.[0-9]{0,20})?") {
            let ours = super::parse_decimal(&text);
            let digits = text.bytes().filter(u8::is_ascii_digit).count();
            if digits > 0 && digits <= 15 {
                prop_assert!(ours.is_some(), "{}", text);
            }
            if let Some(x) = ours {
                prop_assert_eq!(Some(x.to_bits()), text.parse::<f64>().ok().map(f64::to_bits), "{}", text);
            } else if digits <= 15 {
                prop_assert!(text.parse::<f64>().is_err(), "{}", text);
            }
        }

        #[test]
        fn anything_else_is_not_a_decimal(text in "[-+.0-9eE a-z,]{0,8}") {
            if let Some(x) = super::parse_decimal(&text) {
                prop_assert_eq!(Some(x), text.parse::<f64>().ok(), "{}", text);
            }
        }
    }

    #[test]
    fn lowercase_agrees_with_std_where_it_maps() {
        for u in 0..0x3_0000u32 {
            let Some(c) = char::from_u32(u) else { continue };
            let std = c.to_lowercase().next().unwrap_or(c);
            let ours = super::lower(c);
            // Never a mapping std would not make…
            assert!(ours == c || ours == std, "U+{u:04X}: {ours} vs {std}");
            // …and every one it makes in the scripts we cover.
            let covered = matches!(u, 0..=0x17F | 0x370..=0x3FF | 0x400..=0x42F);
            if covered && !matches!(u, 0x370..=0x385 | 0x3CF..=0x3FF) {
                assert_eq!(ours, std, "U+{u:04X}");
            }
        }
        assert_eq!(super::lowercase("Étude DUPONT & Ἀ ΣΟΦΊΑ Москва"), "étude dupont & Ἀ σοφία москва");
    }

    #[test]
    fn integers_print_like_display() {
        for n in [0, 7, -7, 10, 1234567890, i64::MIN, i64::MAX] {
            assert_eq!(super::int(n), n.to_string());
        }
        let mut s = String::new();
        super::push_padded(&mut s, 7, 3);
        assert_eq!(s, "007");
    }
}
