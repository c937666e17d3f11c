//! What every stage's parameters are made of: named choices, exact fractions and dates, each
//! read the same way from the command line (clap) and from a pipeline file (serde).
//!
//! Why one place: a stage's parameters are one type that the pipeline deserialises and the
//! CLI flattens (see `DESIGN.md`). Their value types must then parse identically on both
//! faces. A choice's names are written once, in [`choices!`](crate::choices), which
//! implements both clap's `ValueEnum` and serde from that one list, so renaming a CLI value
//! cannot silently change the pipeline file format; a fraction or a date parses through its
//! one `FromStr`.
//!
//! Errors of a parameter check name the canonical snake_case key ([`crate::Error::Param`]);
//! the CLI renders it as `--max-depth`, a pipeline as `stages.NAME.max_depth` with the file
//! and line.

use std::fmt;

use chrono::NaiveDate;

/// Defines an enum of named choices; the names are shared by the CLI (clap `ValueEnum`,
/// with each variant's doc as its help) and by parameter and model files (serde), so the
/// two cannot drift apart. Reading from a file gives `"x" is not one of: a, b` for an
/// unknown name. A trailing `default = Variant;` implements `Default`.
///
/// ```
/// ecrm::choices! {
///     /// How loud.
///     pub enum Volume {
///         /// Barely.
///         Low = "low",
///         High = "high",
///     }
/// }
/// assert_eq!("high".parse::<Volume>(), Ok(Volume::High));
/// assert_eq!(Volume::Low.name(), "low");
/// assert_eq!(
///     "loud".parse::<Volume>().unwrap_err(),
///     "\"loud\" is not one of: low, high"
/// );
/// ```
#[macro_export]
macro_rules! choices {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $text:literal ),+ $(,)?
        }
        $(default = $default:ident;)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant ),+
        }

        impl $name {
            /// Every choice, in the order the help lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name the CLI and parameter files use.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Each choice's doc line, for the CLI's help.
            fn help(self) -> String {
                let lines: &[&str] = match self {
                    $($name::$variant => &[$($doc),*]),+
                };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            }
        }

        $(
            impl ::std::default::Default for $name {
                fn default() -> Self {
                    $name::$default
                }
            }
        )?

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            /// A choice by name (case-insensitive, as pipeline files have always read them).
            fn from_str(s: &str) -> ::std::result::Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| $crate::param::not_one_of(s, Self::ALL.iter().map(|c| c.name())))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }
            fn to_possible_value(&self) -> ::std::option::Option<::clap::builder::PossibleValue> {
                let value = ::clap::builder::PossibleValue::new(self.name());
                let help = self.help();
                Some(if help.is_empty() { value } else { value.help(help) })
            }
        }
    };
}

/// `"x" is not one of: a, b, c`: the message for a name that is not a choice.
pub fn not_one_of<'a>(given: &str, names: impl Iterator<Item = &'a str>) -> String {
    format!(
        "{given:?} is not one of: {}",
        names.collect::<Vec<_>>().join(", ")
    )
}

/// An exact non-negative fraction, read from text such as `0.001`, `1e-3`, `5%` or `1/3`
/// (in a pipeline file also a bare number): `0.001` is one thousandth, not the nearest binary
/// double, so thresholds such as `ceil(min_support × baskets)` are computed in integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub num: u64,
    pub den: u64,
}

impl Fraction {
    /// `ceil(self × n)`, exactly; saturates at `u64::MAX` for fractions above 1.
    pub fn ceil_mul(self, n: u64) -> u64 {
        let p = u128::from(self.num) * u128::from(n);
        u64::try_from(p.div_ceil(u128::from(self.den))).unwrap_or(u64::MAX)
    }

    /// Whether the fraction is above 0 and at most 1.
    pub fn is_share(self) -> bool {
        self.num > 0 && self.num <= self.den
    }
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Digits scaled by a power of ten too large for a fraction of 64-bit integers.
const MAX_SCALE: i32 = 30;

impl std::str::FromStr for Fraction {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Fraction, String> {
        let t = text.trim();
        let bad = || format!("{text:?} is not a number such as 0.01, 1e-3, 1% or 1/100");
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (num, den): (u128, u128) = if let Some((a, b)) = t.split_once('/') {
            let (a, b) = (a.trim(), b.trim());
            if !digits(a) || !digits(b) {
                return Err(bad());
            }
            let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if b == 0 {
                return Err(format!("{text:?} divides by zero"));
            }
            (a, b)
        } else {
            let (t, percent) = match t.strip_suffix('%') {
                Some(p) => (p.trim_end(), true),
                None => (t, false),
            };
            let (mantissa, exp) = match t.find(['e', 'E']) {
                Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
                None => (t, 0),
            };
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            if !(digits(int) || digits(frac))
                || !(int.is_empty() || digits(int))
                || !(frac.is_empty() || digits(frac))
            {
                return Err(bad());
            }
            let all = format!("{int}{frac}");
            if all.len() > MAX_SCALE as usize {
                return Err(bad());
            }
            let num: u128 = all.parse().map_err(|_| bad())?;
            let scale = (frac.len() as i32)
                .checked_sub(exp)
                .and_then(|s| s.checked_add(if percent { 2 } else { 0 }))
                .filter(|s| (-MAX_SCALE..=MAX_SCALE).contains(s))
                .ok_or_else(bad)?;
            if scale >= 0 {
                (num, 10u128.pow(scale as u32))
            } else {
                // Checked: `1000000000e30` is 10^39, beyond 128 bits.
                let num = num
                    .checked_mul(10u128.pow((-scale) as u32))
                    .ok_or_else(bad)?;
                (num, 1)
            }
        };
        let g = gcd(num, den).max(1);
        let (num, den) = (num / g, den / g);
        match (u64::try_from(num), u64::try_from(den)) {
            (Ok(num), Ok(den)) => Ok(Fraction { num, den }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Fraction {
    /// A decimal when the denominator divides a power of ten, else `num/den`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let den = u128::from(self.den);
        let Some(scale) = (0..=19u32).find(|&k| 10u128.pow(k) % den == 0) else {
            return write!(f, "{}/{}", self.num, self.den);
        };
        let p = 10u128.pow(scale);
        let scaled = u128::from(self.num) * p / den;
        if scale == 0 {
            write!(f, "{scaled}")
        } else {
            write!(
                f,
                "{}.{:0width$}",
                scaled / p,
                scaled % p,
                width = scale as usize
            )
        }
    }
}

impl serde::Serialize for Fraction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fraction {
    /// Text (`"1%"`, `"1/100"`) or a number (`0.01`, `1`): a TOML float is read through
    /// the shortest decimal that gives the same double, which is what the user wrote
    /// (0.005 → "0.005").
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Fraction;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number such as 0.01, or text such as \"1%\" or \"1/100\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fraction, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Fraction, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Fraction, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Fraction, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The first day a date parameter may name: business dates before it are typing mistakes.
pub const FIRST_DATE: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date");
/// The last day a date parameter may name: it leaves room for date arithmetic (windows of
/// up to ten years) within the nanosecond timestamps of the warehouse, which end in 2262.
pub const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2199, 12, 31).expect("a date");

/// Parses a date parameter (`YYYY-MM-DD`) between [`FIRST_DATE`] and [`LAST_DATE`].
pub fn parse_date(text: &str) -> std::result::Result<NaiveDate, String> {
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date; expected YYYY-MM-DD"))?;
    if !(FIRST_DATE..=LAST_DATE).contains(&day) {
        return Err(format!(
            "{day} is out of range; dates run from {FIRST_DATE} to {LAST_DATE}"
        ));
    }
    Ok(day)
}

/// The keys of a parameter struct (one that derives `Deserialize`), in declaration order:
/// what serde itself would accept. A pipeline stage made of several parameter types hands
/// each its own keys with it.
pub fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    /// A deserializer that only records the field list serde hands it.
    struct Fields(&'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = serde::de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(Self::Error::custom("only the field names were asked for"))
        }
        fn deserialize_any<V: Visitor<'de>>(
            self,
            _visitor: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut f = Fields(&[]);
    let _ = T::deserialize(&mut f);
    f.0
}

/// A date parameter under its canonical key (see [`parse_date`]).
pub fn date(key: &str, text: &str) -> crate::Result<NaiveDate> {
    parse_date(text).map_err(|m| crate::Error::param(key, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_read_exactly() {
        let f = |s: &str| s.parse::<Fraction>().unwrap();
        assert_eq!(f("0.001"), Fraction { num: 1, den: 1000 });
        assert_eq!(f("1e-3"), Fraction { num: 1, den: 1000 });
        assert_eq!(f("2.5E-3"), Fraction { num: 1, den: 400 });
        assert_eq!(f("5%"), Fraction { num: 1, den: 20 });
        assert_eq!(f(".5"), Fraction { num: 1, den: 2 });
        assert_eq!(f("1/3"), Fraction { num: 1, den: 3 });
        assert_eq!(f("1"), Fraction { num: 1, den: 1 });
        for bad in ["", "x", "-0.1", "1/0", "0.1.2", "e3", "1e"] {
            assert!(bad.parse::<Fraction>().is_err(), "{bad:?}");
        }
        // 0.1 × 30 is 3.0000000000000004 in doubles; exactly 3 here.
        assert_eq!(f("0.1").ceil_mul(30), 3);
        assert_eq!(f("0.001").ceil_mul(9835), 10);
        assert_eq!(f("0.001").to_string(), "0.001");
        assert_eq!(f("1/3").to_string(), "1/3");
        assert_eq!(f("5%").to_string(), "0.05");
        assert_eq!(f("2").to_string(), "2");
    }

    /// Regression (issue 16, bug 4): `--min-support 1000000000e30` overflowed a u128.
    #[test]
    fn min_support_1000000000e30_is_an_error_not_an_overflow() {
        let e = "1000000000e30".parse::<Fraction>().unwrap_err();
        assert!(e.contains("is not a number"), "{e}");
        assert!("1e2147483647".parse::<Fraction>().is_err());
        assert!("1e-2147483648".parse::<Fraction>().is_err());
        assert_eq!(
            "18446744073709551615/1"
                .parse::<Fraction>()
                .unwrap()
                .ceil_mul(u64::MAX),
            u64::MAX
        );
    }

    #[test]
    fn fractions_deserialize_from_numbers_and_text() {
        #[derive(serde::Deserialize)]
        struct T {
            a: Fraction,
            b: Fraction,
            c: Fraction,
        }
        let t: T = toml::from_str("a = 0.005\nb = \"1%\"\nc = 1").unwrap();
        assert_eq!(t.a, Fraction { num: 1, den: 200 });
        assert_eq!(t.b, Fraction { num: 1, den: 100 });
        assert_eq!(t.c, Fraction { num: 1, den: 1 });
        let e = toml::from_str::<T>("a = \"lots\"\nb = 1\nc = 1")
            .err()
            .unwrap();
        assert!(e.message().contains("\"lots\" is not a number"), "{e}");
    }

    #[test]
    fn the_fields_of_a_struct_are_what_serde_accepts() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct P {
            a: u8,
            #[serde(rename = "b_b")]
            b: u8,
        }
        assert_eq!(fields::<P>(), ["a", "b_b"]);
    }

    proptest::proptest! {
        /// Any text either is a fraction or is refused with a message: never a panic. A
        /// fraction reads back as itself from its own text.
        #[test]
        fn any_text_is_a_fraction_or_an_error(text in "\\PC{0,40}") {
            if let Ok(f) = text.parse::<Fraction>() {
                let again: Fraction = f.to_string().parse().unwrap();
                proptest::prop_assert_eq!(f, again);
            }
        }

        /// Decimals written with digits are read exactly: `n / 10^d`.
        #[test]
        fn decimals_are_exact(n in 0u64..1_000_000_000, d in 0u32..10) {
            let text = if d == 0 {
                n.to_string()
            } else {
                let s = format!("{n:0>width$}", width = d as usize + 1);
                let (int, frac) = s.split_at(s.len() - d as usize);
                format!("{int}.{frac}")
            };
            let f: Fraction = text.parse().unwrap();
            proptest::prop_assert_eq!(
                u128::from(f.num) * 10u128.pow(d),
                u128::from(n) * u128::from(f.den)
            );
        }
    }

    /// Regression (issue 16, bugs 6 and 9): dates far in the future overflowed the
    /// timestamp and date arithmetic instead of being the user's error.
    #[test]
    fn dates_are_checked_to_a_sane_range() {
        assert_eq!(
            parse_date("2011-12-10"),
            Ok(NaiveDate::from_ymd_opt(2011, 12, 10).unwrap())
        );
        for far in ["2300-01-01", "+262142-12-31", "1066-10-14"] {
            let e = parse_date(far).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("is not a date"),
                "{far}: {e}"
            );
        }
        assert!(parse_date("2011-13-01").unwrap_err().contains("YYYY-MM-DD"));
    }
}
