//! The declarative description of `jack.toml`: every key of every table,
//! declared once with its name, type, default, allowed range or set and a
//! one-line doc ([`Key`]). A section's scalar keys are declared in its
//! [`section!`] invocation, which also makes the struct fields, their read
//! in the walker (with the range check and the problem's key and line) and
//! their lines in `check-config`'s print; keys whose value needs more than a
//! range (addresses, URLs, secrets, names, arrays of tables) are declared
//! too ([`Key::hand`]) and read by their section's own code. A test checks
//! the shipped `jack.toml` documents exactly the declared keys with their
//! defaults. This module must not read a file or know a section.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::walk::{Cx, Table};

/// One configuration key, as `jack.toml` documents it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// One line: what the key does.
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer within `min..=max`, in `unit`.
    Integer {
        default: u64,
        min: u64,
        max: u64,
        unit: Unit,
    },
    /// A path, relative ones against the configuration's folder.
    Path { default: &'static str },
    /// One of a set of strings.
    Choice {
        default: &'static str,
        choices: &'static [&'static str],
    },
    /// Read and checked by its section's own code (an address, a URL, a
    /// secret, a name, a table); `default` as `jack.toml` writes it, when
    /// the key has one the file shows.
    Hand { default: Option<&'static str> },
}

/// What an integer key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Items, threads, bytes: the number itself.
    Count,
    Millis,
    Secs,
}

impl Key {
    const fn integer(
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
        unit: Unit,
        doc: &'static str,
    ) -> Key {
        Key {
            name,
            kind: Kind::Integer {
                default,
                min: *range.start(),
                max: *range.end(),
                unit,
            },
            doc,
        }
    }

    /// A count (threads, items, bytes, attempts).
    pub const fn count(
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
        doc: &'static str,
    ) -> Key {
        Key::integer(name, default, range, Unit::Count, doc)
    }

    /// A duration in milliseconds (the key's name ends in `_ms`).
    pub const fn millis(
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
        doc: &'static str,
    ) -> Key {
        Key::integer(name, default, range, Unit::Millis, doc)
    }

    /// A duration in seconds (the key's name ends in `_secs`).
    pub const fn secs(
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
        doc: &'static str,
    ) -> Key {
        Key::integer(name, default, range, Unit::Secs, doc)
    }

    pub const fn path(name: &'static str, default: &'static str, doc: &'static str) -> Key {
        Key {
            name,
            kind: Kind::Path { default },
            doc,
        }
    }

    pub const fn choice(
        name: &'static str,
        default: &'static str,
        choices: &'static [&'static str],
        doc: &'static str,
    ) -> Key {
        Key {
            name,
            kind: Kind::Choice { default, choices },
            doc,
        }
    }

    /// A key its section reads itself; `default` as `jack.toml` shows it.
    pub const fn hand(name: &'static str, default: Option<&'static str>, doc: &'static str) -> Key {
        Key {
            name,
            kind: Kind::Hand { default },
            doc,
        }
    }

    /// The default as a TOML value, as `jack.toml` writes it; `None` when
    /// the key has none the file can show (required, or computed).
    pub fn default_toml(&self) -> Option<String> {
        match self.kind {
            Kind::Integer { default, .. } => Some(default.to_string()),
            Kind::Path { default } | Kind::Choice { default, .. } => Some(format!("{default:?}")),
            Kind::Hand { default } => default.map(str::to_string),
        }
    }
}

/// A type a declared key's value can have: how the walker reads it from a
/// table (every problem reported, the default when absent or wrong) and how
/// `check-config` writes it back.
pub(crate) trait Scalar: Sized {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> Self;
    fn show(&self, key: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// The integer of an `Integer` key, within its range.
fn integer(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> (u64, Unit) {
    match key.kind {
        Kind::Integer {
            default,
            min,
            max,
            unit,
        } => (cx.integer(t, key.name, default, min, max), unit),
        other => unreachable!("{} is declared {other:?}, read as an integer", key.name),
    }
}

impl Scalar for u64 {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> u64 {
        integer(cx, t, key).0
    }

    fn show(&self, _: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

// Every declared maximum of a `u32` or `usize` key fits 32 bits (armv7);
// saturating is only the type system's due.
impl Scalar for u32 {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> u32 {
        u32::try_from(integer(cx, t, key).0).unwrap_or(u32::MAX)
    }

    fn show(&self, _: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Scalar for usize {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> usize {
        usize::try_from(integer(cx, t, key).0).unwrap_or(usize::MAX)
    }

    fn show(&self, _: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Scalar for Duration {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> Duration {
        match integer(cx, t, key) {
            (n, Unit::Secs) => Duration::from_secs(n),
            (n, _) => Duration::from_millis(n),
        }
    }

    fn show(&self, key: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match key.kind {
            Kind::Integer {
                unit: Unit::Secs, ..
            } => write!(f, "{}", self.as_secs()),
            _ => write!(f, "{}", self.as_millis()),
        }
    }
}

impl Scalar for PathBuf {
    fn read(cx: &mut Cx<'_>, t: &mut Table<'_, '_>, key: &Key) -> PathBuf {
        match key.kind {
            Kind::Path { default } => cx.path(t, key.name, default),
            other => unreachable!("{} is declared {other:?}, read as a path", key.name),
        }
    }

    fn show(&self, _: &Key, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

/// Declares a section's struct and its scalar keys at once.
///
/// The fields before `keys` are read by the section's own code and passed
/// to the generated `walk`; each field under `keys` names its [`Key`],
/// which `walk` reads (a [`Scalar`]) and `show_keys` prints, in order.
/// `KEYS` is every key of the table: the `hand` ones, then the declared.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident: $fty:ty, )*
        }
        keys {
            $( $(#[$kmeta:meta])* pub $kfield:ident: $kty:ty = $key:expr, )*
        }
        hand [ $($hand:expr),* $(,)? ]
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
            $( $(#[$kmeta])* pub $kfield: $kty, )*
        }

        impl $name {
            /// Every key of this table, as `jack.toml` documents it.
            pub const KEYS: &'static [$crate::config::schema::Key] = &[$($hand,)* $($key,)*];

            /// Reads the declared keys of `t`; the other fields are given.
            #[allow(clippy::too_many_arguments)]
            pub(super) fn walk(
                cx: &mut $crate::config::walk::Cx<'_>,
                t: &mut $crate::config::walk::Table<'_, '_>,
                $($field: $fty,)*
            ) -> $name {
                $(
                    let $kfield = <$kty as $crate::config::schema::Scalar>::read(cx, t, &$key);
                )*
                $name { $($field,)* $($kfield,)* }
            }

            /// The declared keys as TOML lines (`check-config`).
            pub(super) fn show_keys(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $(
                    let key = $key;
                    write!(f, "{} = ", key.name)?;
                    $crate::config::schema::Scalar::show(&self.$kfield, &key, f)?;
                    writeln!(f)?;
                )*
                Ok(())
            }
        }
    };
}

pub(crate) use section;
