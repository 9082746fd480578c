//! Building configs from PML-style specs: `{"name": "TripletMarginLoss", "params": {...}}`.
//!
//! Every pluggable slot (distance, reducer, regularizer, loss) is a config enum that serializes
//! as such a spec, with PML's class name and PML's constructor argument names, so that a spec
//! written for PML (or a parity case) builds the same object here. Absent parameters take PML's
//! defaults; unknown parameters are refused with an error naming them.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::PmlError;

/// A PML class name with its constructor arguments.
///
/// Besides `{"name": ..., "params": {...}}`, deserialization accepts the slots of PML's
/// loss specs next to `params` (`"distance"`, `"reducer"`, `"embedding_regularizer"`,
/// `"embedding_reg_weight"`, ...): every key other than `name` and `params` is moved into
/// `params`, so `{"name": "ContrastiveLoss", "params": {}, "distance": {...}}` and
/// `{"name": "ContrastiveLoss", "params": {"distance": {...}}}` build the same loss.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Spec {
    /// PML's class name, e.g. `"LpDistance"`.
    pub name: String,
    /// Constructor arguments by PML's names; absent ones take PML's defaults.
    pub params: Value,
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let name = match map.remove("name") {
            Some(Value::String(n)) => n,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`name` must be a string, got {other}"
                )));
            }
            None => return Err(D::Error::custom("a spec needs a `name` (PML's class name)")),
        };
        let mut params = match map.remove("params") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(p)) => p,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "{name}: `params` must be an object, got {other}"
                )));
            }
        };
        for (key, value) in map {
            if params.contains_key(&key) {
                return Err(D::Error::custom(format!(
                    "{name}: `{key}` is given both in `params` and next to it"
                )));
            }
            params.insert(key, value);
        }
        Ok(Self {
            name,
            params: Value::Object(params),
        })
    }
}

impl Spec {
    /// The spec of `config`, under `name`.
    ///
    /// # Panics
    /// If `config` cannot be serialized to JSON (configs always can).
    pub fn of<C: Serialize>(name: &str, config: &C) -> Self {
        Self {
            name: name.to_string(),
            params: serde_json::to_value(config).expect("configs serialize to JSON"),
        }
    }

    /// Refuses the spec unless its params give every key of `required` (PML's required
    /// constructor arguments).
    pub fn require(&self, required: &[&str]) -> Result<(), PmlError> {
        for key in required {
            if self.params.get(key).is_none_or(Value::is_null) {
                return Err(PmlError::Config {
                    name: self.name.clone(),
                    reason: format!("missing required parameter `{key}`"),
                });
            }
        }
        Ok(())
    }

    /// Builds a config from this spec's params over `defaults` (PML's defaults): each given
    /// parameter replaces the default one.
    pub fn build<C: Serialize + DeserializeOwned>(&self, defaults: C) -> Result<C, PmlError> {
        let err = |reason: String| PmlError::Config {
            name: self.name.clone(),
            reason,
        };
        let mut merged = serde_json::to_value(&defaults).map_err(|e| err(e.to_string()))?;
        match (&mut merged, &self.params) {
            (_, Value::Null) => {}
            (Value::Object(base), Value::Object(given)) => {
                for (key, value) in given {
                    match base.get_mut(key) {
                        Some(slot) => *slot = value.clone(),
                        None => {
                            let mut known: Vec<&String> = base.keys().collect();
                            known.sort();
                            return Err(err(format!(
                                "unknown parameter `{key}` (known: {})",
                                known
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )));
                        }
                    }
                }
            }
            (_, other) => return Err(err(format!("params must be an object, got {other}"))),
        }
        serde_json::from_value(merged).map_err(|e| err(e.to_string()))
    }
}

/// Implements `Serialize`, `Deserialize` and `burn::config::Config` for a config enum whose
/// variants each wrap one config struct, as PML specs: `{"name": <PML class>, "params": {...}}`.
///
/// ```
/// # use burn::config::Config;
/// #[derive(Config, Debug)]
/// pub struct FooConfig {
///     #[config(default = 1.0)]
///     pub scale: f64,
/// }
///
/// #[derive(Clone, Debug)]
/// pub enum AnyConfig {
///     Foo(FooConfig),
/// }
///
/// // Required constructor arguments: `=> default; requires ["arg", ...]` (the default's
/// // value for them is never used).
/// pml_core::spec_enum!(AnyConfig { Foo(FooConfig) = "Foo" => FooConfig::new() });
///
/// let c: AnyConfig = serde_json::from_str(r#"{"name": "Foo", "params": {}}"#).unwrap();
/// let AnyConfig::Foo(foo) = c;
/// assert_eq!(foo.scale, 1.0);
/// ```
#[macro_export]
macro_rules! spec_enum {
    ($enum:ident { $($variant:ident($config:ty) = $name:literal => $default:expr $(; requires [$($req:literal),*])?),+ $(,)? }) => {
        impl $enum {
            /// PML's class names of every variant, in declaration order.
            pub const PML_NAMES: &'static [&'static str] = &[$($name),+];

            /// PML's class name of the configured item.
            pub fn pml_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// The PML-style spec of this config.
            pub fn to_spec(&self) -> $crate::config::Spec {
                match self {
                    $(Self::$variant(c) => $crate::config::Spec::of($name, c),)+
                }
            }

            /// Builds the config from a PML-style spec; absent params take PML's defaults.
            pub fn from_spec(spec: &$crate::config::Spec) -> ::core::result::Result<Self, $crate::PmlError> {
                match spec.name.as_str() {
                    $($name => {
                        $(spec.require(&[$($req),*])?;)?
                        Ok(Self::$variant(spec.build::<$config>($default)?))
                    })+
                    other => Err($crate::PmlError::NotImplemented(other.to_string())),
                }
            }
        }

        impl ::serde::Serialize for $enum {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                self.to_spec().serialize(s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $enum {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                let spec = $crate::config::Spec::deserialize(d)?;
                Self::from_spec(&spec).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }

        impl ::burn::config::Config for $enum {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Params {
        margin: f64,
        swap: bool,
    }

    #[test]
    fn absent_params_take_defaults_and_unknown_ones_are_refused() {
        let defaults = || Params {
            margin: 0.05,
            swap: false,
        };
        let spec: Spec =
            serde_json::from_str(r#"{"name": "X", "params": {"swap": true}}"#).unwrap();
        assert_eq!(
            spec.build(defaults()).unwrap(),
            Params {
                margin: 0.05,
                swap: true
            }
        );
        let bad: Spec =
            serde_json::from_str(r#"{"name": "X", "params": {"swapp": true}}"#).unwrap();
        let err = bad.build(defaults()).unwrap_err().to_string();
        assert!(err.contains("unknown parameter `swapp`"), "{err}");
        let no_params: Spec = serde_json::from_str(r#"{"name": "X"}"#).unwrap();
        assert_eq!(no_params.build(defaults()).unwrap(), defaults());
        let outside: Spec =
            serde_json::from_str(r#"{"name": "X", "params": {}, "margin": 0.5}"#).unwrap();
        assert_eq!(outside.build(defaults()).unwrap().margin, 0.5);
    }
}
