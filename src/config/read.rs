//! Reading a config file key by key, and writing the effective configuration back.
//!
//! Each section names its keys once (the `section!` macro); reading takes every key it knows
//! out of the file's table, records a [`Problem`] for each value it cannot use and keeps the
//! default there, and reports whatever is left as an unknown key. So one pass over a bad file
//! finds every mistake in it, not only the first.

use super::Problem;

/// Why a value cannot be used: what is wrong with it and how to fix it.
pub struct Bad {
    pub what: String,
    pub fix: String,
}

impl Bad {
    pub fn new(what: impl Into<String>, fix: impl Into<String>) -> Bad {
        Bad {
            what: what.into(),
            fix: fix.into(),
        }
    }
}

/// A value of one key in its TOML form, for keys that are not lists.
pub trait Scalar: Sized {
    fn parse(value: &toml::Value) -> Result<Self, Bad>;
    /// The TOML form; `None` when the key is left out (an unset option).
    fn to_toml(&self) -> Option<toml::Value>;
}

/// A value of one key; a list reports each of its bad items under its own index.
pub trait Setting: Sized {
    fn read(value: &toml::Value, key: &str, problems: &mut Vec<Problem>) -> Option<Self>;
    fn write(&self) -> Option<toml::Value>;
}

impl<T: Scalar> Setting for Vec<T> {
    fn read(value: &toml::Value, key: &str, problems: &mut Vec<Problem>) -> Option<Self> {
        let Some(items) = value.as_array() else {
            problems.push(Problem::new(
                key,
                value,
                "not a list",
                "write a list in brackets, e.g. [\"a\", \"b\"]",
            ));
            return None;
        };
        let before = problems.len();
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match T::parse(item) {
                Ok(v) => list.push(v),
                Err(bad) => problems.push(Problem::new(
                    &format!("{key}[{i}]"),
                    item,
                    bad.what,
                    bad.fix,
                )),
            }
        }
        (problems.len() == before).then_some(list)
    }

    fn write(&self) -> Option<toml::Value> {
        Some(toml::Value::Array(
            self.iter().filter_map(Scalar::to_toml).collect(),
        ))
    }
}

/// Implements [`Setting`] for scalar types through their [`Scalar`] form.
macro_rules! scalar_setting {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::config::read::Setting for $ty {
            fn read(
                value: &toml::Value,
                key: &str,
                problems: &mut Vec<$crate::config::Problem>,
            ) -> Option<Self> {
                <$ty as $crate::config::read::Scalar>::parse(value)
                    .map_err(|bad| {
                        problems.push($crate::config::Problem::new(key, value, bad.what, bad.fix))
                    })
                    .ok()
            }
            fn write(&self) -> Option<toml::Value> {
                $crate::config::read::Scalar::to_toml(self)
            }
        }
    )*};
}
pub(crate) use scalar_setting;

/// Implements [`Scalar`] (and [`Setting`]) for an enum written as one of a few words.
macro_rules! keyword {
    ($ty:ty { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// The word the config file uses for it.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $word,)+ }
            }
        }

        impl $crate::config::read::Scalar for $ty {
            fn parse(value: &toml::Value) -> Result<Self, $crate::config::read::Bad> {
                match value.as_str() {
                    $(Some($word) => Ok(<$ty>::$variant),)+
                    _ => Err($crate::config::read::Bad::new(
                        "not one of its values",
                        $crate::config::read::one_of(&[$($word),+]),
                    )),
                }
            }
            fn to_toml(&self) -> Option<toml::Value> {
                Some(toml::Value::String(self.as_str().to_string()))
            }
        }

        $crate::config::read::scalar_setting!($ty);
    };
}
pub(crate) use keyword;

/// "use \"a\", \"b\" or \"c\"".
pub fn one_of(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("use {last}"),
        Some((last, rest)) => format!("use {} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Implements [`Scalar`] for unsigned integers.
macro_rules! unsigned {
    ($($ty:ty),*) => {$(
        impl Scalar for $ty {
            fn parse(value: &toml::Value) -> Result<Self, Bad> {
                value
                    .as_integer()
                    .and_then(|i| <$ty>::try_from(i).ok())
                    .ok_or_else(|| Bad::new(
                        "not a whole number in range",
                        format!("use a whole number from 0 to {}", <$ty>::MAX.min(i64::MAX as $ty)),
                    ))
            }
            fn to_toml(&self) -> Option<toml::Value> {
                Some(toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX)))
            }
        }
    )*};
}
unsigned!(u8, u32, u64, usize);

impl Scalar for f64 {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        match value {
            toml::Value::Float(f) if f.is_finite() => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            _ => Err(Bad::new("not a number", "use a number such as 20.0")),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::Float(*self))
    }
}

impl Scalar for bool {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        value
            .as_bool()
            .ok_or_else(|| Bad::new("not true or false", "use true or false (no quotes)"))
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::Boolean(*self))
    }
}

impl Scalar for String {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Bad::new("not a string", "write it in double quotes"))
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.clone()))
    }
}

impl Scalar for std::path::PathBuf {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        match value.as_str() {
            Some(s) if !s.is_empty() => Ok(s.into()),
            _ => Err(Bad::new(
                "not a path",
                "write a path in double quotes, e.g. \"/var/lib/faceprobe\"",
            )),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.to_string_lossy().into_owned()))
    }
}

impl Scalar for Option<std::path::PathBuf> {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        std::path::PathBuf::parse(value).map(Some)
    }
    fn to_toml(&self) -> Option<toml::Value> {
        self.as_ref().and_then(Scalar::to_toml)
    }
}

impl Scalar for std::net::SocketAddr {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        value.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            Bad::new(
                "not an address and port",
                "use an address and port such as 127.0.0.1:8080 or [::]:8080",
            )
        })
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.to_string()))
    }
}

impl Scalar for ipnet::IpNet {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        let s = value.as_str().unwrap_or_default();
        s.parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
            .ok_or_else(|| {
                Bad::new(
                    "not an address or CIDR block",
                    "use addresses or CIDR blocks such as 10.0.0.0/8 or ::1/128",
                )
            })
    }
    fn to_toml(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.to_string()))
    }
}

scalar_setting!(
    u8,
    u32,
    u64,
    usize,
    f64,
    bool,
    String,
    std::path::PathBuf,
    Option<std::path::PathBuf>,
    std::net::SocketAddr,
);

/// A table of the config file: its keys, read and written in the order the file documents.
pub trait Section {
    fn read(&mut self, r: &mut Reader);
    fn write(&self, w: &mut Writer);
}

/// Takes the keys of one table, recording a problem for each bad or unknown one.
pub struct Reader<'a> {
    /// The table's dotted name (`detect.signals.trap_fetched`), empty at the top.
    name: String,
    table: toml::Table,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub fn new(table: toml::Table, problems: &'a mut Vec<Problem>) -> Reader<'a> {
        Reader {
            name: String::new(),
            table,
            problems,
        }
    }

    fn key(&self, key: &str) -> String {
        match self.name.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.name),
        }
    }

    /// Sets `slot` from `key` when the file has it and its value is good.
    pub fn take<T: Setting>(&mut self, key: &str, slot: &mut T) {
        if let Some(value) = self.table.remove(key) {
            let full = self.key(key);
            if let Some(v) = T::read(&value, &full, self.problems) {
                *slot = v;
            }
        }
    }

    /// Reads the sub-table `key` into `section` when the file has it.
    pub fn section(&mut self, key: &str, section: &mut impl Section) {
        let full = self.key(key);
        match self.table.remove(key) {
            None => {}
            Some(toml::Value::Table(table)) => {
                let mut inner = Reader {
                    name: full,
                    table,
                    problems: self.problems,
                };
                section.read(&mut inner);
                inner.finish();
            }
            Some(other) => self.problems.push(Problem::new(
                &full,
                &other,
                "not a table",
                format!("write it as a [{full}] section"),
            )),
        }
    }

    /// Every key nobody took is unknown: a misspelt option silently ignored is a setting the
    /// operator thinks is on.
    pub fn finish(self) {
        for (key, value) in self.table {
            let full = match self.name.is_empty() {
                true => key,
                false => format!("{}.{key}", self.name),
            };
            self.problems.push(Problem::new(
                &full,
                &value,
                "unknown key",
                "remove it or correct its spelling (config/faceprobe.toml lists every option)",
            ));
        }
    }
}

/// Writes the effective configuration as TOML, section by section.
#[derive(Default)]
pub struct Writer {
    /// Each table's dotted name and its `key = value` lines, in writing order.
    tables: Vec<(String, Vec<(String, toml::Value)>)>,
    current: usize,
}

impl Writer {
    pub fn put<T: Setting>(&mut self, key: &str, value: &T) {
        if let Some(v) = value.write() {
            if self.tables.is_empty() {
                self.tables.push((String::new(), Vec::new()));
            }
            self.tables[self.current].1.push((key.to_string(), v));
        }
    }

    pub fn section(&mut self, key: &str, section: &impl Section) {
        if self.tables.is_empty() {
            self.tables.push((String::new(), Vec::new()));
        }
        let parent = self.current;
        let name = match self.tables[parent].0.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.tables[parent].0),
        };
        self.tables.push((name, Vec::new()));
        self.current = self.tables.len() - 1;
        section.write(self);
        self.current = parent;
    }

    pub fn finish(self) -> String {
        let mut out = String::new();
        for (name, lines) in self.tables {
            if lines.is_empty() {
                continue;
            }
            if !name.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("[{name}]\n"));
            }
            for (key, value) in lines {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out
    }
}

/// Implements [`Section`] for a struct: its keys (named as its fields, in file order), then
/// its sub-tables.
macro_rules! section {
    ($ty:ty { $($field:ident),* $(,)? } $(tables { $($tfield:ident => $tkey:literal),* $(,)? })?) => {
        impl $crate::config::read::Section for $ty {
            fn read(&mut self, r: &mut $crate::config::read::Reader) {
                $(r.take(stringify!($field), &mut self.$field);)*
                $($(r.section($tkey, &mut self.$tfield);)*)?
            }
            fn write(&self, w: &mut $crate::config::read::Writer) {
                $(w.put(stringify!($field), &self.$field);)*
                $($(w.section($tkey, &self.$tfield);)*)?
            }
        }
    };
}
pub(crate) use section;
