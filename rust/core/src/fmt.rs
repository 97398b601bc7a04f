//! Number formatting for messages, matching what the Python package printed before these
//! messages moved into the core (Python's `repr` of a float, `{:,}` thousands separators),
//! so that a value reads the same in every message.

/// `x` as Python's `repr(float)` writes it: the shortest digits that round-trip, a `.0` on
/// whole numbers, exponent notation below 1e-4 and from 1e16 with a sign and at least two
/// exponent digits (`1e-05`, `1.5e+16`), `nan`, `inf`.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    // Rust's Debug already gives the shortest round-trip digits, `.0` on whole numbers and
    // the same switch to exponent notation; only the exponent is written differently.
    let s = format!("{x:?}");
    match s.split_once('e') {
        None => s,
        Some((mantissa, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// The decimal digits of `digits` (an optional `-` then digits) with a `,` every three
/// digits from the right, as Python's `{:,}`.
pub(crate) fn thousands(digits: &str) -> String {
    let (sign, body) = digits.strip_prefix('-').map_or(("", digits), |b| ("-", b));
    let mut out = String::with_capacity(body.len() + body.len() / 3 + 1);
    for (i, ch) in body.chars().enumerate() {
        if i > 0 && (body.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings written by Python 3 (`repr(x)`, `f"{n:,}"`).
    #[test]
    fn as_python_writes_them() {
        let reprs = [
            (1.0, "1.0"),
            (0.95, "0.95"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (2.5e-300, "2.5e-300"),
            (1e16, "1e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.5e16, "1.5e+16"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, want) in reprs {
            assert_eq!(float_repr(x), want, "{x:?}");
        }
        for (s, want) in [("0", "0"), ("999", "999"), ("1000", "1,000"), ("21000", "21,000"), ("1234567", "1,234,567"), ("-1234", "-1,234")] {
            assert_eq!(thousands(s), want);
        }
    }
}
