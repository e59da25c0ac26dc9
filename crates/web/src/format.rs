//! Numbers as a person reads them on the panel: as many decimals as the size of the number
//! deserves (the exact value stays in the page, on hover).

/// The separator of thousands and between a number and its unit: a narrow no-break space
/// (a thin space that never breaks a line between the digits or before the unit).
const THIN: char = '\u{202F}';

/// `value` with its `unit` at a precision that reads well: energy and power with 2 decimals
/// below 10, 1 below 1,000, none above (thousands grouped); percentages with 1 decimal below 10,
/// none above; a number without a unit as it is.
pub fn reading(value: f64, unit: Option<&str>) -> String {
    let Some(unit) = unit else {
        return format!("{value}");
    };
    let mut decimals = decimals(value, unit);
    // 999.96 rounds to 1000.0: a number in the next band gets that band's precision.
    let rounded: f64 = format!("{value:.decimals$}").parse().unwrap_or(value);
    decimals = decimals.min(self::decimals(rounded, unit));
    let mut n = format!("{value:.decimals$}");
    // -0.001 rounds to "-0.00": nothing there is negative.
    if n.starts_with('-') && n[1..].chars().all(|c| c == '0' || c == '.') {
        n.remove(0);
    }
    format!("{}{THIN}{unit}", grouped(&n))
}

fn decimals(value: f64, unit: &str) -> usize {
    let size = value.abs();
    match unit {
        "%" if size < 10.0 => 1,
        "%" => 0,
        _ if size < 10.0 => 2,
        _ if size < 1000.0 => 1,
        _ => 0,
    }
}

/// The integer part of a formatted number in groups of three digits.
fn grouped(n: &str) -> String {
    let (sign, digits) = n.split_at(usize::from(n.starts_with('-')));
    let (int, frac) = digits.split_at(digits.find('.').unwrap_or(digits.len()));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(THIN);
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: String) -> String {
        s.replace(THIN, " ")
    }

    #[test]
    fn precision_follows_the_size_and_thousands_are_grouped() {
        let kwh = |v| plain(reading(v, Some("kWh")));
        assert_eq!(kwh(26687.592631), "26 688 kWh");
        assert_eq!(kwh(1234567.4), "1 234 567 kWh");
        assert_eq!(kwh(999.96), "1 000 kWh", "rounded into the next band");
        assert_eq!(kwh(9.999), "10.0 kWh");
        assert_eq!(kwh(1000.0), "1 000 kWh");
        assert_eq!(kwh(123.456), "123.5 kWh");
        assert_eq!(kwh(9.876), "9.88 kWh");
        assert_eq!(kwh(0.0), "0.00 kWh");
        assert_eq!(kwh(-0.001), "0.00 kWh", "no negative zero");
        let kw = |v| plain(reading(v, Some("kW")));
        assert_eq!(kw(-3.456), "-3.46 kW");
        assert_eq!(kw(-12.34), "-12.3 kW");
        assert_eq!(kw(-4321.0), "-4 321 kW");
        let pct = |v| plain(reading(v, Some("%")));
        assert_eq!(pct(87.36), "87 %");
        assert_eq!(pct(4.44), "4.4 %");
        assert_eq!(pct(100.0), "100 %");
        assert_eq!(plain(reading(3.5, None)), "3.5");
    }
}
