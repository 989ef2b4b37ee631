//! `tokengate check-config`: every tokengate configuration in a file,
//! judged by the plugin's own parser, plus what the plugin cannot see.
//!
//! Each configuration goes through `Config::from_json` or
//! `ServiceConfig::from_json` with `Secrets::Placeholder`: the very code
//! `on_configure` runs, except that no secret value is ever read (an unset
//! `secret_env` is not an error here). In an Envoy file, the checks only the
//! whole file allows follow: the service's cluster exists, every
//! `secret_env` is handed to the VM in `vm_config.environment_variables`,
//! both roots share `vm_id` `tokengate`, each root is loaded by the right
//! extension (the service as a singleton), one service per `vm_id`; and the
//! settings around the plugin that decide whether the gate can be got
//! round: a VM that fails must not let requests through (`failure_policy`),
//! secrets must not sit in the configuration Envoy shows in `/config_dump`,
//! and the connection manager must not pass `x_auth_subject` to an upstream
//! that reads it as `x-auth-subject` (docs/cli.md, "`check-config`").
//!
//! Istio's and Envoy Gateway's resources are read by `manifests` into the
//! plugins their control planes generate; the same checks apply, in the
//! resources' own field names, and the service must use the vm_id the
//! control plane gives the filter (docs/deployment.md, "Istio").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use tokengate::config::{Config, ConfigError, OnUnavailable, Secrets, ServiceConfig};
use tokengate::policy::{Match, PathMatch, Rule};

use crate::envoy::{self, Dialect, FailurePolicy, FileKind, Host, Manager, Plugin};
use crate::manifests;
use crate::util;

/// Validate a filter or service configuration, or every tokengate configuration in an Envoy YAML/JSON file
#[derive(clap::Args)]
#[command(
    after_help = "FILE is a filter configuration (it has \"keys\"), a revocation service configuration \
(it has \"cluster\"), or an Envoy bootstrap in YAML or JSON, in which every wasm plugin with root_id tokengate or \
tokengate-revocations is checked, or Kubernetes resources of Istio (WasmPlugin, EnvoyFilter) and Envoy Gateway \
(EnvoyExtensionPolicy, EnvoyProxy, EnvoyPatchPolicy), checked as the proxy will get them. Secret values are never read. Each error is one line on stderr: \
<where>: <path>: <message>.\n\nExit status: 0 valid, 1 invalid, 2 bad usage or unreadable file.\n\n\
Examples:\n  tokengate check-config filter.json\n  tokengate check-config envoy/edge.yaml\n  tokengate check-config examples/istio/tokengate.yaml\n  \
tokengate check-config --json envoy.json | jq .errors"
)]
pub struct Args {
    /// The file to check
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print the findings as JSON on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Finding {
    #[serde(rename = "where")]
    location: String,
    path: String,
    message: String,
}

#[derive(Serialize)]
struct Checked {
    #[serde(rename = "where")]
    location: String,
    root_id: String,
    valid: bool,
    /// What was found, for a valid configuration.
    summary: Option<String>,
}

#[derive(Default, Serialize)]
struct Report {
    valid: bool,
    configurations: Vec<Checked>,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Report {
    fn error(&mut self, location: &str, path: &str, message: impl Into<String>) {
        self.errors.push(Finding {
            location: location.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn warning(&mut self, location: &str, path: &str, message: impl Into<String>) {
        self.warnings.push(Finding {
            location: location.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn config_error(&mut self, location: &str, prefix: &str, e: &ConfigError) {
        self.error(location, &join(prefix, &e.path), e.message.clone());
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let bytes = util::read_file(&args.file)?;
    let name = args.file.display().to_string();
    let mut report = Report::default();
    match envoy::classify(&bytes) {
        Err(message) => report.error(&name, "", message),
        Ok(FileKind::Filter(json)) => {
            check_filter(&mut report, &name, "", &json);
        }
        Ok(FileKind::Service(json)) => {
            check_service(&mut report, &name, "", &json);
        }
        Ok(FileKind::Envoy(root)) => check_envoy(&mut report, &name, &root),
        Ok(FileKind::Manifests(docs)) => check_manifests(&mut report, &name, &docs),
    }
    report.valid = report.errors.is_empty();
    print_report(&report, args.json)?;
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A JSON path inside another: `prefix` then `path`.
fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn check_filter(report: &mut Report, location: &str, prefix: &str, json: &[u8]) -> Option<Config> {
    let result = Config::from_json(json, &Secrets::Placeholder);
    let summary = result.as_ref().ok().map(|c| {
        format!(
            "tokengate filter: {} key{}, {} rule{}{}",
            c.keys().len(),
            plural(c.keys().len()),
            c.rules().len(),
            plural(c.rules().len()),
            match c.revocation() {
                Some(r) => format!(
                    ", revocation (max_stale_s {}, on_unavailable {})",
                    r.max_stale_s(),
                    match r.on_unavailable() {
                        OnUnavailable::Deny => "deny",
                        OnUnavailable::Allow => "allow",
                    }
                ),
                None => String::new(),
            }
        )
    });
    if let Err(e) = &result {
        report.config_error(location, prefix, e);
    }
    if let Ok(config) = &result {
        shadowed_host_rules(report, location, prefix, config.rules());
    }
    report.configurations.push(Checked {
        location: location.to_owned(),
        root_id: envoy::FILTER_ROOT.to_owned(),
        valid: result.is_ok(),
        summary,
    });
    result.ok()
}

/// Warns about a rule naming hosts placed after a rule that applies on every
/// host and can fit the same requests: the first fitting rule decides, so on
/// those hosts the earlier rule wins (a deny rule for `admin.example.com`
/// after `/public` anonymous lets `admin.example.com/public` through).
fn shadowed_host_rules(report: &mut Report, location: &str, prefix: &str, rules: &[Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        if rule.matcher.hosts.is_none() {
            continue;
        }
        let earlier: Vec<String> = rules
            .iter()
            .take(i)
            .enumerate()
            .filter(|(_, r)| r.matcher.hosts.is_none() && overlaps(&r.matcher, &rule.matcher))
            .map(|(k, _)| format!("rules[{k}]"))
            .collect();
        if !earlier.is_empty() {
            report.warning(
                location,
                &join(prefix, &format!("rules[{i}]")),
                format!(
                    "names hosts but comes after {}, which apply on every host: on its hosts, requests those rules fit never reach it; put rules that name hosts first",
                    earlier.join(", ")
                ),
            );
        }
    }
}

/// Whether two matches can fit one request (paths and methods).
fn overlaps(a: &Match, b: &Match) -> bool {
    let paths = match (&a.path, &b.path) {
        (PathMatch::Any, _) | (_, PathMatch::Any) => true,
        (PathMatch::Exact(x), PathMatch::Exact(y)) => x == y,
        (PathMatch::Exact(x), p @ PathMatch::Prefix(_))
        | (p @ PathMatch::Prefix(_), PathMatch::Exact(x)) => p.fits(x),
        (PathMatch::Prefix(x), PathMatch::Prefix(y)) => {
            PathMatch::Prefix(x.clone()).fits(y) || PathMatch::Prefix(y.clone()).fits(x)
        }
    };
    let methods = match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => true,
    };
    paths && methods
}

fn check_service(
    report: &mut Report,
    location: &str,
    prefix: &str,
    json: &[u8],
) -> Option<ServiceConfig> {
    let result = ServiceConfig::from_json(json, &Secrets::Placeholder);
    let summary = result.as_ref().ok().map(|s| {
        format!(
            "tokengate-revocations service: cluster {}, {}{}, every {} s, {} list",
            s.cluster(),
            s.authority(),
            s.path(),
            s.poll_interval_s(),
            if s.verify_key().is_some() {
                "signed"
            } else {
                "unsigned"
            }
        )
    });
    if let Err(e) = &result {
        report.config_error(location, prefix, e);
    }
    report.configurations.push(Checked {
        location: location.to_owned(),
        root_id: envoy::SERVICE_ROOT.to_owned(),
        valid: result.is_ok(),
        summary,
    });
    result.ok()
}

/// Where the plugins of a file run: what the checks across plugins need.
struct Surroundings<'a> {
    /// The clusters the file defines.
    clusters: Vec<&'a str>,
    /// Whether clusters may also come from CDS.
    cds: bool,
    /// An Envoy bootstrap (both roots must use vm_id `tokengate`), or
    /// resources whose control plane names the filter's VM.
    bootstrap: bool,
    /// The proxy container's environment, where a resource says.
    container_env: Option<&'a [String]>,
}

fn check_envoy(report: &mut Report, name: &str, root: &Value) {
    let plugins = envoy::plugins(root);
    if plugins.is_empty() {
        report.error(
            name,
            "",
            format!(
                "no tokengate configuration found: no wasm plugin with root_id {:?} or {:?} (and not a bare configuration: no \"keys\" or \"cluster\")",
                envoy::FILTER_ROOT,
                envoy::SERVICE_ROOT
            ),
        );
        return;
    }
    let (clusters, cds) = envoy::clusters(root);
    let around = Surroundings {
        clusters,
        cds,
        bootstrap: true,
        container_env: None,
    };
    check_plugins(report, name, &plugins, &around);
    for manager in envoy::managers(root) {
        check_underscores(report, &manager);
    }
}

/// Istio and Envoy Gateway resources: the plugins their control planes
/// generate, and the raw Envoy configuration they carry, checked together.
fn check_manifests(report: &mut Report, name: &str, docs: &[Value]) {
    let reading = manifests::read(docs);
    for (location, field, message) in &reading.problems {
        report.error(location, field, message.clone());
    }
    let plugins = reading.plugins();
    if plugins.is_empty() {
        report.error(
            name,
            "",
            format!(
                "no tokengate configuration found in {} resource{}: no WasmPlugin with pluginName {:?}, \
                 no EnvoyExtensionPolicy wasm entry with rootID {:?}, no {:?} service in an EnvoyFilter or EnvoyProxy bootstrap",
                reading.resources,
                plural(reading.resources),
                envoy::FILTER_ROOT,
                envoy::FILTER_ROOT,
                envoy::SERVICE_ROOT
            ),
        );
        return;
    }
    let around = Surroundings {
        clusters: reading.clusters(),
        cds: false,
        bootstrap: false,
        container_env: reading.container_env.as_deref(),
    };
    check_plugins(report, name, &plugins, &around);
    // The control plane names the filter's VM: the service must use that
    // vm_id, or the list it publishes never reaches the filter.
    let filters: Vec<&Plugin<'_>> = plugins
        .iter()
        .filter(|p| p.root_id == envoy::FILTER_ROOT)
        .collect();
    for service in plugins.iter().filter(|p| p.root_id == envoy::SERVICE_ROOT) {
        if filters.is_empty() || filters.iter().any(|f| f.vm_id() == service.vm_id()) {
            continue;
        }
        let theirs: Vec<String> = filters
            .iter()
            .map(|f| format!("{:?} ({})", f.vm_id(), f.path))
            .collect();
        report.error(
            &service.path,
            "vm_config.vm_id",
            format!(
                "is {:?}, but the filter's VM has vm_id {}: the list this service publishes never reaches the filter; use the filter's vm_id",
                service.vm_id(),
                theirs.join(", ")
            ),
        );
    }
}

fn check_plugins(
    report: &mut Report,
    name: &str,
    plugins: &[Plugin<'_>],
    around: &Surroundings<'_>,
) {
    let mut filters_with_revocation = 0;
    let mut services = 0;
    // Services by vm_id, in file order.
    let mut services_by_vm: BTreeMap<&str, usize> = BTreeMap::new();
    for plugin in plugins {
        check_plugin_shape(report, plugin, around.bootstrap);
        if plugin.root_id == envoy::FILTER_ROOT {
            check_failure_policy(report, plugin);
        } else {
            *services_by_vm.entry(plugin.vm_id()).or_default() += 1;
        }
        let location = plugin.path.as_str();
        let prefix = plugin.json_prefix.as_str();
        let text = match plugin.configuration() {
            Ok(text) => text,
            Err((path, message)) => {
                let path = if plugin.dialect == Dialect::Envoy {
                    path
                } else {
                    prefix.to_owned()
                };
                report.error(location, &path, message);
                report.configurations.push(Checked {
                    location: location.to_owned(),
                    root_id: plugin.root_id.to_owned(),
                    valid: false,
                    summary: None,
                });
                continue;
            }
        };
        if plugin.root_id == envoy::FILTER_ROOT {
            if let Some(config) = check_filter(report, location, prefix, text.as_bytes()) {
                filters_with_revocation += usize::from(config.revocation().is_some());
                let stops_on_headers = plugin
                    .config
                    .get("allow_on_headers_stop_iteration")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if config.refresh_config().is_some() && !stops_on_headers {
                    let (path, message) = match plugin.dialect {
                        Dialect::Envoy => (
                            "allow_on_headers_stop_iteration".to_owned(),
                            "refresh is configured but the plugin cannot read request bodies: set allow_on_headers_stop_iteration: true on this PluginConfig",
                        ),
                        Dialect::IstioWasmPlugin | Dialect::GatewayPolicy => (
                            join(prefix, "refresh"),
                            "is configured but the plugin cannot read request bodies: the control plane does not set allow_on_headers_stop_iteration; \
                             leave refresh out, or load the filter with raw Envoy configuration",
                        ),
                    };
                    report.error(location, &path, message);
                }
            }
        } else {
            services += 1;
            if let Some(service) = check_service(report, location, prefix, text.as_bytes()) {
                check_service_cluster(report, location, service.cluster(), around);
            }
        }
        // What the VM's environment must hold; judged on the JSON even when
        // the core refused it for another reason.
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            check_secrets(report, plugin, &value, around.container_env);
        }
    }
    // Across plugins. (Each VM sees only the variables its own vm_config
    // lists, even with a shared vm_id, so the lists need not match.)
    if services == 0 && filters_with_revocation > 0 {
        report.warning(
            name,
            "",
            format!(
                "a filter has a revocation section but no {:?} service is configured: no list is ever published, \
                 so with on_unavailable deny every token is refused with revocation_unavailable",
                envoy::SERVICE_ROOT
            ),
        );
    }
    // Shared data is one map per vm_id: two services in one vm_id publish
    // over each other's list, and the filter enforces whichever wrote last.
    for (vm_id, n) in services_by_vm {
        if n > 1 {
            report.error(
                name,
                "",
                format!(
                    "{n} {:?} services share vm_id {vm_id:?}: they would publish over each other's list; keep one",
                    envoy::SERVICE_ROOT
                ),
            );
        }
    }
}

/// The cluster the service polls must exist where it runs.
fn check_service_cluster(
    report: &mut Report,
    location: &str,
    cluster: &str,
    around: &Surroundings<'_>,
) {
    if around.clusters.contains(&cluster) {
        return;
    }
    if around.bootstrap {
        let message = format!(
            "no cluster {cluster:?} in static_resources.clusters: the service cannot fetch the list"
        );
        if around.cds {
            report.warning(
                location,
                "cluster",
                format!("{message} unless CDS provides it"),
            );
        } else {
            report.error(location, "cluster", message);
        }
    } else {
        report.error(
            location,
            "cluster",
            format!(
                "no cluster {cluster:?} in these resources (a bootstrap's static_resources.clusters, an EnvoyFilter CLUSTER ADD patch, \
                 an EnvoyPatchPolicy): the service cannot fetch the list"
            ),
        );
    }
}

/// Where the plugin's secrets come from: every `secret_env` handed to the
/// VM, and none written into the configuration, which Envoy shows in its
/// admin `/config_dump` and, at debug level, in its log.
fn check_secrets(
    report: &mut Report,
    plugin: &Plugin<'_>,
    value: &Value,
    container_env: Option<&[String]>,
) {
    let location = plugin.path.as_str();
    let prefix = plugin.json_prefix.as_str();
    let names = plugin.env_names();
    let written = plugin.key_value_names();
    // Where the operator lists the variables handed to the VM.
    let (hand_over, written_at, instead) = match plugin.dialect {
        Dialect::Envoy => (
            "list it in vm_config.environment_variables.host_env_keys (or key_values)",
            "vm_config.environment_variables.key_values",
            "list {var} in host_env_keys and set it in Envoy's environment instead",
        ),
        Dialect::IstioWasmPlugin => (
            "list it in spec.vmConfig.env with valueFrom: HOST",
            "spec.vmConfig.env",
            "take {var} with valueFrom: HOST and set it in the proxy container's environment instead",
        ),
        Dialect::GatewayPolicy => ("list it in env.hostKeys", "env", ""),
    };
    for (path, var) in envoy::secret_envs(value) {
        let path = join(prefix, &path);
        if !names.contains(&var.as_str()) {
            report.error(
                location,
                &path,
                format!("{var} is not handed to the VM: {hand_over}"),
            );
        } else if written.contains(&var.as_str()) {
            report.warning(
                location,
                &format!("{written_at}.{var}"),
                format!(
                    "holds the secret of {path} in the Envoy configuration, which Envoy shows in its admin /config_dump: {}",
                    instead.replace("{var}", &var)
                ),
            );
        } else if let Some(env) = container_env {
            if !env.contains(&var) {
                report.error(
                    location,
                    &path,
                    format!(
                        "{var} is handed to the VM, but the EnvoyProxy's container env does not set it: \
                         add it there (from a Secret), or the plugin refuses to start"
                    ),
                );
            }
        }
    }
    for path in envoy::inline_secrets(value) {
        let path = join(prefix, &path);
        report.warning(
            location,
            &path,
            "is an inline secret, which Envoy shows in its admin /config_dump and debug log: \
             name an environment variable with secret_env (handed over by host_env_keys) instead",
        );
    }
}

/// What requests meet once the filter's VM has failed (a panic, a trap).
fn check_failure_policy(report: &mut Report, plugin: &Plugin<'_>) {
    let location = plugin.path.as_str();
    // Istio and Envoy Gateway name the setting their own way, and offer
    // fewer choices: only failing open is refused there.
    match (plugin.dialect, plugin.failure_policy()) {
        (Dialect::Envoy, _) => {}
        (Dialect::IstioWasmPlugin, Some(FailurePolicy::FailOpen)) => {
            return report.error(
                location,
                "spec.failStrategy",
                "is FAIL_OPEN: once the VM fails, every later request passes unchecked (an auth bypass); set FAIL_CLOSE (or FAIL_RELOAD where Istio offers it)",
            );
        }
        (Dialect::GatewayPolicy, Some(FailurePolicy::FailOpenDeprecated)) => {
            return report.error(
                location,
                // `spec.wasm[N].config` → `spec.wasm[N].failOpen`.
                &plugin
                    .json_prefix
                    .strip_suffix("config")
                    .map_or_else(|| "failOpen".to_owned(), |entry| format!("{entry}failOpen")),
                "is true: once the VM fails, every request passes unchecked (an auth bypass); set failOpen: false",
            );
        }
        (Dialect::IstioWasmPlugin | Dialect::GatewayPolicy, _) => return,
    }
    const RELOAD: &str =
        "set failure_policy: FAIL_RELOAD (a fresh VM for the next request; the failing request is still refused)";
    match plugin.failure_policy() {
        Some(FailurePolicy::FailOpenDeprecated) => report.error(
            location,
            "fail_open",
            format!(
                "is true: once the VM fails, every request passes unchecked, the failing one included (an auth bypass); remove it and {RELOAD}"
            ),
        ),
        Some(FailurePolicy::FailOpen) => report.error(
            location,
            "failure_policy",
            format!(
                "is FAIL_OPEN: once the VM fails, every later request passes unchecked (an auth bypass); {RELOAD}"
            ),
        ),
        Some(policy @ (FailurePolicy::Unspecified | FailurePolicy::FailClosed)) => report.warning(
            location,
            "failure_policy",
            format!(
                "{}: once the VM fails, its worker answers 503 to every request until Envoy restarts; {RELOAD}",
                if policy == FailurePolicy::Unspecified {
                    "is not set (FAIL_CLOSED)"
                } else {
                    "is FAIL_CLOSED"
                }
            ),
        ),
        // FAIL_RELOAD, or a value Envoy itself refuses.
        Some(FailurePolicy::FailReload) | None => {}
    }
}

/// Whether a connection manager running the filter passes header names with
/// underscores. The filter strips the names of `claims_to_headers` from every
/// request, but a client may send `x_auth_subject`, which a WSGI or CGI
/// upstream reads as `x-auth-subject`: a forged claim.
fn check_underscores(report: &mut Report, manager: &Manager<'_>) {
    let action = manager
        .config
        .get("common_http_protocol_options")
        .and_then(|o| o.get("headers_with_underscores_action"));
    let is = match action {
        None | Some(Value::Null) => "is not set (ALLOW)",
        Some(Value::String(a)) if a == "ALLOW" => "is ALLOW",
        Some(Value::Number(n)) if n.as_u64() == Some(0) => "is ALLOW",
        Some(_) => return,
    };
    report.warning(
        &manager.path,
        "common_http_protocol_options.headers_with_underscores_action",
        format!(
            "{is}: a client may send x_auth_subject, which WSGI and CGI upstreams read as x-auth-subject, \
             a claim header the filter sets; set REJECT_REQUEST or DROP_HEADER"
        ),
    );
}

/// The plugin's place in Envoy: the right extension, the shared VM id.
fn check_plugin_shape(report: &mut Report, plugin: &Plugin<'_>, bootstrap: bool) {
    let location = plugin.path.as_str();
    let vm_id = plugin.vm_id();
    // In resources, the control plane names the filter's VM: the service
    // must follow it (`check_manifests`).
    if bootstrap && vm_id != envoy::VM_ID {
        report.error(
            location,
            "vm_config.vm_id",
            format!(
                "is {vm_id:?}; both tokengate roots must use vm_id {:?}, or the filter never sees the service's list",
                envoy::VM_ID
            ),
        );
    }
    match (plugin.root_id, &plugin.host) {
        (envoy::FILTER_ROOT, Host::HttpFilter) => {}
        (envoy::FILTER_ROOT, _) => report.error(
            location,
            "root_id",
            "root tokengate is the HTTP filter: load it with envoy.filters.http.wasm (envoy.extensions.filters.http.wasm.v3.Wasm)",
        ),
        (_, Host::Service { singleton: true }) => {}
        (_, Host::Service { singleton: false }) => report.error(
            location,
            "singleton",
            "the revocation service must run once per Envoy: set singleton: true on its WasmService",
        ),
        (_, _) => report.error(
            location,
            "root_id",
            "root tokengate-revocations is a service: load it with envoy.bootstrap.wasm (envoy.extensions.wasm.v3.WasmService, singleton: true)",
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn finding_line(f: &Finding) -> String {
    let line = if f.path.is_empty() {
        format!("{}: {}", f.location, f.message)
    } else {
        format!("{}: {}: {}", f.location, f.path, f.message)
    };
    // One finding, one line, whatever a message holds.
    line.replace(['\n', '\r'], " ")
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        util::outln(format_args!("{}", serde_json::to_string_pretty(report)?))?;
        return Ok(());
    }
    for checked in &report.configurations {
        if let (true, Some(summary)) = (checked.valid, &checked.summary) {
            util::outln(format_args!("{}: ok: {summary}", checked.location))?;
        }
    }
    for error in &report.errors {
        util::errln(format_args!("{}", finding_line(error)));
    }
    for warning in &report.warnings {
        util::errln(format_args!("warning: {}", finding_line(warning)));
    }
    let n = report.configurations.len();
    util::outln(format_args!(
        "{n} tokengate configuration{} checked: {} error{}, {} warning{}",
        plural(n),
        report.errors.len(),
        plural(report.errors.len()),
        report.warnings.len(),
        plural(report.warnings.len())
    ))?;
    Ok(())
}
