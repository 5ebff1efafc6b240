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

#[cfg(test)]
mod tests {
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
