//! tokengate in the Kubernetes resources of Istio and Envoy Gateway.
//!
//! A control plane turns these resources into Envoy configuration; this
//! module does the same for the parts tokengate cares about, so that the
//! checks `check-config` runs on an Envoy file apply to what the proxy will
//! actually get (docs/deployment.md, "Istio" and "Envoy Gateway"):
//!
//! * Istio's `WasmPlugin` becomes an HTTP filter whose `PluginConfig` has
//!   root id `spec.pluginName`, the JSON of `spec.pluginConfig` as a
//!   `StringValue`, no `vm_id` (Istio sets none), `spec.vmConfig.env`
//!   entries as `host_env_keys` (`valueFrom: HOST`) or `key_values`
//!   (`INLINE`), and `spec.failStrategy` as the failure policy;
//! * Istio's `EnvoyFilter` carries raw Envoy configuration in its patches: a
//!   `BOOTSTRAP` patch's value is a piece of bootstrap (the revocation
//!   service, static clusters), a `CLUSTER` `ADD` patch adds a cluster;
//! * Envoy Gateway's `EnvoyExtensionPolicy` becomes one HTTP filter per
//!   `spec.wasm` entry, root id `rootID`, the JSON of `config`,
//!   `env.hostKeys` as `host_env_keys`, `failOpen`, and the vm_id Envoy
//!   Gateway derives from the policy: `envoyextensionpolicy/NS/NAME/wasm/N`;
//! * Envoy Gateway's `EnvoyProxy` carries a piece of bootstrap in
//!   `spec.bootstrap.value` (`type: Merge`) and the proxy container's
//!   environment; an `EnvoyPatchPolicy` may add clusters.
//!
//! Other kinds (Gateway, HTTPRoute, Secret…) are not tokengate's and are
//! passed over.

use serde_json::{json, Map, Value};

use crate::envoy::{self, Dialect, Plugin, STRING_VALUE};

/// What the resources of one file hold for tokengate.
#[derive(Default)]
pub struct Reading {
    /// The `PluginConfig`s the control plane generates for the filter.
    generated: Vec<Generated>,
    /// Raw Envoy configuration carried by the resources.
    fragments: Vec<Fragment>,
    /// Clusters added outside the fragments (`CLUSTER` `ADD` patches,
    /// `EnvoyPatchPolicy`), by name.
    added_clusters: Vec<String>,
    /// The environment variables the proxy container is given, where a
    /// resource says (`EnvoyProxy`): `None` when no resource says.
    pub container_env: Option<Vec<String>>,
    /// Parts of the resources that could not be read: (where, field,
    /// message).
    pub problems: Vec<(String, String, String)>,
    /// How many resources of the kinds above were found.
    pub resources: usize,
}

struct Generated {
    location: String,
    json_prefix: String,
    dialect: Dialect,
    config: Value,
}

struct Fragment {
    /// Where the fragment sits: the resource and the field.
    location: String,
    value: Value,
}

/// Whether a parsed document is a Kubernetes resource.
pub fn is_resource(doc: &Value) -> bool {
    doc.get("apiVersion").is_some_and(Value::is_string)
        && doc.get("kind").is_some_and(Value::is_string)
}

/// Reads every resource of a file.
pub fn read(docs: &[Value]) -> Reading {
    let mut reading = Reading::default();
    for doc in docs {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api.split('/').next().unwrap_or("");
        let name = format!(
            "{kind} {}/{}",
            str_at(doc, &["metadata", "namespace"]).unwrap_or("default"),
            str_at(doc, &["metadata", "name"]).unwrap_or("")
        );
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        match (group, kind) {
            ("extensions.istio.io", "WasmPlugin") => {
                reading.resources += 1;
                reading.wasm_plugin(&name, spec);
            }
            ("networking.istio.io", "EnvoyFilter") => {
                reading.resources += 1;
                reading.envoy_filter(&name, spec);
            }
            ("gateway.envoyproxy.io", "EnvoyExtensionPolicy") => {
                reading.resources += 1;
                reading.extension_policy(&name, doc, spec);
            }
            ("gateway.envoyproxy.io", "EnvoyProxy") => {
                reading.resources += 1;
                reading.envoy_proxy(&name, spec);
            }
            ("gateway.envoyproxy.io", "EnvoyPatchPolicy") => {
                reading.resources += 1;
                reading.patch_policy(spec);
            }
            _ => {}
        }
    }
    reading
}

impl Reading {
    /// Every tokengate plugin: the generated filters first, then those in
    /// raw Envoy configuration, in file order.
    pub fn plugins(&self) -> Vec<Plugin<'_>> {
        let mut out = Vec::new();
        for g in &self.generated {
            let Some(config) = g.config.as_object() else {
                continue;
            };
            let root_id = config.get("root_id").and_then(Value::as_str).unwrap_or("");
            out.push(Plugin {
                path: g.location.clone(),
                root_id,
                config,
                host: envoy::Host::HttpFilter,
                dialect: g.dialect,
                json_prefix: g.json_prefix.clone(),
            });
        }
        for f in &self.fragments {
            for mut plugin in envoy::plugins(&f.value) {
                plugin.path = format!("{}.{}", f.location, plugin.path);
                out.push(plugin);
            }
        }
        out
    }

    /// The names of every cluster the resources define.
    pub fn clusters(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.added_clusters.iter().map(String::as_str).collect();
        for f in &self.fragments {
            names.extend(envoy::clusters(&f.value).0);
        }
        names
    }

    fn problem(&mut self, location: &str, field: &str, message: impl Into<String>) {
        self.problems
            .push((location.to_owned(), field.to_owned(), message.into()));
    }

    fn wasm_plugin(&mut self, name: &str, spec: &Value) {
        let root_id = str_at(spec, &["pluginName"]).unwrap_or("");
        if !is_tokengate_root(root_id) {
            return;
        }
        if str_at(spec, &["type"]) == Some("NETWORK") {
            self.problem(
                name,
                "spec.type",
                "is NETWORK; tokengate is an HTTP filter: set type: HTTP (or leave it out)",
            );
        }
        let mut host_env_keys = Vec::new();
        let mut key_values = Map::new();
        for (i, entry) in array_at(spec, &["vmConfig", "env"]).iter().enumerate() {
            let Some(var) = str_at(entry, &["name"]) else {
                self.problem(name, &format!("spec.vmConfig.env[{i}].name"), "is missing");
                continue;
            };
            match str_at(entry, &["valueFrom"]) {
                Some("HOST") => host_env_keys.push(json!(var)),
                None | Some("INLINE") => {
                    let value = str_at(entry, &["value"]).unwrap_or("");
                    key_values.insert(var.to_owned(), json!(value));
                }
                Some(other) => self.problem(
                    name,
                    &format!("spec.vmConfig.env[{i}].valueFrom"),
                    format!("is {other:?}; Istio takes HOST or INLINE"),
                ),
            }
        }
        let failure_policy = match str_at(spec, &["failStrategy"]) {
            None | Some("FAIL_CLOSE") => "FAIL_CLOSED",
            Some("FAIL_OPEN") => "FAIL_OPEN",
            Some("FAIL_RELOAD") => "FAIL_RELOAD",
            Some(other) => {
                self.problem(
                    name,
                    "spec.failStrategy",
                    format!("is {other:?}; Istio takes FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD"),
                );
                "FAIL_CLOSED"
            }
        };
        let mut config = json!({
            "name": name,
            "root_id": root_id,
            // Istio sets no vm_id: the VM's is the empty string.
            "vm_config": {
                "vm_id": "",
                "environment_variables": {"host_env_keys": host_env_keys, "key_values": key_values}
            },
            "failure_policy": failure_policy,
        });
        if let Some(text) = spec.get("pluginConfig").and_then(configuration_text) {
            config["configuration"] = json!({"@type": STRING_VALUE, "value": text});
        }
        self.generated.push(Generated {
            location: name.to_owned(),
            json_prefix: "spec.pluginConfig".into(),
            dialect: Dialect::IstioWasmPlugin,
            config,
        });
    }

    fn envoy_filter(&mut self, name: &str, spec: &Value) {
        for (i, patch) in array_at(spec, &["configPatches"]).iter().enumerate() {
            let field = format!("spec.configPatches[{i}]");
            let apply_to = str_at(patch, &["applyTo"]).unwrap_or("");
            let operation = str_at(patch, &["patch", "operation"]).unwrap_or("");
            let Some(value) = patch.get("patch").and_then(|p| p.get("value")) else {
                continue;
            };
            if apply_to == "CLUSTER" && operation == "ADD" {
                if let Some(cluster) = str_at(value, &["name"]) {
                    self.added_clusters.push(cluster.to_owned());
                }
            }
            if apply_to == "BOOTSTRAP" && operation != "MERGE" {
                let plugins = envoy::plugins(value);
                if !plugins.is_empty() {
                    self.problem(
                        name,
                        &format!("{field}.patch.operation"),
                        format!("is {operation:?}; Istio applies only MERGE to the bootstrap, so the revocation service would never start"),
                    );
                }
            }
            self.fragments.push(Fragment {
                location: format!("{name}: {field}.patch.value"),
                value: value.clone(),
            });
        }
    }

    fn extension_policy(&mut self, name: &str, doc: &Value, spec: &Value) {
        let namespace = str_at(doc, &["metadata", "namespace"]).unwrap_or("default");
        let policy = str_at(doc, &["metadata", "name"]).unwrap_or("");
        for (i, wasm) in array_at(spec, &["wasm"]).iter().enumerate() {
            let root_id = str_at(wasm, &["rootID"]).unwrap_or("");
            if !is_tokengate_root(root_id) {
                continue;
            }
            let host_env_keys: Vec<Value> = array_at(wasm, &["env", "hostKeys"]).to_vec();
            let mut config = json!({
                "name": str_at(wasm, &["name"]).unwrap_or(""),
                "root_id": root_id,
                // The vm_id Envoy Gateway gives each wasm entry of a policy.
                "vm_config": {
                    "vm_id": format!("envoyextensionpolicy/{namespace}/{policy}/wasm/{i}"),
                    "environment_variables": {"host_env_keys": host_env_keys}
                },
                "fail_open": wasm.get("failOpen").and_then(Value::as_bool).unwrap_or(false),
            });
            if let Some(text) = wasm.get("config").and_then(configuration_text) {
                config["configuration"] = json!({"@type": STRING_VALUE, "value": text});
            }
            self.generated.push(Generated {
                location: name.to_owned(),
                json_prefix: format!("spec.wasm[{i}].config"),
                dialect: Dialect::GatewayPolicy,
                config,
            });
        }
    }

    fn envoy_proxy(&mut self, name: &str, spec: &Value) {
        for kind in ["envoyDeployment", "envoyDaemonSet"] {
            let env = array_at(spec, &["provider", "kubernetes", kind, "container", "env"]);
            if !env.is_empty() {
                self.container_env.get_or_insert_with(Vec::new).extend(
                    env.iter()
                        .filter_map(|e| str_at(e, &["name"]))
                        .map(str::to_owned),
                );
            }
        }
        let Some(bootstrap) = spec.get("bootstrap") else {
            return;
        };
        match str_at(bootstrap, &["type"]) {
            Some("Merge") => {}
            other => {
                let text = str_at(bootstrap, &["value"]).unwrap_or("");
                if text.contains(envoy::SERVICE_ROOT) {
                    self.problem(
                        name,
                        "spec.bootstrap.type",
                        format!(
                            "is {}; tokengate reads the revocation service from a Merge bootstrap (type: Merge): \
                             a Replace bootstrap must carry Envoy Gateway's own settings too",
                            other.map_or_else(|| "not set (Replace)".to_owned(), |t| format!("{t:?}"))
                        ),
                    );
                }
                return;
            }
        }
        match str_at(bootstrap, &["value"]).map(|text| envoy::from_yaml(text.as_bytes())) {
            Some(Ok(value)) => self.fragments.push(Fragment {
                location: format!("{name}: spec.bootstrap.value"),
                value,
            }),
            Some(Err(e)) => self.problem(name, "spec.bootstrap.value", format!("is not YAML: {e}")),
            None => self.problem(name, "spec.bootstrap.value", "is missing"),
        }
    }

    fn patch_policy(&mut self, spec: &Value) {
        for patch in array_at(spec, &["jsonPatches"]) {
            let is_cluster = str_at(patch, &["type"])
                .is_some_and(|t| t.ends_with("envoy.config.cluster.v3.Cluster"));
            if is_cluster && str_at(patch, &["operation", "op"]) == Some("add") {
                if let Some(cluster) = str_at(patch, &["operation", "value", "name"]) {
                    self.added_clusters.push(cluster.to_owned());
                }
            }
        }
    }
}

fn is_tokengate_root(root_id: &str) -> bool {
    root_id == envoy::FILTER_ROOT || root_id == envoy::SERVICE_ROOT
}

/// The configuration as the control plane hands it over: the JSON text of
/// an object (both marshal it to JSON), or a string as it is.
fn configuration_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => serde_json::to_string(other).ok(),
    }
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wasm_plugin_becomes_the_plugin_config_istio_generates() {
        let reading = read(&[json!({
            "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "tg", "namespace": "gw"},
            "spec": {
                "pluginName": "tokengate", "failStrategy": "FAIL_OPEN",
                "vmConfig": {"env": [{"name": "A", "valueFrom": "HOST"}, {"name": "B", "value": "x"}]},
                "pluginConfig": {"keys": [], "max_bytes": 134_217_728}
            }
        })]);
        let plugins = reading.plugins();
        assert_eq!(plugins.len(), 1);
        let p = &plugins[0];
        assert_eq!(p.path, "WasmPlugin gw/tg");
        assert_eq!(p.root_id, "tokengate");
        assert_eq!(p.vm_id(), "");
        assert_eq!(p.env_names(), vec!["A", "B"]);
        assert_eq!(p.key_value_names(), vec!["B"]);
        assert_eq!(p.failure_policy(), Some(envoy::FailurePolicy::FailOpen));
        assert_eq!(
            p.configuration().ok(),
            Some(r#"{"keys":[],"max_bytes":134217728}"#)
        );
    }

    #[test]
    fn an_extension_policy_gets_the_vm_id_envoy_gateway_derives() {
        let reading = read(&[json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyExtensionPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"wasm": [
                {"name": "other", "rootID": "other"},
                {"name": "tg", "rootID": "tokengate", "env": {"hostKeys": ["K"]}, "config": {"keys": []}}
            ]}
        })]);
        let plugins = reading.plugins();
        assert_eq!(plugins.len(), 1);
        assert_eq!(plugins[0].vm_id(), "envoyextensionpolicy/ns/p/wasm/1");
        assert_eq!(plugins[0].json_prefix, "spec.wasm[1].config");
        assert_eq!(plugins[0].env_names(), vec!["K"]);
    }

    #[test]
    fn bootstrap_pieces_and_added_clusters_are_read() {
        let reading = read(&[
            json!({
                "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                "metadata": {"name": "f"},
                "spec": {"configPatches": [
                    {"applyTo": "CLUSTER", "patch": {"operation": "ADD", "value": {"name": "added"}}},
                    {"applyTo": "BOOTSTRAP", "patch": {"operation": "MERGE",
                        "value": {"static_resources": {"clusters": [{"name": "merged"}]}}}}
                ]}
            }),
            json!({
                "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyPatchPolicy",
                "metadata": {"name": "pp"},
                "spec": {"jsonPatches": [{
                    "type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                    "operation": {"op": "add", "path": "", "value": {"name": "patched"}}
                }]}
            }),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        ]);
        assert_eq!(reading.resources, 2);
        let mut clusters = reading.clusters();
        clusters.sort_unstable();
        assert_eq!(clusters, vec!["added", "merged", "patched"]);
    }

    #[test]
    fn a_yaml_stream_of_resources_is_read_document_by_document() {
        let text =
            "# comment\n---\napiVersion: v1\nkind: Secret\n---\napiVersion: v1\nkind: ConfigMap\n";
        match envoy::classify(text.as_bytes()) {
            Ok(envoy::FileKind::Manifests(docs)) => assert_eq!(docs.len(), 2),
            _ => panic!("not read as resources"),
        }
        // Several documents, none a resource: not an Envoy file either.
        assert!(envoy::classify(b"a: 1\n---\nb: 2\n").is_err());
    }
}
