//! The configuration model: one TOML file, validated before anything starts.
//!
//! `parse` turns text into a [`Config`] or a [`ConfigError`] that names the line and column.
//! Secrets are never inline: providers name the environment variable that holds their key and
//! client keys are given by variable or by SHA-256 digest; the caller passes the environment in.

mod default;
mod model;
mod parse;

pub use default::{DEFAULT_SOURCE_NAME, default_toml};
pub use model::{
    Admin, AfterResponse, Auth, AwsSigning, BeforeForward, ClientKey, Config, Driver, Endpoint,
    Fleet, HookTarget, HookUrl, Hooks, Http2, LaneLimits, Limits, MockSettings, Model, PemFile,
    PolicyKind, Pool, PoolMember, PoolPolicy, Protocol, Provider, ScriptSource, Telemetry, Tls,
    TlsVersion, Unreachable, UpstreamSettings,
};
pub use parse::{
    ConfigError, DEFAULT_LEDGER_PATH, FileReader, is_node_id, parse, parse_with_files,
};
