//! E.164 phone numbers: `+` and 8–15 digits. The session window is stored per normalized
//! number, so `5215550000`, `+52 1 555 0000` and `+5215550000` are the same guest.

/// The normalized number (`+` and digits), or `None` when it is not a plausible E.164
/// number. Spaces, dashes, dots and parentheses are ignored; a leading `+` is optional.
pub fn normalize(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    // E.164 has no leading zero in the country code.
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    Some(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_e164() {
        assert_eq!(normalize("5215550000").as_deref(), Some("+5215550000"));
        assert_eq!(normalize("+52 1 555-0000").as_deref(), Some("+5215550000"));
        assert_eq!(normalize(" +5215550000 ").as_deref(), Some("+5215550000"));
        assert_eq!(normalize("1234567").as_deref(), None);
        assert_eq!(normalize("1234567890123456").as_deref(), None);
        assert_eq!(normalize("abc").as_deref(), None);
        assert_eq!(normalize("++5215550000").as_deref(), None);
        assert_eq!(normalize("05215550000").as_deref(), None);
        assert_eq!(normalize("").as_deref(), None);
    }
}
