//! Exact money: decimal text to integer cents, never through a float.

/// Why a decimal amount was refused; the text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a number")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    #[error("is too large")]
    TooLarge,
}

/// Converts the JSON text of a number (e.g. `3.5`, `0.1`, `1e2`, `12.30`) to cents exactly.
/// Trailing zeros beyond two decimals are fine (`1.500`), significant digits are not (`1.005`).
pub fn parse_cents(text: &str) -> Result<i64, MoneyError> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = body[i + 1..]
                .trim_start_matches('+')
                .parse()
                .map_err(|_| MoneyError::NotANumber)?;
            (&body[..i], exp)
        }
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !digits_ok(int_part) || !digits_ok(frac_part) {
        return Err(MoneyError::NotANumber);
    }
    if mantissa.ends_with('.') {
        return Err(MoneyError::NotANumber);
    }
    // value = digits × 10^(exponent - frac_len); cents = value × 100.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut scale = exponent - frac_part.len() as i32 + 2;
    let mut digits = digits.to_string();
    // Drop trailing zeros that the scale can absorb (1.500 is 150 cents).
    while scale < 0 && digits.ends_with('0') {
        digits.pop();
        scale += 1;
    }
    if digits.is_empty() {
        return Ok(0);
    }
    if scale < 0 {
        return Err(MoneyError::TooPrecise);
    }
    if negative {
        return Err(MoneyError::Negative);
    }
    if digits.len() + scale as usize > 18 {
        return Err(MoneyError::TooLarge);
    }
    let base: i64 = digits.parse().map_err(|_| MoneyError::TooLarge)?;
    base.checked_mul(10i64.pow(scale as u32))
        .ok_or(MoneyError::TooLarge)
}

/// Cents as a decimal string with two places (`350` → `"3.50"`).
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_cents() {
        assert_eq!(parse_cents("3.5"), Ok(350));
        assert_eq!(parse_cents("0.1"), Ok(10));
        assert_eq!(parse_cents("0.29"), Ok(29));
        assert_eq!(parse_cents("1500"), Ok(150_000));
        assert_eq!(parse_cents("12.30"), Ok(1230));
        assert_eq!(parse_cents("1.500"), Ok(150));
        assert_eq!(parse_cents("1e2"), Ok(10_000));
        assert_eq!(parse_cents("1.5E+1"), Ok(1500));
        assert_eq!(parse_cents("25e-2"), Ok(25));
        assert_eq!(parse_cents("0"), Ok(0));
        assert_eq!(parse_cents("-0"), Ok(0));
        assert_eq!(parse_cents("0.00"), Ok(0));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_cents("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(parse_cents("0.001"), Err(MoneyError::TooPrecise));
        assert_eq!(parse_cents("1e-3"), Err(MoneyError::TooPrecise));
        assert_eq!(parse_cents("-1"), Err(MoneyError::Negative));
        assert_eq!(parse_cents("1e30"), Err(MoneyError::TooLarge));
        assert_eq!(parse_cents("abc"), Err(MoneyError::NotANumber));
        assert_eq!(parse_cents("1."), Err(MoneyError::NotANumber));
        assert_eq!(parse_cents(".5"), Err(MoneyError::NotANumber));
        assert_eq!(parse_cents(""), Err(MoneyError::NotANumber));
    }

    #[test]
    fn formats_two_places() {
        assert_eq!(format_cents(350), "3.50");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(-1234), "-12.34");
    }
}
