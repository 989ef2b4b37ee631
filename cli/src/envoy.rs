//! Finding tokengate's configurations in the files operators keep.
//!
//! A file is a bare filter configuration (it has `keys`), a bare service
//! configuration (it has `cluster`), or an Envoy bootstrap in YAML or JSON,
//! which is walked for every proxy-wasm plugin (`root_id` beside
//! `vm_config`) whose root id is one of tokengate's. This module only finds
//! and reads; judging the configurations is the core's (`Config::from_json`,
//! `ServiceConfig::from_json`) and `check_config`'s.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::manifests;

/// The filter's root id.
pub const FILTER_ROOT: &str = "tokengate";
/// The revocation service's root id.
pub const SERVICE_ROOT: &str = "tokengate-revocations";
/// The VM id both roots share, so the filter reads the service's list.
pub const VM_ID: &str = "tokengate";
/// How a plugin's `configuration` must be typed for tokengate to read it.
pub const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";

const HTTP_WASM: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const WASM_SERVICE: &str = "type.googleapis.com/envoy.extensions.wasm.v3.WasmService";

/// What a configuration file turned out to be.
pub enum FileKind {
    /// A filter configuration (JSON text for the core).
    Filter(Vec<u8>),
    /// A revocation service configuration (JSON text for the core).
    Service(Vec<u8>),
    /// An Envoy configuration, parsed.
    Envoy(Value),
    /// Kubernetes resources (Istio's, Envoy Gateway's), one per document.
    Manifests(Vec<Value>),
}

/// Reads a file as JSON, or else as YAML (Envoy's other format), and tells
/// which kind of configuration it holds. A JSON file's own bytes go to the
/// core unchanged, so duplicate members and the like are judged as the
/// filter judges them.
pub fn classify(bytes: &[u8]) -> Result<FileKind, String> {
    let (value, converted) = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => (value, false),
        Err(json_err) => match yaml_documents(bytes) {
            Ok(mut docs) => {
                if docs.iter().any(manifests::is_resource) {
                    return Ok(FileKind::Manifests(docs));
                }
                if docs.len() > 1 {
                    return Err(format!(
                        "{} YAML documents, none a Kubernetes resource (apiVersion and kind): \
                         an Envoy configuration is one document",
                        docs.len()
                    ));
                }
                (docs.pop().unwrap_or(Value::Null), true)
            }
            Err(_) if looks_like_json(bytes) => return Err(format!("not valid JSON: {json_err}")),
            Err(yaml_err) => return Err(format!("neither JSON nor YAML: {yaml_err}")),
        },
    };
    if manifests::is_resource(&value) {
        return Ok(FileKind::Manifests(vec![value]));
    }
    let Value::Object(map) = &value else {
        return Err(
            "neither a tokengate configuration nor an Envoy configuration: the top level is not an object".into(),
        );
    };
    let bare = map.contains_key("keys") || map.contains_key("cluster");
    if bare && converted && looks_like_json(bytes) {
        // Broken JSON that YAML happens to accept: the plugin reads JSON.
        if let Err(json_err) = serde_json::from_slice::<Value>(bytes) {
            return Err(format!("not valid JSON: {json_err}"));
        }
    }
    let text = || {
        if converted {
            serde_json::to_vec(&value).unwrap_or_default()
        } else {
            bytes.to_vec()
        }
    };
    if map.contains_key("keys") {
        Ok(FileKind::Filter(text()))
    } else if map.contains_key("cluster") {
        Ok(FileKind::Service(text()))
    } else {
        Ok(FileKind::Envoy(value))
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(bytes.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// Every document of a YAML stream as a JSON value, merge keys applied;
/// empty documents (a leading `---`, comments only) left out.
fn yaml_documents(bytes: &[u8]) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for document in serde_norway::Deserializer::from_slice(bytes) {
        let mut yaml = serde_norway::Value::deserialize(document).map_err(|e| e.to_string())?;
        if yaml.is_null() {
            continue;
        }
        yaml.apply_merge().map_err(|e| e.to_string())?;
        docs.push(serde_json::to_value(yaml).map_err(|e| format!("cannot be read as JSON: {e}"))?);
    }
    Ok(docs)
}

/// YAML as a JSON value, merge keys (`<<: *anchor`) applied.
pub fn from_yaml(bytes: &[u8]) -> Result<Value, String> {
    let mut yaml: serde_norway::Value =
        serde_norway::from_slice(bytes).map_err(|e| e.to_string())?;
    yaml.apply_merge().map_err(|e| e.to_string())?;
    serde_json::to_value(yaml).map_err(|e| format!("cannot be read as JSON: {e}"))
}

/// What loads a plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// `envoy.filters.http.wasm`.
    HttpFilter,
    /// `envoy.bootstrap.wasm`, with its `singleton` flag.
    Service { singleton: bool },
    /// Something else, by its `@type` (an ECDS wrapper, a network filter…).
    Other(String),
}

/// `PluginConfig.failure_policy` (Envoy's `FailurePolicy` enum), which
/// decides what requests meet once the plugin's VM has failed (a panic, a
/// trap): the observed behaviour is in docs/cli.md, "`check-config`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Not set (or `UNSPECIFIED`, 0): Envoy applies `FAIL_CLOSED`.
    Unspecified,
    /// `FAIL_RELOAD` (1): a fresh VM for the next request.
    FailReload,
    /// `FAIL_CLOSED` (2): 503 for every later request on that worker.
    FailClosed,
    /// `FAIL_OPEN` (3): every later request passes the filter unchecked.
    FailOpen,
    /// The deprecated `fail_open: true`: the same, the failing request
    /// included.
    FailOpenDeprecated,
}

/// Who wrote a plugin's `PluginConfig`, hence which fields the operator
/// can change and how they are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Written by the operator, in Envoy's own terms.
    Envoy,
    /// Generated by Istio from a `WasmPlugin`.
    IstioWasmPlugin,
    /// Generated by Envoy Gateway from an `EnvoyExtensionPolicy` entry.
    GatewayPolicy,
}

/// A tokengate plugin found in an Envoy configuration.
pub struct Plugin<'a> {
    /// Where the plugin's `PluginConfig` is: its JSON path in the file, or
    /// the resource it is generated from.
    pub path: String,
    pub root_id: &'a str,
    pub config: &'a Map<String, Value>,
    pub host: Host,
    pub dialect: Dialect,
    /// Where the tokengate JSON sits in the resource, for a generated
    /// plugin (`spec.pluginConfig`); empty for an Envoy file.
    pub json_prefix: String,
}

impl Plugin<'_> {
    /// `vm_config.vm_id`, `""` when missing.
    pub fn vm_id(&self) -> &str {
        self.config
            .get("vm_config")
            .and_then(|vm| vm.get("vm_id"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The names the VM's environment gets: `host_env_keys` and the keys of
    /// `key_values` (never their values).
    pub fn env_names(&self) -> Vec<&str> {
        let Some(env) = self
            .config
            .get("vm_config")
            .and_then(|vm| vm.get("environment_variables"))
        else {
            return Vec::new();
        };
        let mut names: Vec<&str> = env
            .get("host_env_keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(values)) = env.get("key_values") {
            names.extend(values.keys().map(String::as_str));
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The names in `vm_config.environment_variables.key_values`: variables
    /// whose values are written in the Envoy configuration itself.
    pub fn key_value_names(&self) -> Vec<&str> {
        match self
            .config
            .get("vm_config")
            .and_then(|vm| vm.get("environment_variables"))
            .and_then(|env| env.get("key_values"))
        {
            Some(Value::Object(values)) => values.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// What Envoy does once the plugin's VM has failed: `failure_policy`
    /// by name or number, `None` for a value Envoy itself would refuse.
    /// The deprecated `fail_open: true` reads as `FailOpen`.
    pub fn failure_policy(&self) -> Option<FailurePolicy> {
        if self.config.get("fail_open").and_then(Value::as_bool) == Some(true) {
            return Some(FailurePolicy::FailOpenDeprecated);
        }
        match self.config.get("failure_policy") {
            None | Some(Value::Null) => Some(FailurePolicy::Unspecified),
            Some(Value::String(name)) => match name.as_str() {
                "UNSPECIFIED" => Some(FailurePolicy::Unspecified),
                "FAIL_RELOAD" => Some(FailurePolicy::FailReload),
                "FAIL_CLOSED" => Some(FailurePolicy::FailClosed),
                "FAIL_OPEN" => Some(FailurePolicy::FailOpen),
                _ => None,
            },
            // Protobuf JSON also takes an enum by number.
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Some(FailurePolicy::Unspecified),
                Some(1) => Some(FailurePolicy::FailReload),
                Some(2) => Some(FailurePolicy::FailClosed),
                Some(3) => Some(FailurePolicy::FailOpen),
                _ => None,
            },
            Some(_) => None,
        }
    }

    /// The tokengate JSON of the plugin: the `value` of its
    /// `configuration`, which must be a `google.protobuf.StringValue`.
    /// The error names the field relative to the plugin.
    pub fn configuration(&self) -> Result<&str, (String, String)> {
        let Some(configuration) = self.config.get("configuration") else {
            return Err((
                "configuration".into(),
                format!("is missing: tokengate reads its JSON from a {STRING_VALUE}"),
            ));
        };
        let kind = configuration
            .get("@type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind != STRING_VALUE {
            return Err((
                "configuration.@type".into(),
                format!("is {kind:?}; tokengate reads its JSON from a {STRING_VALUE}"),
            ));
        }
        match configuration.get("value") {
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
            Some(Value::String(_)) | None => Err((
                "configuration.value".into(),
                "is empty: the plugin refuses to start without its JSON configuration".into(),
            )),
            Some(_) => Err(("configuration.value".into(), "is not a string".into())),
        }
    }
}

/// Every tokengate plugin in an Envoy configuration, in file order.
pub fn plugins(root: &Value) -> Vec<Plugin<'_>> {
    let mut out = Vec::new();
    walk(root, &mut String::new(), None, &mut out);
    out
}

fn walk<'a>(
    value: &'a Value,
    path: &mut String,
    enclosing: Option<&'a Map<String, Value>>,
    out: &mut Vec<Plugin<'a>>,
) {
    match value {
        Value::Object(map) => {
            let enclosing = if map.get("@type").is_some_and(Value::is_string) {
                Some(map)
            } else {
                enclosing
            };
            if let Some(root_id) = map.get("root_id").and_then(Value::as_str) {
                if (root_id == FILTER_ROOT || root_id == SERVICE_ROOT)
                    && (map.contains_key("vm_config") || map.contains_key("configuration"))
                {
                    out.push(Plugin {
                        path: if path.is_empty() {
                            "$".into()
                        } else {
                            path.clone()
                        },
                        root_id,
                        config: map,
                        host: host_of(enclosing),
                        dialect: Dialect::Envoy,
                        json_prefix: String::new(),
                    });
                    return;
                }
            }
            for (key, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(child, path, enclosing, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(child, path, enclosing, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn host_of(enclosing: Option<&Map<String, Value>>) -> Host {
    let Some(map) = enclosing else {
        return Host::Other(String::new());
    };
    match map.get("@type").and_then(Value::as_str).unwrap_or("") {
        HTTP_WASM => Host::HttpFilter,
        WASM_SERVICE => Host::Service {
            singleton: map
                .get("singleton")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        other => Host::Other(other.to_owned()),
    }
}

/// The names of the clusters an Envoy configuration defines statically,
/// and whether it also takes clusters from CDS.
pub fn clusters(root: &Value) -> (Vec<&str>, bool) {
    let names = root
        .get("static_resources")
        .and_then(|s| s.get("clusters"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let cds = root
        .get("dynamic_resources")
        .and_then(|d| d.get("cds_config"))
        .is_some();
    (names, cds)
}

/// Every `secret_env` in a tokengate JSON value, with its path.
pub fn secret_envs(value: &Value) -> Vec<(String, String)> {
    members_named(value, "secret_env")
        .into_iter()
        .filter_map(|(path, v)| v.as_str().map(|name| (path, name.to_owned())))
        .collect()
}

/// The path of every inline `secret` (a key's secret written in the
/// configuration rather than named by `secret_env`) in a tokengate JSON
/// value.
pub fn inline_secrets(value: &Value) -> Vec<String> {
    members_named(value, "secret")
        .into_iter()
        .filter(|(_, v)| v.is_string())
        .map(|(path, _)| path)
        .collect()
}

/// Every member called `name` in a tokengate JSON value, with its path,
/// not looking inside a match. The members of `claims_to_headers` and
/// `roles` are names the operator chose (a claim or a role may be called
/// `secret`), so they are not looked at.
fn members_named<'a>(value: &'a Value, name: &str) -> Vec<(String, &'a Value)> {
    fn go<'a>(value: &'a Value, name: &str, path: &mut String, out: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if path.is_empty() && (key == "claims_to_headers" || key == "roles") {
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    if key == name {
                        out.push((path.clone(), child));
                    } else {
                        go(child, name, path, out);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    go(child, name, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(value, name, &mut String::new(), &mut out);
    out
}

/// An HTTP connection manager that runs the tokengate filter.
pub struct Manager<'a> {
    /// JSON path of the manager (its `typed_config`) in the file.
    pub path: String,
    pub config: &'a Map<String, Value>,
}

/// Every HTTP connection manager whose `http_filters` run the tokengate
/// filter, in file order.
pub fn managers(root: &Value) -> Vec<Manager<'_>> {
    fn go<'a>(value: &'a Value, path: &mut String, out: &mut Vec<Manager<'a>>) {
        match value {
            Value::Object(map) => {
                let runs_tokengate = map.get("http_filters").is_some_and(|filters| {
                    plugins(filters).iter().any(|p| p.root_id == FILTER_ROOT)
                });
                if runs_tokengate {
                    out.push(Manager {
                        path: if path.is_empty() {
                            "$".into()
                        } else {
                            path.clone()
                        },
                        config: map,
                    });
                    return;
                }
                for (key, child) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    go(child, path, out);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    go(child, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(root, &mut String::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_bare_configurations_and_envoy_files() {
        assert!(matches!(
            classify(br#"{"keys":[]}"#),
            Ok(FileKind::Filter(_))
        ));
        assert!(matches!(
            classify(br#"{"cluster":"c"}"#),
            Ok(FileKind::Service(_))
        ));
        assert!(matches!(
            classify(b"static_resources: {}\n"),
            Ok(FileKind::Envoy(_))
        ));
        assert!(classify(b"[1, 2]").is_err());
        assert!(classify(b"{\"keys\": ").is_err());
        assert!(classify(b"a: [b\n").is_err());
    }

    #[test]
    fn finds_plugins_with_their_host_and_path() {
        let envoy = json!({
            "bootstrap_extensions": [{"name": "envoy.bootstrap.wasm", "typed_config": {
                "@type": WASM_SERVICE, "singleton": true,
                "config": {"root_id": "tokengate-revocations", "vm_config": {"vm_id": "tokengate"}}}}],
            "static_resources": {"listeners": [{"filter_chains": [{"filters": [{"typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "http_filters": [
                    {"typed_config": {"@type": HTTP_WASM, "config": {"root_id": "tokengate", "vm_config": {"vm_id": "x"}}}},
                    {"typed_config": {"@type": HTTP_WASM, "config": {"root_id": "other", "vm_config": {}}}}
                ]}}]}]}]}
        });
        let found = plugins(&envoy);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].path, "bootstrap_extensions[0].typed_config.config");
        assert_eq!(found[0].host, Host::Service { singleton: true });
        assert_eq!(found[1].root_id, "tokengate");
        assert_eq!(found[1].host, Host::HttpFilter);
        assert_eq!(found[1].vm_id(), "x");
        assert!(found[1]
            .path
            .ends_with("http_filters[0].typed_config.config"));
    }

    #[test]
    fn lists_inline_secrets_but_not_claims_or_roles_so_named() {
        let config = json!({
            "keys": [{"secret": "x"}, {"secret_env": "A"}],
            "verify_key": {"secret": "y"},
            "claims_to_headers": {"secret": "x-secret", "secret_env": "x-env"},
            "roles": {"secret": ["a"]}
        });
        assert_eq!(
            inline_secrets(&config),
            vec!["keys[0].secret".to_owned(), "verify_key.secret".to_owned()]
        );
        assert_eq!(
            secret_envs(&config),
            vec![("keys[1].secret_env".into(), "A".into())]
        );
    }

    #[test]
    fn finds_the_managers_that_run_the_filter() {
        let filter = |root_id: &str| json!({"typed_config": {"@type": HTTP_WASM, "config": {"root_id": root_id, "vm_config": {}}}});
        let envoy = json!({"static_resources": {"listeners": [
            {"filter_chains": [{"filters": [{"typed_config": {"http_filters": [filter("other")]}}]}]},
            {"filter_chains": [{"filters": [{"typed_config": {"stat_prefix": "a", "http_filters": [filter("tokengate")]}}]}]}
        ]}});
        let found = managers(&envoy);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].path,
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config"
        );
        assert_eq!(found[0].config["stat_prefix"], "a");
    }

    #[test]
    fn reads_the_failure_policy_by_name_number_or_deprecated_flag() {
        let plugin = |config: Value| {
            let map = config.as_object().cloned().unwrap_or_default();
            Plugin {
                path: "$".into(),
                root_id: FILTER_ROOT,
                config: &map,
                host: Host::HttpFilter,
                dialect: Dialect::Envoy,
                json_prefix: String::new(),
            }
            .failure_policy()
        };
        assert_eq!(plugin(json!({})), Some(FailurePolicy::Unspecified));
        assert_eq!(
            plugin(json!({"failure_policy": "FAIL_RELOAD"})),
            Some(FailurePolicy::FailReload)
        );
        assert_eq!(
            plugin(json!({"failure_policy": 2})),
            Some(FailurePolicy::FailClosed)
        );
        assert_eq!(
            plugin(json!({"failure_policy": "FAIL_OPEN"})),
            Some(FailurePolicy::FailOpen)
        );
        assert_eq!(
            plugin(json!({"fail_open": true, "failure_policy": "FAIL_RELOAD"})),
            Some(FailurePolicy::FailOpenDeprecated)
        );
        assert_eq!(
            plugin(json!({"fail_open": false})),
            Some(FailurePolicy::Unspecified)
        );
        assert_eq!(plugin(json!({"failure_policy": "SOMETIMES"})), None);
    }

    #[test]
    fn lists_secret_envs_with_paths() {
        let config = json!({"keys": [{"secret": "x"}, {"secret_env": "A"}], "verify_key": {"secret_env": "B"}});
        assert_eq!(
            secret_envs(&config),
            vec![
                ("keys[1].secret_env".into(), "A".into()),
                ("verify_key.secret_env".into(), "B".into())
            ]
        );
    }
}

/// Whether the connection manager that runs the tokengate filter turns on
/// `normalize_path` and `merge_slashes`: Envoy then rewrites `:path` before
/// any filter sees it, and `verify` must do the same to give the filter's
/// answer.
pub fn path_options(root: &Value) -> (bool, bool) {
    let mut out = (false, false);
    for manager in managers(root) {
        let flag = |name: &str| {
            manager
                .config
                .get(name)
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        out.0 |= flag("normalize_path");
        out.1 |= flag("merge_slashes");
    }
    out
}

/// `:path` as Envoy's `normalize_path` (RFC 3986 dot segments, `%2E` as a
/// dot, backslashes as slashes) and `merge_slashes` leave it; the query is
/// kept as it is.
pub fn normalize_like_envoy(path: &[u8], normalize: bool, merge: bool) -> Vec<u8> {
    let split = path
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(path.len());
    let (raw, rest) = path.split_at(split);
    if !raw.starts_with(b"/") {
        return path.to_vec();
    }
    let mut text = raw.to_vec();
    if normalize {
        let replaced = String::from_utf8_lossy(&text)
            .replace('\\', "/")
            .replace("%2e", ".")
            .replace("%2E", ".");
        let mut out: Vec<&str> = Vec::new();
        let segments: Vec<&str> = replaced.split('/').skip(1).collect();
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter().enumerate() {
            match *seg {
                "." => {
                    if i == last {
                        out.push("");
                    }
                }
                ".." => {
                    out.pop();
                    if i == last {
                        out.push("");
                    }
                }
                other => out.push(other),
            }
        }
        text = format!("/{}", out.join("/")).into_bytes();
    }
    if merge {
        text.dedup_by(|a, b| *a == b'/' && *b == b'/');
    }
    text.extend_from_slice(rest);
    text
}

#[cfg(test)]
mod envoy_path_tests {
    use super::normalize_like_envoy;

    #[test]
    fn matches_what_envoy_did_to_these_paths() {
        // Observed with Envoy 1.40, normalize_path and merge_slashes on.
        for (raw, want) in [
            ("/public//..//admin", "/public/admin"),
            ("/../api/x", "/api/x"),
            ("/api\\x", "/api/x"),
            ("/a/./b/%2e%2e/c?q=1", "/a/c?q=1"),
            ("/orders", "/orders"),
        ] {
            let got = normalize_like_envoy(raw.as_bytes(), true, true);
            assert_eq!(String::from_utf8_lossy(&got), want, "{raw}");
        }
    }
}
