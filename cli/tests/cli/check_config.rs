//! `tokengate check-config`.

use crate::util::{filter_config, Dir, KEY_B64};

const SERVICE: &str = r#"{"cluster": "revocation_source", "authority": "revocations.internal", "path": "/v1/revocations", "verify_key": {"alg": "HS256", "secret_env": "TG_LIST_KEY"}}"#;

/// An Envoy bootstrap in YAML with the filter and the service, each part
/// adjustable to break one thing at a time.
pub struct Bootstrap {
    pub filter: Option<String>,
    pub service: Option<String>,
    pub filter_env: String,
    pub service_env: String,
    pub filter_vm_id: String,
    pub service_vm_id: String,
    pub singleton: bool,
    pub cluster: String,
    pub filter_configuration_type: String,
    /// The filter's line about failures (`failure_policy: …` or
    /// `fail_open: …`), if any.
    pub failure: Option<String>,
    /// The connection manager's `headers_with_underscores_action`, if any.
    pub underscores: Option<String>,
    /// How many copies of the service (each with `service_vm_id`).
    pub services: usize,
}

/// `filter_config` without its keys with inline secrets (all but the first),
/// as an Envoy file should hold it.
pub fn filter_config_from_env() -> serde_json::Value {
    let mut config = filter_config();
    config["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k.get("secret").is_none());
    config
}

impl Bootstrap {
    pub fn full() -> Bootstrap {
        Bootstrap {
            filter: Some(filter_config_from_env().to_string()),
            service: Some(SERVICE.to_owned()),
            filter_env: "[TG_KEY]".into(),
            service_env: "[TG_LIST_KEY]".into(),
            filter_vm_id: "tokengate".into(),
            service_vm_id: "tokengate".into(),
            singleton: true,
            cluster: "revocation_source".into(),
            filter_configuration_type: "type.googleapis.com/google.protobuf.StringValue".into(),
            failure: Some("failure_policy: FAIL_RELOAD".into()),
            underscores: Some("REJECT_REQUEST".into()),
            services: 1,
        }
    }

    pub fn filter_only(filter: &str, env: &str) -> Bootstrap {
        Bootstrap {
            filter: Some(filter.to_owned()),
            service: None,
            filter_env: env.to_owned(),
            ..Bootstrap::full()
        }
    }

    pub fn yaml(&self) -> String {
        let mut out = String::from(
            "admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 9901}\n",
        );
        if self.service.is_some() {
            out.push_str("bootstrap_extensions:\n");
        }
        for _ in 0..self.services {
            let Some(service) = &self.service else {
                break;
            };
            out.push_str(&format!(
                "- name: envoy.bootstrap.wasm
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    singleton: {}
    config:
      name: tokengate-revocations
      root_id: tokengate-revocations
      vm_config:
        vm_id: {}
        runtime: envoy.wasm.runtime.v8
        code: {{local: {{filename: /tokengate.wasm}}}}
        environment_variables:
          host_env_keys: {}
      configuration:
        \"@type\": type.googleapis.com/google.protobuf.StringValue
        value: |
          {}
",
                self.singleton, self.service_vm_id, self.service_env, service
            ));
        }
        out.push_str(&format!(
            "static_resources:
  listeners:
  - name: edge
    address:
      socket_address: {{address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
{underscores}          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes: [{{match: {{prefix: /}}, route: {{cluster: upstream}}}}]
          http_filters:
",
            underscores = match &self.underscores {
                Some(action) => format!(
                    "          common_http_protocol_options: {{headers_with_underscores_action: {action}}}\n"
                ),
                None => String::new(),
            }
        ));
        if let Some(filter) = &self.filter {
            out.push_str(&format!(
                "          - name: envoy.filters.http.wasm
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: tokengate
                root_id: tokengate
{}                vm_config:
                  vm_id: {}
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: /tokengate.wasm}}}}
                  environment_variables:
                    host_env_keys: {}
                configuration:
                  \"@type\": {}
                  value: |
                    {}
",
                self.failure
                    .as_ref()
                    .map(|p| format!("                {p}\n"))
                    .unwrap_or_default(),
                self.filter_vm_id,
                self.filter_env,
                self.filter_configuration_type,
                filter
            ));
        }
        out.push_str(&format!(
            "          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    load_assignment: {{cluster_name: upstream, endpoints: []}}
  - name: {}
    type: STATIC
    load_assignment: {{cluster_name: x, endpoints: []}}
",
            self.cluster
        ));
        out
    }
}

const FILTER_WHERE: &str =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config";
const SERVICE_WHERE: &str = "bootstrap_extensions[0].typed_config.config";

fn check(dir: &Dir, file: &str) -> crate::util::Run {
    dir.run(&["check-config", file])
}

/// Exit 1, and stderr holds exactly these findings, one a line.
#[track_caller]
fn invalid(run: crate::util::Run, lines: &[&str]) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let got: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(got, lines);
}

#[test]
fn accepts_a_filter_configuration_without_reading_secrets() {
    // TG_KEY is not set: check-config never reads secret values.
    let dir = Dir::new();
    dir.write("filter.json", filter_config().to_string());
    let run = check(&dir, "filter.json").ok();
    assert!(
        run.stdout
            .starts_with("filter.json: ok: tokengate filter: 3 keys, 7 rules\n"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty());
}

#[test]
fn accepts_a_service_configuration() {
    let dir = Dir::new();
    dir.write("service.json", SERVICE);
    let run = check(&dir, "service.json").ok();
    assert!(
        run.stdout
            .contains("service.json: ok: tokengate-revocations service: cluster revocation_source"),
        "{}",
        run.stdout
    );
}

#[test]
fn names_the_field_of_a_filter_error() {
    let dir = Dir::new();
    let mut config = filter_config();
    config["keys"][1]["alg"] = serde_json::json!("HS255");
    dir.write("filter.json", config.to_string());
    let run = check(&dir, "filter.json");
    assert!(run.stdout.contains("1 error"));
    invalid(
        run,
        &[r#"filter.json: keys[1].alg: unknown algorithm "HS255""#],
    );
}

#[test]
fn names_the_field_of_a_service_error() {
    let dir = Dir::new();
    dir.write(
        "service.json",
        r#"{"cluster": "c", "authority": "a", "path": "/", "poll_interval_s": 0}"#,
    );
    invalid(
        check(&dir, "service.json"),
        &["service.json: poll_interval_s: must be at least 1"],
    );
}

#[test]
fn refuses_unknown_fields_and_broken_json() {
    let dir = Dir::new();
    dir.write(
        "filter.json",
        format!(
            r#"{{"keys": [{{"kid": "k", "alg": "HS256", "secret": "{KEY_B64}"}}], "colour": 1}}"#
        ),
    );
    let run = check(&dir, "filter.json");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown field `colour`"),
        "{}",
        run.stderr
    );
    dir.write("broken.json", r#"{"keys": [1,}"#);
    let run = check(&dir, "broken.json");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("broken.json: not valid JSON"),
        "{}",
        run.stderr
    );
}

#[test]
fn accepts_an_envoy_bootstrap_in_yaml_and_json() {
    let dir = Dir::new();
    let yaml = Bootstrap::full().yaml();
    dir.write("envoy.yaml", &yaml);
    let run = check(&dir, "envoy.yaml").ok();
    assert!(
        run.stdout.contains(&format!(
            "{SERVICE_WHERE}: ok: tokengate-revocations service"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("{FILTER_WHERE}: ok: tokengate filter")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("2 tokengate configurations checked: 0 errors"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // The same bootstrap as JSON.
    let value: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
    dir.write("envoy.json", serde_json::to_string_pretty(&value).unwrap());
    let run = check(&dir, "envoy.json").ok();
    assert!(run.stdout.contains("2 tokengate configurations checked"));
}

#[test]
fn reports_every_error_in_an_envoy_file_with_where_and_path() {
    let dir = Dir::new();
    let mut config = filter_config_from_env();
    config["rules"][0]["match"]["prefix"] = serde_json::json!("healthz");
    let envoy = Bootstrap {
        filter: Some(config.to_string()),
        filter_env: "[OTHER]".into(),
        service_vm_id: "tg".into(),
        cluster: "elsewhere".into(),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    let run = check(&dir, "envoy.yaml");
    let stderr = run.stderr.clone();
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{SERVICE_WHERE}: vm_config.vm_id: is \"tg\"")),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{SERVICE_WHERE}: cluster: no cluster \"revocation_source\""
        )),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!("{FILTER_WHERE}: rules[0].match.prefix: ")),
        "{stderr}"
    );
    assert!(
        lines[3].starts_with(&format!(
            "{FILTER_WHERE}: keys[0].secret_env: TG_KEY is not handed to the VM"
        )),
        "{stderr}"
    );
}

#[test]
fn checks_that_each_secret_env_reaches_the_vm() {
    let dir = Dir::new();
    let envoy = Bootstrap {
        service_env: "[TG_KEY]".into(),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    invalid(
        check(&dir, "envoy.yaml"),
        &[&format!("{SERVICE_WHERE}: verify_key.secret_env: TG_LIST_KEY is not handed to the VM: list it in vm_config.environment_variables.host_env_keys (or key_values)")],
    );
    // key_values hand it over too (its value is never printed).
    let envoy = Bootstrap {
        service_env: "[]\n          key_values: {TG_LIST_KEY: c2VjcmV0}".into(),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    let run = check(&dir, "envoy.yaml").ok();
    assert!(!run.stdout.contains("c2VjcmV0") && !run.stderr.contains("c2VjcmV0"));
}

#[test]
fn checks_that_both_roots_share_the_vm_id() {
    let dir = Dir::new();
    dir.write(
        "envoy.yaml",
        Bootstrap {
            filter_vm_id: "other".into(),
            ..Bootstrap::full()
        }
        .yaml(),
    );
    invalid(
        check(&dir, "envoy.yaml"),
        &[&format!("{FILTER_WHERE}: vm_config.vm_id: is \"other\"; both tokengate roots must use vm_id \"tokengate\", or the filter never sees the service's list")],
    );
}

#[test]
fn checks_the_service_is_a_singleton() {
    let dir = Dir::new();
    dir.write(
        "envoy.yaml",
        Bootstrap {
            singleton: false,
            ..Bootstrap::full()
        }
        .yaml(),
    );
    let run = check(&dir, "envoy.yaml");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("{SERVICE_WHERE}: singleton: ")),
        "{}",
        run.stderr
    );
}

#[test]
fn checks_the_configuration_is_a_string_value() {
    let dir = Dir::new();
    let envoy = Bootstrap {
        filter_configuration_type: "type.googleapis.com/google.protobuf.BytesValue".into(),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    let run = check(&dir, "envoy.yaml");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with(&format!("{FILTER_WHERE}: configuration.@type: ")),
        "{}",
        run.stderr
    );
}

#[test]
fn warns_of_a_revocation_section_without_a_service() {
    let dir = Dir::new();
    let mut config = filter_config_from_env();
    config["revocation"] = serde_json::json!({});
    dir.write(
        "envoy.yaml",
        Bootstrap::filter_only(&config.to_string(), "[TG_KEY]").yaml(),
    );
    let run = check(&dir, "envoy.yaml").ok();
    assert!(
        run.stderr
            .starts_with("warning: envoy.yaml: a filter has a revocation section"),
        "{}",
        run.stderr
    );
}

#[test]
fn json_output_lists_configurations_and_findings() {
    let dir = Dir::new();
    dir.write(
        "envoy.yaml",
        Bootstrap {
            cluster: "elsewhere".into(),
            ..Bootstrap::full()
        }
        .yaml(),
    );
    let run = dir.run(&["check-config", "--json", "envoy.yaml"]);
    assert_eq!(run.code, 1);
    let out = run.json();
    assert_eq!(out["valid"], false);
    assert_eq!(out["configurations"].as_array().unwrap().len(), 2);
    assert_eq!(out["errors"][0]["where"], SERVICE_WHERE);
    assert_eq!(out["errors"][0]["path"], "cluster");
}

/// check-config passes `path` with no error and no warning.
#[track_caller]
fn passes_without_a_warning(dir: &Dir, path: &std::path::Path) {
    let run = check(dir, path.to_str().unwrap());
    assert_eq!(
        run.code,
        0,
        "{}: {}{}",
        path.display(),
        run.stdout,
        run.stderr
    );
    assert_eq!(run.stderr, "", "{}", path.display());
    assert!(
        run.stdout.ends_with(" 0 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_shipped_envoy_examples_pass_as_checked_in() {
    // envoy/*.yaml are meant to run as they are (no template to render), so
    // check-config reads the very files: each is valid, and without a
    // warning either (a fail-closed VM, headers with underscores let through,
    // an inline secret): these are the examples people copy.
    let envoy_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy");
    let dir = Dir::new();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&envoy_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        passes_without_a_warning(&dir, &path);
        checked.push(path.file_name().unwrap().to_str().unwrap().to_owned());
    }
    checked.sort();
    assert_eq!(checked, ["edge.yaml", "minimal.yaml"]);
}

#[test]
fn every_yaml_file_under_examples_passes_as_checked_in() {
    // The Istio and Envoy Gateway resources people copy: valid, and without
    // a warning, like the Envoy files.
    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    yaml_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
        &mut files,
    );
    files.sort();
    let dir = Dir::new();
    for path in &files {
        passes_without_a_warning(&dir, path);
    }
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        ["envoy-gateway/tokengate.yaml", "istio/tokengate.yaml"]
    );
}

#[test]
fn says_when_a_file_holds_no_tokengate_configuration() {
    let dir = Dir::new();
    dir.write("envoy.yaml", "static_resources:\n  clusters: []\n");
    let run = check(&dir, "envoy.yaml");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("envoy.yaml: no tokengate configuration found"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1);
}

#[test]
fn says_when_a_file_is_neither_json_nor_yaml() {
    let dir = Dir::new();
    dir.write("x.yaml", "a: [b\n");
    let run = check(&dir, "x.yaml");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("x.yaml: neither JSON nor YAML"),
        "{}",
        run.stderr
    );
    // Nothing renders ${…} placeholders (envoy/*.yaml run as checked in),
    // so a broken file that has one gets no hint to render it.
    dir.write("t.yaml", "port: ${PORT}\na: [b\n");
    let run = check(&dir, "t.yaml");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("t.yaml: neither JSON nor YAML") && !run.stderr.contains("render"),
        "{}",
        run.stderr
    );
}

#[test]
fn refuses_a_missing_file_and_a_missing_argument() {
    let dir = Dir::new();
    dir.run(&["check-config", "none.json"])
        .error(2, &["none.json"]);
    dir.run(&["check-config"]).usage_error(&["FILE"]);
}

#[test]
fn refresh_needs_the_plugin_to_read_bodies() {
    let dir = Dir::new();
    let mut filter = filter_config_from_env();
    filter["refresh"] =
        serde_json::json!({"path": "/oauth/token", "kid": filter["keys"][0]["kid"]});
    dir.write(
        "envoy.yaml",
        Bootstrap {
            filter: Some(filter.to_string()),
            ..Bootstrap::full()
        }
        .yaml(),
    );
    let run = check(&dir, "envoy.yaml");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("allow_on_headers_stop_iteration: refresh is configured"),
        "{}",
        run.stderr
    );
}

// What lets a request round the gate, or a secret out of it.

const HCM_WHERE: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

/// Exit 0, and stderr holds exactly these warnings, one a line.
#[track_caller]
fn warns(run: crate::util::Run, lines: &[&str]) {
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let got: Vec<&str> = run.stderr.lines().collect();
    let want: Vec<String> = lines.iter().map(|l| format!("warning: {l}")).collect();
    assert_eq!(got, want);
}

#[test]
fn warns_when_the_manager_lets_headers_with_underscores_through() {
    let dir = Dir::new();
    let warning = format!(
        "{HCM_WHERE}: common_http_protocol_options.headers_with_underscores_action: is not set (ALLOW): \
         a client may send x_auth_subject, which WSGI and CGI upstreams read as x-auth-subject, a claim header \
         the filter sets; set REJECT_REQUEST or DROP_HEADER"
    );
    let envoy = Bootstrap {
        underscores: None,
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    warns(check(&dir, "envoy.yaml"), &[&warning]);
    for allow in ["ALLOW", "0"] {
        let envoy = Bootstrap {
            underscores: Some(allow.into()),
            ..Bootstrap::full()
        };
        dir.write("envoy.yaml", envoy.yaml());
        warns(
            check(&dir, "envoy.yaml"),
            &[&warning.replace("is not set (ALLOW)", "is ALLOW")],
        );
    }
    for refuse in ["REJECT_REQUEST", "DROP_HEADER", "2"] {
        let envoy = Bootstrap {
            underscores: Some(refuse.into()),
            ..Bootstrap::full()
        };
        dir.write("envoy.yaml", envoy.yaml());
        warns(check(&dir, "envoy.yaml"), &[]);
    }
}

#[test]
fn refuses_a_filter_that_fails_open() {
    let dir = Dir::new();
    for (line, path, says) in [
        (
            "failure_policy: FAIL_OPEN",
            "failure_policy",
            "is FAIL_OPEN",
        ),
        ("failure_policy: 3", "failure_policy", "is FAIL_OPEN"),
        ("fail_open: true", "fail_open", "is true"),
    ] {
        let envoy = Bootstrap {
            failure: Some(line.into()),
            ..Bootstrap::full()
        };
        dir.write("envoy.yaml", envoy.yaml());
        let run = check(&dir, "envoy.yaml");
        assert_eq!(run.code, 1, "{line}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{line}: {}", run.stderr);
        assert!(
            lines[0].starts_with(&format!("{FILTER_WHERE}: {path}: {says}: ")),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("an auth bypass") && lines[0].contains("FAIL_RELOAD"),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn suggests_fail_reload_over_fail_closed() {
    let dir = Dir::new();
    let warning = format!(
        "{FILTER_WHERE}: failure_policy: is FAIL_CLOSED: once the VM fails, its worker answers 503 to every \
         request until Envoy restarts; set failure_policy: FAIL_RELOAD (a fresh VM for the next request; \
         the failing request is still refused)"
    );
    for (line, says) in [
        (Some("failure_policy: FAIL_CLOSED"), "is FAIL_CLOSED"),
        (None, "is not set (FAIL_CLOSED)"),
        (
            Some("failure_policy: UNSPECIFIED"),
            "is not set (FAIL_CLOSED)",
        ),
        (Some("fail_open: false"), "is not set (FAIL_CLOSED)"),
    ] {
        let envoy = Bootstrap {
            failure: line.map(str::to_owned),
            ..Bootstrap::full()
        };
        dir.write("envoy.yaml", envoy.yaml());
        warns(
            check(&dir, "envoy.yaml"),
            &[&warning.replace("is FAIL_CLOSED", says)],
        );
    }
}

#[test]
fn refuses_two_services_in_one_vm_id() {
    let dir = Dir::new();
    let envoy = Bootstrap {
        services: 2,
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    invalid(
        check(&dir, "envoy.yaml"),
        &["envoy.yaml: 2 \"tokengate-revocations\" services share vm_id \"tokengate\": they would publish over each other's list; keep one"],
    );
}

#[test]
fn warns_of_every_inline_secret_without_printing_it() {
    let dir = Dir::new();
    let mut filter = filter_config_from_env();
    let inline = serde_json::json!({"kid": "a", "alg": "HS256", "secret": KEY_B64});
    filter["keys"].as_array_mut().unwrap().push(inline.clone());
    filter["keys"].as_array_mut().unwrap().push(inline);
    filter["keys"][2]["kid"] = serde_json::json!("b");
    let envoy = Bootstrap {
        filter: Some(filter.to_string()),
        service: Some(SERVICE.replace(
            r#""secret_env": "TG_LIST_KEY""#,
            &format!(r#""secret": "{KEY_B64}""#),
        )),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    let says = "is an inline secret, which Envoy shows in its admin /config_dump and debug log: \
                name an environment variable with secret_env (handed over by host_env_keys) instead";
    let run = check(&dir, "envoy.yaml");
    assert!(!run.stdout.contains(KEY_B64) && !run.stderr.contains(KEY_B64));
    warns(
        run,
        &[
            &format!("{SERVICE_WHERE}: verify_key.secret: {says}"),
            &format!("{FILTER_WHERE}: keys[1].secret: {says}"),
            &format!("{FILTER_WHERE}: keys[2].secret: {says}"),
        ],
    );
}

#[test]
fn warns_of_a_secret_written_into_key_values() {
    let dir = Dir::new();
    let envoy = Bootstrap {
        service_env: "[]\n          key_values: {TG_LIST_KEY: c2VjcmV0, TG_OTHER: x}".into(),
        ..Bootstrap::full()
    };
    dir.write("envoy.yaml", envoy.yaml());
    let run = check(&dir, "envoy.yaml");
    assert!(!run.stdout.contains("c2VjcmV0") && !run.stderr.contains("c2VjcmV0"));
    warns(
        run,
        &[&format!(
            "{SERVICE_WHERE}: vm_config.environment_variables.key_values.TG_LIST_KEY: holds the secret of \
             verify_key.secret_env in the Envoy configuration, which Envoy shows in its admin /config_dump: \
             list TG_LIST_KEY in host_env_keys and set it in Envoy's environment instead"
        )],
    );
}

#[test]
fn warns_about_a_host_rule_after_rules_that_apply_on_every_host() {
    // Found by the red team: a deny rule for admin.example.com placed after
    // `/public` (anonymous) let admin.example.com/public through.
    let mut config = filter_config();
    config["rules"] = serde_json::json!([
        {"match": {"prefix": "/public"}, "anonymous": true},
        {"match": {"prefix": "/orders", "methods": ["GET"]}, "scopes": ["orders:read"]},
        {"match": {"hosts": ["admin.example.com"]}, "deny": true},
        {"match": {"prefix": "/"}}
    ]);
    let dir = Dir::new();
    dir.write("filter.json", config.to_string());
    let run = check(&dir, "filter.json").ok();
    assert!(
        run.stderr.contains(
            "rules[2]: names hosts but comes after rules[0], rules[1], which apply on every host"
        ),
        "{}",
        run.stderr
    );
    // Host rules first: no warning.
    config["rules"] = serde_json::json!([
        {"match": {"hosts": ["admin.example.com"]}, "deny": true},
        {"match": {"prefix": "/public"}, "anonymous": true},
        {"match": {"prefix": "/"}}
    ]);
    dir.write("filter.json", config.to_string());
    let run = check(&dir, "filter.json").ok();
    assert!(!run.stderr.contains("names hosts"), "{}", run.stderr);
}
