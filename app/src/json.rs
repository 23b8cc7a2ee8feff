//! Reading the sidecar's JSON answers (`/overview`, `/migrations`,
//! `/targets`) field by field from a [`Value`]. The page already links
//! `Value`'s decoder (the trace reader's info lines); a serde derive per
//! answer type added a sequence and a map decoder per type, ~4 KB of gzip
//! over the page's weight budget (docs/BENCHMARKS.md). The rules are the
//! derive's: a missing field without a default, or a field of the wrong
//! type, fails the whole answer; unknown fields are skipped.

pub use serde_json::Value;

/// Why an answer did not decode: the field, and what it should have been.
pub type Error = String;

/// Parses `text` as JSON.
pub fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn wrong(key: &str, want: &str) -> Error {
    format!("field `{key}`: expected {want}")
}

/// The object field `key` (`None`: absent).
pub fn get<'a>(o: &'a Value, key: &str) -> Option<&'a Value> {
    o.as_object().and_then(|m| m.get(key))
}

/// The required string field `key`.
pub fn string(o: &Value, key: &str) -> Result<String, Error> {
    match get(o, key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(wrong(key, "a string")),
    }
}

/// The string field `key`, empty when absent.
pub fn string_or_empty(o: &Value, key: &str) -> Result<String, Error> {
    match get(o, key) {
        None => Ok(String::new()),
        Some(_) => string(o, key),
    }
}

/// The required number field `key`.
pub fn f64(o: &Value, key: &str) -> Result<f64, Error> {
    get(o, key)
        .and_then(Value::as_f64)
        .ok_or_else(|| wrong(key, "a number"))
}

/// An unsigned integer that fits `u32`.
pub fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// The array field `key` read by `each`, empty when absent.
pub fn list<T>(o: &Value, key: &str, each: impl Fn(&Value) -> Option<T>) -> Result<Vec<T>, Error> {
    match get(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| each(v).ok_or_else(|| wrong(key, "a list of its items")))
            .collect(),
        Some(_) => Err(wrong(key, "a list")),
    }
}

/// The array field `key`, required, each item read by `each` (its error
/// stands).
pub fn items<T>(
    o: &Value,
    key: &str,
    each: impl Fn(&Value) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    match get(o, key) {
        Some(Value::Array(a)) => a.iter().map(each).collect(),
        _ => Err(wrong(key, "a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_derives_rules() {
        let v = parse(r#"{"a":"x","n":2,"f":1.5,"l":[1,2],"bad":[1,-1]}"#).expect("json");
        assert_eq!(string(&v, "a").as_deref(), Ok("x"));
        assert!(string(&v, "n").is_err());
        assert!(string(&v, "missing").is_err());
        assert_eq!(string_or_empty(&v, "missing").as_deref(), Ok(""));
        assert!(string_or_empty(&v, "n").is_err());
        assert_eq!(f64(&v, "n"), Ok(2.0));
        assert_eq!(f64(&v, "f"), Ok(1.5));
        assert!(f64(&v, "a").is_err());
        assert_eq!(list(&v, "l", as_u32), Ok(vec![1, 2]));
        assert_eq!(list(&v, "missing", as_u32), Ok(vec![]));
        assert!(list(&v, "bad", as_u32).is_err());
        assert!(list(&v, "a", as_u32).is_err());
        let n = |v: &Value| as_u32(v).ok_or_else(|| Error::from("not a u32"));
        assert_eq!(items(&v, "l", n), Ok(vec![1, 2]));
        assert_eq!(
            items(&v, "missing", n),
            Err("field `missing`: expected a list".into())
        );
        assert_eq!(items(&v, "bad", n), Err("not a u32".into()));
        assert!(parse("{").is_err());
    }
}
