//! Value and percentage formatting, a port of pprof's `internal/measurement` so numbers print
//! exactly as `go tool pprof` prints them.

struct Unit {
    canonical: &'static str,
    aliases: &'static [&'static str],
    factor: f64,
}

struct UnitType {
    default: (&'static str, f64),
    units: &'static [Unit],
}

const UNIT_TYPES: &[UnitType] = &[
    UnitType {
        default: ("B", 1.0),
        units: &[
            Unit {
                canonical: "B",
                aliases: &["b", "byte"],
                factor: 1.0,
            },
            Unit {
                canonical: "kB",
                aliases: &["kb", "kbyte", "kilobyte"],
                factor: (1u64 << 10) as f64,
            },
            Unit {
                canonical: "MB",
                aliases: &["mb", "mbyte", "megabyte"],
                factor: (1u64 << 20) as f64,
            },
            Unit {
                canonical: "GB",
                aliases: &["gb", "gbyte", "gigabyte"],
                factor: (1u64 << 30) as f64,
            },
            Unit {
                canonical: "TB",
                aliases: &["tb", "tbyte", "terabyte"],
                factor: (1u64 << 40) as f64,
            },
            Unit {
                canonical: "PB",
                aliases: &["pb", "pbyte", "petabyte"],
                factor: (1u64 << 50) as f64,
            },
        ],
    },
    UnitType {
        default: ("s", 1e9),
        units: &[
            Unit {
                canonical: "ns",
                aliases: &["ns", "nanosecond"],
                factor: 1.0,
            },
            Unit {
                canonical: "us",
                aliases: &["μs", "us", "microsecond"],
                factor: 1e3,
            },
            Unit {
                canonical: "ms",
                aliases: &["ms", "millisecond"],
                factor: 1e6,
            },
            Unit {
                canonical: "s",
                aliases: &["s", "sec", "second"],
                factor: 1e9,
            },
            Unit {
                canonical: "hrs",
                aliases: &["hour", "hr"],
                factor: 3600e9,
            },
        ],
    },
    UnitType {
        default: ("GCU", 1.0),
        units: &[
            Unit {
                canonical: "n*GCU",
                aliases: &["nanogcu"],
                factor: 1e-9,
            },
            Unit {
                canonical: "u*GCU",
                aliases: &["microgcu"],
                factor: 1e-6,
            },
            Unit {
                canonical: "m*GCU",
                aliases: &["milligcu"],
                factor: 1e-3,
            },
            Unit {
                canonical: "GCU",
                aliases: &["gcu"],
                factor: 1.0,
            },
            Unit {
                canonical: "k*GCU",
                aliases: &["kilogcu"],
                factor: 1e3,
            },
            Unit {
                canonical: "M*GCU",
                aliases: &["megagcu"],
                factor: 1e6,
            },
            Unit {
                canonical: "G*GCU",
                aliases: &["gigagcu"],
                factor: 1e9,
            },
            Unit {
                canonical: "T*GCU",
                aliases: &["teragcu"],
                factor: 1e12,
            },
            Unit {
                canonical: "P*GCU",
                aliases: &["petagcu"],
                factor: 1e15,
            },
        ],
    },
];

impl UnitType {
    fn sniff(&self, unit: &str) -> Option<&Unit> {
        let mut unit = unit.to_lowercase();
        // pprof trims a plural `s` from units longer than two bytes (so "μs" becomes "μ").
        if unit.len() > 2
            && let Some(u) = unit.strip_suffix('s')
        {
            unit = u.to_string();
        }
        self.units
            .iter()
            .find(|u| u.aliases.contains(&unit.as_str()))
    }

    fn auto_scale(&self, value: f64) -> Option<(f64, &'static str)> {
        let mut f = 0.0;
        let mut unit = "";
        for u in self.units {
            if u.factor >= f && value / u.factor >= 1.0 {
                f = u.factor;
                unit = u.canonical;
            }
        }
        (f != 0.0).then(|| (value / f, unit))
    }

    fn convert(&self, value: i64, from: &str, to: &str) -> Option<(f64, &'static str)> {
        let from = self.sniff(from)?;
        let v = value as f64 * from.factor;
        if to == "minimum" || to == "auto" {
            return Some(
                self.auto_scale(v)
                    .unwrap_or((v / self.default.1, self.default.0)),
            );
        }
        Some(match self.sniff(to) {
            Some(t) => (v / t.factor, t.canonical),
            None => (v / self.default.1, self.default.0),
        })
    }
}

/// `measurement.Scale`: `value` in `from` expressed in `to` ("minimum"/"auto" pick the largest
/// unit in which the value is at least 1). Returns the scaled value and the unit's name.
pub fn scale(value: i64, from: &str, to: &str) -> (f64, String) {
    if value < 0 && value != i64::MIN {
        let (v, u) = scale(-value, from, to);
        return (-v, u);
    }
    for ut in UNIT_TYPES {
        if let Some((v, u)) = ut.convert(value, from, to) {
            return (v, u.to_string());
        }
    }
    match to {
        "count" | "sample" | "unit" | "minimum" | "auto" => (value as f64, String::new()),
        _ => (value as f64, to.to_string()),
    }
}

/// `measurement.ScaledLabel`: scaled, `%.2f` with a trailing `.00` removed, `0` for zero.
pub fn scaled_label(value: i64, from: &str, to: &str) -> String {
    let (v, u) = scale(value, from, to);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    if s == "0" || s == "-0" {
        return "0".to_string();
    }
    format!("{s}{u}")
}

/// `measurement.Label`: a value auto-scaled to its best unit.
pub fn label(value: i64, unit: &str) -> String {
    scaled_label(value, unit, "auto")
}

/// `measurement.Percentage`: `  100%`, `%5.2f%%` at or above 1%, `%5.2g%%` below.
pub fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_string()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_format_g(ratio, 2))
    }
}

/// Go's `%.{prec}g` (strconv 'g' with an explicit precision): at most `prec` significant
/// digits, trailing zeros dropped, exponent form when the exponent is < -4 or >= precision.
pub fn go_format_g(v: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let a = v.abs();
    // Digits rounded to `prec` significant figures (exact decimal, ties to even like Go).
    let (digits, dp) = if a == 0.0 {
        (String::new(), 0i32)
    } else {
        let e = format!("{:.*e}", prec - 1, a);
        let (mant, exp) = e.split_once('e').expect("exponent form");
        let exp: i32 = exp.parse().expect("exponent");
        let mut d: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
        while d.ends_with('0') {
            d.pop();
        }
        (d, exp + 1)
    };
    let nd = digits.len() as i32;
    let mut eprec = prec as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        // %e with min(prec, nd) - 1 fraction digits.
        let frac = (prec as i32).min(nd) - 1;
        let mut chars = digits.chars();
        out.push(chars.next().unwrap_or('0'));
        if frac > 0 {
            out.push('.');
            for i in 0..frac {
                out.push(chars.next().unwrap_or('0'));
                let _ = i;
            }
        }
        let e = if digits.is_empty() { 0 } else { exp };
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
        return out;
    }
    let p = if prec as i32 > dp { nd } else { prec as i32 };
    let frac = (p - dp).max(0);
    // %f with `frac` fraction digits from the digit string.
    let digit = |i: i32| -> char {
        if i >= 0 && i < nd {
            digits.as_bytes()[i as usize] as char
        } else {
            '0'
        }
    };
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac {
            out.push(digit(dp + i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "nanoseconds";

    #[test]
    fn scaled_values_from_the_doc() {
        // -list scales each value on its own (unit "minimum").
        assert_eq!(scaled_label(10_000_000, NS, "minimum"), "10ms");
        assert_eq!(scaled_label(830_000_000, NS, "minimum"), "830ms");
        assert_eq!(scaled_label(1_200_000_000, NS, "minimum"), "1.20s");
        assert_eq!(scaled_label(2_000_000_000, NS, "minimum"), "2s");
        assert_eq!(scaled_label(2_500_000_000, NS, "minimum"), "2.50s");
        assert_eq!(scaled_label(0, NS, "minimum"), "0");
        // -top with one unit for all rows.
        assert_eq!(scaled_label(10_000_000, NS, "s"), "0.01s");
        assert_eq!(scaled_label(100_000_000, NS, "s"), "0.10s");
        assert_eq!(scaled_label(1_190_000_000, NS, "s"), "1.19s");
        assert_eq!(scaled_label(0, NS, "s"), "0");
        assert_eq!(scaled_label(1_000_000, NS, "s"), "0");
        // Units of other kinds and unitless counts.
        assert_eq!(scaled_label(137, "count", "minimum"), "137");
        assert_eq!(scaled_label(137, "count", "count"), "137");
        assert_eq!(scaled_label(1536, "bytes", "minimum"), "1.50kB");
        assert_eq!(scaled_label(999, NS, "minimum"), "999ns");
        assert_eq!(scaled_label(1500, NS, "minimum"), "1.50us");
        assert_eq!(scaled_label(7200 * 1_000_000_000, NS, "minimum"), "2hrs");
        assert_eq!(scaled_label(-20_000_000, NS, "minimum"), "-20ms");
        // Durations (measurement.Label) as in "Duration: 3s" / "2.11s".
        assert_eq!(label(3_000_000_000, NS), "3s");
        assert_eq!(label(2_110_000_000, NS), "2.11s");
        // Unit selection.
        assert_eq!(scale(10_000_000, NS, "minimum").1, "ms");
        assert_eq!(scale(2_500_000_000, NS, "minimum").1, "s");
        assert_eq!(scale(5, "count", "minimum").1, "");
        assert_eq!(scale(5, "count", NS).1, NS);
    }

    #[test]
    fn percentages_from_the_doc() {
        let total = 2_500_000_000;
        assert_eq!(percentage(1_300_000_000, total), "52.00%");
        assert_eq!(percentage(1_200_000_000, total), "48.00%");
        assert_eq!(percentage(1_190_000_000, total), "47.60%");
        assert_eq!(percentage(100_000_000, total), " 4.00%");
        assert_eq!(percentage(10_000_000, total), "  0.4%");
        assert_eq!(percentage(0, total), "    0%");
        assert_eq!(percentage(total, total), "  100%");
        assert_eq!(percentage(2_499_000_000, total), "  100%");
        assert_eq!(percentage(2_490_000_000, total), "99.60%");
        assert_eq!(percentage(1, 0), "    0%");
        // The `%5.2g` branch: two significant digits, exponent below 1e-4.
        assert_eq!(percentage(45, 10_000), " 0.45%");
        assert_eq!(percentage(5, 10_000), " 0.05%");
        assert_eq!(percentage(1, 10_000_000), "1e-05%");
        assert_eq!(percentage(9_996, 1_000_000), "    1%");
        // From pprof output of the fixture: 10ms of 780ms and 0.01s of 1.37s.
        assert_eq!(percentage(10, 780), " 1.28%");
        assert_eq!(percentage(10, 1370), " 0.73%");
    }

    #[test]
    fn go_g_format() {
        assert_eq!(go_format_g(0.0, 2), "0");
        assert_eq!(go_format_g(0.4, 2), "0.4");
        assert_eq!(go_format_g(0.45, 2), "0.45");
        assert_eq!(go_format_g(0.456, 2), "0.46");
        assert_eq!(go_format_g(0.00012, 2), "0.00012");
        assert_eq!(go_format_g(0.000012, 2), "1.2e-05");
        assert_eq!(go_format_g(0.999, 2), "1");
        assert_eq!(go_format_g(12.0, 2), "12");
        assert_eq!(go_format_g(123.0, 2), "1.2e+02");
        assert_eq!(go_format_g(-0.5, 2), "-0.5");
    }
}
