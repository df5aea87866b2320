//! A virtual key as the admin API takes it and the ledger keeps it: who may use what, within
//! which caps and limits, until when. Input is checked field by field, and every refusal names
//! its field, so the admin API can answer 400 with it.
//!
//! ```text
//!   admin JSON --KeySpec::from_json--> KeySpec --KeySpec::apply(base)--> KeyRecord (stored)
//!   KeyRecord::permits(name)  the pools / models the key may use (empty: all)
//! ```

use super::Micros;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A refusal that names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a path (`caps.daily_usd`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Spend caps in micro-USD; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    /// Per UTC day.
    pub daily: Option<Micros>,
    /// Per UTC month.
    pub monthly: Option<Micros>,
    /// Ever.
    pub all_time: Option<Micros>,
}

/// Rate limits per UTC minute; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens (input bound + max output) per minute.
    pub tpm: Option<u64>,
}

/// A key as stored (its secret only as a SHA-256 digest, elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its id (`key_...`), stable for its life.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The environment label (`production`, `staging`, ...).
    pub environment: String,
    /// Pools and models it may use; empty: every one.
    pub allowed: Vec<String>,
    /// Spend caps.
    pub caps: Caps,
    /// Rate limits.
    pub rates: Rates,
    /// When it stops working (Unix ms), if ever.
    pub expires_at_ms: Option<u64>,
    /// Revoked keys are kept (for usage) but admit nothing.
    pub revoked: bool,
    /// When it was made (Unix ms).
    pub created_at_ms: u64,
}

impl KeyRecord {
    /// A new key's defaults: environment `default`, every pool and model, no caps or limits,
    /// no expiry.
    pub fn new(id: String, created_at_ms: u64) -> KeyRecord {
        KeyRecord {
            id,
            name: String::new(),
            environment: "default".into(),
            allowed: Vec::new(),
            caps: Caps::default(),
            rates: Rates::default(),
            expires_at_ms: None,
            revoked: false,
            created_at_ms,
        }
    }

    /// Whether the key may use the pool or model `name`.
    pub fn permits(&self, name: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|a| a == name)
    }

    /// Whether the key admits anything at `now_ms` (not revoked, not expired).
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.revoked && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// What a create or update request says; fields it leaves out keep their value (update) or
/// their default (create). `Some(None)` clears a cap or limit (`null` in JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySpec {
    /// New name.
    pub name: Option<String>,
    /// New environment label.
    pub environment: Option<String>,
    /// New allowance.
    pub allowed: Option<Vec<String>>,
    /// Caps and limits to change.
    pub limits: LimitsSpec,
    /// Expiry to change.
    pub expires_at_ms: Option<Option<u64>>,
}

const FIELDS: [&str; 5] = ["name", "environment", "allowed", "limits", "expires_at_ms"];
const LIMITS: [&str; 5] = ["daily_usd", "monthly_usd", "all_time_usd", "rpm", "tpm"];

/// A label: 1 to 64 of `a-z A-Z 0-9 . _ -`.
fn label(field: &str, v: &Value) -> Result<String, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "must be a string"))?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(FieldError::new(
            field,
            "must be 1 to 64 letters, digits, `.`, `_` or `-`",
        ));
    }
    Ok(s.to_string())
}

/// A USD amount (a JSON number, at least 0) as micro-USD; `null` clears it.
fn usd(field: &str, v: &Value) -> Result<Option<Micros>, FieldError> {
    if v.is_null() {
        return Ok(None);
    }
    let n = v
        .as_f64()
        .ok_or_else(|| FieldError::new(field, "must be a number of USD, or null"))?;
    if !(n.is_finite() && (0.0..=1e12).contains(&n)) {
        return Err(FieldError::new(field, "must be between 0 and 1e12 USD"));
    }
    Ok(Some((n * 1e6).round() as Micros))
}

/// A count (a non-negative integer); `null` clears it.
fn count(field: &str, v: &Value) -> Result<Option<u64>, FieldError> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_u64()
        .map(Some)
        .ok_or_else(|| FieldError::new(field, "must be a whole number, 0 or more, or null"))
}

/// Caps and limits to change, as the admin API's `limits` object gives them; `Some(None)`
/// clears one (`null`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsSpec {
    /// Daily cap, micro-USD.
    pub daily: Option<Option<Micros>>,
    /// Monthly cap.
    pub monthly: Option<Option<Micros>>,
    /// All-time cap.
    pub all_time: Option<Option<Micros>>,
    /// Requests per minute.
    pub rpm: Option<Option<u64>>,
    /// Tokens per minute.
    pub tpm: Option<Option<u64>>,
}

impl LimitsSpec {
    /// Reads `{"daily_usd", "monthly_usd", "all_time_usd", "rpm", "tpm"}`; unknown names are
    /// refused by name.
    pub fn parse(v: &Value) -> Result<LimitsSpec, FieldError> {
        let l = v
            .as_object()
            .ok_or_else(|| FieldError::new("limits", "must be an object"))?;
        if let Some(k) = l.keys().find(|k| !LIMITS.contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("limits.{k}"),
                format!("is not a limit (limits: {})", LIMITS.join(", ")),
            ));
        }
        let f = |k: &str| format!("limits.{k}");
        let mut spec = LimitsSpec::default();
        if let Some(v) = l.get("daily_usd") {
            spec.daily = Some(usd(&f("daily_usd"), v)?);
        }
        if let Some(v) = l.get("monthly_usd") {
            spec.monthly = Some(usd(&f("monthly_usd"), v)?);
        }
        if let Some(v) = l.get("all_time_usd") {
            spec.all_time = Some(usd(&f("all_time_usd"), v)?);
        }
        if let Some(v) = l.get("rpm") {
            spec.rpm = Some(count(&f("rpm"), v)?);
        }
        if let Some(v) = l.get("tpm") {
            spec.tpm = Some(count(&f("tpm"), v)?);
        }
        Ok(spec)
    }

    /// Changes `caps` and `rates` as it says; the rest stays.
    pub fn apply(&self, caps: &mut Caps, rates: &mut Rates) {
        if let Some(c) = self.daily {
            caps.daily = c;
        }
        if let Some(c) = self.monthly {
            caps.monthly = c;
        }
        if let Some(c) = self.all_time {
            caps.all_time = c;
        }
        if let Some(r) = self.rpm {
            rates.rpm = r;
        }
        if let Some(r) = self.tpm {
            rates.tpm = r;
        }
    }
}

/// Reads an environment's body, `{"limits": {...}}`, into the record for `name`, starting
/// from `base` (its stored limits, or none).
pub fn env_from_json(
    name: &str,
    body: &[u8],
    base: Option<&super::EnvRecord>,
) -> Result<super::EnvRecord, FieldError> {
    label("name", &Value::String(name.to_string()))?;
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("is not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "limits") {
        return Err(FieldError::new(
            k.clone(),
            "is not a field of an environment (fields: limits)",
        ));
    }
    let mut env = base.cloned().unwrap_or_else(|| super::EnvRecord {
        name: name.to_string(),
        ..Default::default()
    });
    if let Some(l) = obj.get("limits") {
        LimitsSpec::parse(l)?.apply(&mut env.caps, &mut env.rates);
    }
    Ok(env)
}

impl KeySpec {
    /// Reads a create or update body: a JSON object with `name`, `environment`, `allowed`,
    /// `limits` {`daily_usd`, `monthly_usd`, `all_time_usd`, `rpm`, `tpm`} and
    /// `expires_at_ms`. Unknown fields are refused by name.
    pub fn from_json(body: &[u8]) -> Result<KeySpec, FieldError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| FieldError::new("body", format!("is not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                k.clone(),
                format!("is not a field of a key (fields: {})", FIELDS.join(", ")),
            ));
        }
        let mut spec = KeySpec::default();
        if let Some(n) = obj.get("name") {
            spec.name = Some(label("name", n)?);
        }
        if let Some(e) = obj.get("environment") {
            spec.environment = Some(label("environment", e)?);
        }
        if let Some(a) = obj.get("allowed") {
            let list = a.as_array().ok_or_else(|| {
                FieldError::new("allowed", "must be a list of pool or model names")
            })?;
            let mut names = Vec::with_capacity(list.len());
            for (i, n) in list.iter().enumerate() {
                let name = n
                    .as_str()
                    .filter(|s| !s.is_empty() && s.len() <= 256)
                    .ok_or_else(|| {
                        FieldError::new(format!("allowed[{i}]"), "must be a pool or model name")
                    })?;
                names.push(name.to_string());
            }
            spec.allowed = Some(names);
        }
        if let Some(l) = obj.get("limits") {
            spec.limits = LimitsSpec::parse(l)?;
        }
        if let Some(e) = obj.get("expires_at_ms") {
            spec.expires_at_ms = Some(count("expires_at_ms", e)?);
        }
        Ok(spec)
    }

    /// The record this spec makes of `base` (a new key's defaults, or the stored key).
    pub fn apply(&self, base: &KeyRecord) -> KeyRecord {
        let mut k = base.clone();
        if let Some(n) = &self.name {
            k.name = n.clone();
        }
        if let Some(e) = &self.environment {
            k.environment = e.clone();
        }
        if let Some(a) = &self.allowed {
            k.allowed = a.clone();
        }
        self.limits.apply(&mut k.caps, &mut k.rates);
        if let Some(e) = self.expires_at_ms {
            k.expires_at_ms = e;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyRecord {
        KeyRecord {
            name: "app".into(),
            ..KeyRecord::new("key_1".into(), 0)
        }
    }

    #[test]
    fn a_spec_sets_and_clears_fields_and_keeps_the_rest() {
        let s = KeySpec::from_json(
            br#"{"name":"billing-svc","environment":"staging","allowed":["fast","gpt-4o"],
                 "limits":{"daily_usd":1.5,"monthly_usd":20,"rpm":60,"tpm":null},"expires_at_ms":1800000000000}"#,
        )
        .unwrap();
        let k = s.apply(&base());
        assert_eq!(
            (k.name.as_str(), k.environment.as_str()),
            ("billing-svc", "staging")
        );
        assert_eq!(k.caps.daily, Some(1_500_000));
        assert_eq!(k.caps.monthly, Some(20_000_000));
        assert_eq!(k.caps.all_time, None);
        assert_eq!((k.rates.rpm, k.rates.tpm), (Some(60), None));
        assert!(k.permits("fast") && !k.permits("slow"));
        assert!(k.is_live(1_799_999_999_999) && !k.is_live(1_800_000_000_000));
        // An update that names only the daily cap, clearing it, keeps everything else.
        let u = KeySpec::from_json(br#"{"limits":{"daily_usd":null}}"#).unwrap();
        let k2 = u.apply(&k);
        assert_eq!(k2.caps.daily, None);
        assert_eq!(k2.caps.monthly, Some(20_000_000));
        assert_eq!(k2.name, "billing-svc");
        let mut revoked = k2.clone();
        revoked.revoked = true;
        assert!(!revoked.is_live(0));
        // Stored form round-trips.
        let text = serde_json::to_string(&k2).unwrap();
        assert_eq!(serde_json::from_str::<KeyRecord>(&text).unwrap(), k2);
    }

    #[test]
    fn bad_input_names_its_field() {
        let cases: [(&[u8], &str); 10] = [
            (b"not json", "body"),
            (b"[1]", "body"),
            (br#"{"nmae":"x"}"#, "nmae"),
            (br#"{"name":""}"#, "name"),
            (br#"{"environment":"prod uction"}"#, "environment"),
            (br#"{"allowed":"fast"}"#, "allowed"),
            (br#"{"allowed":["ok", 3]}"#, "allowed[1]"),
            (br#"{"limits":{"daily_usd":-1}}"#, "limits.daily_usd"),
            (br#"{"limits":{"rpm":1.5}}"#, "limits.rpm"),
            (br#"{"limits":{"weekly_usd":5}}"#, "limits.weekly_usd"),
        ];
        for (body, field) in cases {
            let e = KeySpec::from_json(body).unwrap_err();
            assert_eq!(e.field, field, "{}: {e}", String::from_utf8_lossy(body));
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn an_environment_keeps_what_an_update_leaves_out() {
        let e = env_from_json("staging", br#"{"limits":{"daily_usd":2,"rpm":100}}"#, None).unwrap();
        assert_eq!((e.caps.daily, e.rates.rpm), (Some(2_000_000), Some(100)));
        let e2 = env_from_json("staging", br#"{"limits":{"rpm":null}}"#, Some(&e)).unwrap();
        assert_eq!((e2.caps.daily, e2.rates.rpm), (Some(2_000_000), None));
        let bad = env_from_json("staging", br#"{"caps":{}}"#, None).unwrap_err();
        assert_eq!(bad.field, "caps");
        let bad = env_from_json("stag ing", b"{}", None).unwrap_err();
        assert_eq!(bad.field, "name");
        let bad = env_from_json("staging", br#"{"limits":{"tpm":-3}}"#, None).unwrap_err();
        assert_eq!(bad.field, "limits.tpm");
    }
}
