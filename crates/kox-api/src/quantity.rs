//! Resource quantities (`100m`, `1Gi`, `2`, `1e3`) parsed, compared and printed as
//! upstream's `k8s.io/apimachinery/pkg/api/resource.Quantity`.
//!
//! A quantity is kept exactly at nano precision (upstream rounds anything finer up to the
//! next nano) with the format its suffix implied. Printing follows upstream: a string
//! already in canonical shape is echoed as typed (`100m`, `1Gi`, `+1`), anything else is
//! canonicalized (`1000` → `1k`, `0.5` → `500m`, `1024Mi` → `1Gi`, `1.5Ki` → `1536`).
//!
//! Limits: values are held in an `i128` of nanos (about ±1.7e29), ample for resources;
//! larger inputs are rejected as numerically unparsable. A decimal quantity of 1e21 or
//! more prints with an exponent (`1e21`), where upstream would drop the suffix.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Why a string is not a quantity; messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the shape of a quantity.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The number part cannot be represented.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is unknown.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How a quantity prints, implied by the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `1e3`, `5e-3`.
    DecimalExponent,
    /// Powers of 1024: `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`.
    BinarySI,
    /// Powers of 1000: `n`, `u`, `m`, none, `k`, `M`, `G`, `T`, `P`, `E`.
    DecimalSI,
}

/// A resource quantity.
#[derive(Clone, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
    /// The input, kept when it is already canonical (upstream prints it back as typed).
    typed: Option<String>,
}

impl Quantity {
    /// Parses a quantity string.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        if s == "0" {
            return Ok(Quantity {
                nanos: 0,
                format: Format::DecimalSI,
                typed: Some(s.to_owned()),
            });
        }
        let parts = split(s)?;
        let (base, exponent, mut format) =
            interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;

        let typed = keeps_typed_form(&parts, exponent, format).then(|| s.to_owned());

        let digits = format!("{}{}", parts.num, parts.denom);
        if digits.len() > 38 {
            return Err(QuantityError::Numeric);
        }
        let mantissa: i128 = digits.parse().map_err(|_| QuantityError::Numeric)?;
        let denom_len = parts.denom.len() as i32;
        let mut nanos = if base == 10 {
            scale_to_nanos(mantissa, exponent - denom_len)?
        } else {
            let shifted = mantissa
                .checked_mul(
                    1i128
                        .checked_shl(exponent as u32)
                        .ok_or(QuantityError::Numeric)?,
                )
                .ok_or(QuantityError::Numeric)?;
            scale_to_nanos(shifted, -denom_len)?
        };
        if format == Format::BinarySI {
            let max = i128::from(i64::MAX) * NANOS_PER_UNIT;
            nanos = nanos.min(max);
            if nanos > 0 && nanos < NANOS_PER_UNIT {
                format = Format::DecimalSI;
            }
        }
        if !parts.positive {
            nanos = -nanos;
        }
        Ok(Quantity {
            nanos,
            format,
            typed,
        })
    }

    /// A quantity of `milli` thousandths, printed in `format`.
    pub fn from_milli(milli: i64, format: Format) -> Self {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format,
            typed: None,
        }
    }

    /// A quantity of whole units, printed in `format`.
    pub fn from_units(units: i64, format: Format) -> Self {
        Quantity {
            nanos: i128::from(units) * NANOS_PER_UNIT,
            format,
            typed: None,
        }
    }

    /// The exact value in billionths of a unit.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in whole units, rounded up (upstream `Value`).
    pub fn value(&self) -> i64 {
        clamp_i64(ceil_div(self.nanos, NANOS_PER_UNIT))
    }

    /// The value in thousandths, rounded up (upstream `MilliValue`; CPU millicores).
    pub fn milli_value(&self) -> i64 {
        clamp_i64(ceil_div(self.nanos, 1_000_000))
    }

    /// The print format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sum, printed in this quantity's format (like upstream's `Add`), or `None` on
    /// overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
            typed: None,
        })
    }

    /// The difference, printed in this quantity's format, or `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format: self.format,
            typed: None,
        })
    }

    /// The canonical form, ignoring how the quantity was typed.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_owned();
        }
        let mut format = self.format;
        if format == Format::BinarySI
            && (self.nanos.abs() < 1024 * NANOS_PER_UNIT || self.nanos % NANOS_PER_UNIT != 0)
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut amount = self.nanos / NANOS_PER_UNIT;
            let mut exp = 0;
            while amount % 1024 == 0 && exp < 6 {
                amount /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{amount}{suffix}");
        }
        let (mut mantissa, mut exp) = (self.nanos, -9i32);
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exp += 1;
        }
        while exp % 3 != 0 {
            mantissa *= 10;
            exp -= 1;
        }
        let suffix = match (format, exp) {
            (Format::DecimalSI, -9) => "n".to_owned(),
            (Format::DecimalSI, -6) => "u".to_owned(),
            (Format::DecimalSI, -3) => "m".to_owned(),
            (_, 0) => String::new(),
            (Format::DecimalSI, 3) => "k".to_owned(),
            (Format::DecimalSI, 6) => "M".to_owned(),
            (Format::DecimalSI, 9) => "G".to_owned(),
            (Format::DecimalSI, 12) => "T".to_owned(),
            (Format::DecimalSI, 15) => "P".to_owned(),
            (Format::DecimalSI, 18) => "E".to_owned(),
            (_, e) => format!("e{e}"),
        };
        format!("{mantissa}{suffix}")
    }
}

impl fmt::Display for Quantity {
    /// The string as typed when it was canonical, else the canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.typed {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical()),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    /// Equal values are equal whatever their format (`1Ki == 1024`).
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;
    fn try_from(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        Quantity::parse(&q.0)
    }
}

impl From<&Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: &Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string())
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts a string or a JSON number, as upstream does.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(deserializer)?;
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "quantity must be a string or number, got {other}"
                )));
            }
        };
        Quantity::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The pieces of a quantity string (upstream `parseQuantityString`).
struct Parts<'a> {
    positive: bool,
    /// Integer digits with leading zeros stripped (`"0"` if none).
    num: String,
    /// Fraction digits.
    denom: &'a str,
    suffix: &'a str,
}

fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0".to_owned(),
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = s[num_start..pos].to_owned();
    if num.is_empty() {
        num = "0".to_owned();
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Base, exponent and format of a suffix (upstream's suffixer).
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |e| Some((10, e, Format::DecimalSI));
    let binary = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i64 = s[1..].parse().ok()?;
            let e = i32::try_from(e).ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

/// Whether upstream's fast path keeps the typed string as the printed form.
fn keeps_typed_form(parts: &Parts<'_>, exponent: i32, format: Format) -> bool {
    let digits = parts.num.len() + parts.denom.len();
    let mut scale = 0i32;
    let precision: i32 = match format {
        Format::DecimalExponent | Format::DecimalSI => {
            scale = exponent;
            18 - digits as i32
        }
        Format::BinarySI if parts.denom.is_empty() => {
            15 - parts.num.len() as i32 - (exponent as f32 * 3.0 / 10.0) as i32 - 1
        }
        Format::BinarySI => -1,
    };
    if precision < 0 {
        return false;
    }
    scale -= parts.denom.len() as i32;
    if scale < -9 {
        return false;
    }
    let shifted = format!("{}{}", parts.num, parts.denom);
    let Ok(value) = shifted.parse::<i64>() else {
        return false;
    };
    let mantissa: i64 = if format == Format::BinarySI {
        1i64 << exponent
    } else {
        1
    };
    if value.checked_mul(mantissa).is_none() {
        return false;
    }
    match format {
        Format::BinarySI => exponent % 10 == 0 && value & 0x07 != 0,
        _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
    }
}

/// `mantissa × 10^scale` in nanos, rounded away from zero to a whole nano.
fn scale_to_nanos(mantissa: i128, scale: i32) -> Result<i128, QuantityError> {
    let shift = scale + 9;
    if shift >= 0 {
        let factor = 10i128
            .checked_pow(shift as u32)
            .ok_or(QuantityError::Numeric)?;
        mantissa.checked_mul(factor).ok_or(QuantityError::Numeric)
    } else {
        let Some(divisor) = 10i128.checked_pow((-shift) as u32) else {
            // Far below a nano: anything non-zero rounds up to one nano.
            return Ok(if mantissa == 0 { 0 } else { 1 });
        };
        let q = mantissa / divisor;
        Ok(if mantissa % divisor == 0 { q } else { q + 1 })
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 { q + 1 } else { q }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and compares how it prints, or the error when `expect` starts with
    /// `ERR `.
    fn check(input: &str, expect: &str) {
        let got = match Quantity::parse(input) {
            Ok(q) => q.to_string(),
            Err(e) => format!("ERR {e}"),
        };
        assert_eq!(got, expect, "input: {input:?}");
    }

    #[test]
    fn prints_like_upstream() {
        let cases = [
            ("0", "0"),
            ("00", "0"),
            ("0m", "0"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            ("1.5", "1500m"),
            ("2", "2"),
            ("+1", "+1"),
            ("-1", "-1"),
            ("1000", "1k"),
            ("1024", "1024"),
            ("1500", "1500"),
            ("1k", "1k"),
            ("1e3", "1e3"),
            ("1e6", "1e6"),
            ("1000e3", "1e6"),
            ("1E3", "1E3"),
            ("1Ki", "1Ki"),
            ("1Gi", "1Gi"),
            ("3Gi", "3Gi"),
            ("8Gi", "8Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("512Ki", "512Ki"),
            ("100M", "100M"),
            ("1M", "1M"),
            ("1000000", "1M"),
            ("5n", "5n"),
            ("1u", "1u"),
            ("0.0000000001", "1n"),
            ("1.2345678901", "1234567891n"),
            ("-0.5", "-500m"),
            ("12E", "12E"),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn canonical_strings_are_kept_and_alternates_canonicalize() {
        // (canonical, an alternate spelling) pairs from upstream's quantity tests.
        let cases = [
            ("1Gi", "1024Mi"),
            ("300Mi", "307200Ki"),
            ("6Ki", ""),
            ("1001Gi", "1025024Mi"),
            ("1Ti", "1024Gi"),
            ("5", "5000m"),
            ("500m", "0.5"),
            ("1G", "1000M"),
            ("1G", "0.001T"),
            ("1m", "1000u"),
            ("80m", ""),
            ("1080m", "1.08"),
            ("1080m", "1080000000n"),
            ("300M", ""),
            ("1T", ""),
            ("1234567M", ""),
            ("1234567m", ""),
            ("3k", ""),
            ("1025", ""),
            ("0", "00"),
            ("1e9", ".001e12"),
            ("1e-3", "0.001e0"),
            ("1e-9", "1000e-12"),
            ("80e-3", ""),
            ("300e6", ""),
            ("1e12", ""),
            ("3e3", ""),
            ("1n", ""),
            ("80n", ""),
            ("1080n", ""),
            ("1u", ""),
            ("80u", ""),
            ("1080u", ""),
        ];
        for (canonical, alternate) in cases {
            check(canonical, canonical);
            let q = Quantity::parse(canonical).unwrap();
            assert_eq!(q.canonical(), canonical, "{canonical}");
            if canonical != "0" {
                let neg = Quantity::from_units(0, q.format()).checked_sub(&q).unwrap();
                assert_eq!(neg.to_string(), format!("-{canonical}"));
            }
            if !alternate.is_empty() {
                check(alternate, canonical);
            }
        }
        for (input, want) in [
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
        ] {
            check(input, want);
            check(&format!("-{input}"), &format!("-{want}"));
        }
    }

    #[test]
    fn rejects_malformed_strings() {
        check(
            "",
            "ERR quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
        check(
            "1 Gi",
            "ERR quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
        check(
            "abc",
            "ERR quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
        check(
            "1Qi",
            "ERR quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
        check("1ki", "ERR unable to parse quantity's suffix");
        check(
            "1KiB",
            "ERR quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        );
        check("1e", "ERR unable to parse quantity's suffix");
        check(
            &"9".repeat(60),
            "ERR unable to parse numeric part of quantity",
        );
    }

    #[test]
    fn compares_by_value() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
        let mut v = [q("2"), q("500m"), q("1Ki"), q("1")];
        v.sort();
        let printed: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["500m", "1", "2", "1Ki"]);
    }

    #[test]
    fn values_round_up() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("1").value(), 1);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("0.1m").milli_value(), 1);
        assert_eq!(q("-1.5").value(), -1);
    }

    #[test]
    fn arithmetic_keeps_format() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").checked_add(&q("900m")).unwrap().to_string(), "1");
        assert_eq!(q("1Gi").checked_add(&q("1Gi")).unwrap().to_string(), "2Gi");
        assert_eq!(
            q("1Gi").checked_sub(&q("512Mi")).unwrap().to_string(),
            "512Mi"
        );
        assert_eq!(
            Quantity::from_milli(250, Format::DecimalSI).to_string(),
            "250m"
        );
        assert_eq!(
            Quantity::from_units(2048, Format::BinarySI).to_string(),
            "2Ki"
        );
    }

    #[test]
    fn serde_round_trip() {
        let q: Quantity = serde_json::from_str("\"1.5Gi\"").unwrap();
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"1536Mi\"");
        let n: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(n.to_string(), "2");
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        let o = k8s_openapi::apimachinery::pkg::api::resource::Quantity("250m".into());
        assert_eq!(Quantity::try_from(&o).unwrap().milli_value(), 250);
    }
}
