//! `tokengate verify`: the filter's own decision from the command line.

use crate::util::{
    filter_config, keyed_dir, mint_orders, orders_api, Dir, CLIENT_PEM, GOOD_CLAIMS, KEY384_B64,
    KEY_B64, NOW, ORDERS_KID, PYJWT_HS256, PYJWT_HS384,
};

fn dir_with_config(config: &serde_json::Value) -> Dir {
    let dir = keyed_dir();
    dir.write("filter.json", config.to_string());
    dir
}

fn good_token(dir: &Dir, extra: &[&str]) -> String {
    let mut args = GOOD_CLAIMS.to_vec();
    args.extend_from_slice(&["--sub", "alice"]);
    args.extend_from_slice(extra);
    mint_orders(dir, &args)
}

fn verify(dir: &Dir, extra: &[&str]) -> crate::util::Run {
    let now = NOW.to_string();
    let mut args = vec!["verify", "--config", "filter.json", "--now", &now];
    args.extend_from_slice(extra);
    dir.run(&args)
}

#[test]
fn allows_and_shows_the_request_edits() {
    let dir = dir_with_config(&filter_config());
    let token = good_token(&dir, &["--role", "manager", "--jti", "j-1"]);
    let run = verify(&dir, &["--path", "/orders/7", &token]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "allow");
    assert!(lines.contains(&"remove-header: authorization"), "{lines:?}");
    assert!(
        lines.contains(&"set-header: x-auth-subject: alice"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"set-header: x-auth-scopes: orders:read orders:write reports:read"),
        "{lines:?}"
    );
    assert_eq!(run.field("sub"), Some("alice"));
    assert_eq!(run.field("jti"), Some("j-1"));
    assert_eq!(run.field("kid"), Some(ORDERS_KID));
}

#[test]
fn anonymous_routes_need_no_token() {
    let dir = dir_with_config(&filter_config());
    let run = verify(&dir, &["--path", "/healthz"]).ok();
    assert_eq!(run.stdout.trim(), "anonymous");
}

#[test]
fn refuses_a_request_without_a_token_with_the_challenge() {
    let dir = dir_with_config(&filter_config());
    let run = verify(&dir, &["--path", "/orders"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().next(), Some("deny missing"));
    assert_eq!(run.field("status"), Some("401"));
    assert_eq!(
        run.field("www-authenticate"),
        Some(r#"Bearer realm="orders-api""#)
    );
    let body: serde_json::Value = serde_json::from_str(run.field("body").unwrap()).unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(body["reason"], "missing");
}

#[test]
fn names_the_missing_scope() {
    let dir = dir_with_config(&filter_config());
    let token = good_token(&dir, &["--scope", "orders:read"]);
    let run = verify(&dir, &["--method", "POST", "--path", "/orders", &token]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().next(), Some("deny insufficient_scope"));
    assert_eq!(run.field("status"), Some("403"));
    assert!(
        run.field("www-authenticate")
            .unwrap()
            .ends_with(r#"scope="orders:write""#),
        "{}",
        run.stdout
    );
}

#[test]
fn uses_the_clock_it_is_given() {
    let dir = dir_with_config(&filter_config());
    let token = good_token(&dir, &["--ttl", "15m"]);
    let later = (NOW + 16 * 60 + 30).to_string(); // past exp + 30 s of skew
    let run = dir.run(&["verify", "--config", "filter.json", "--now", &later, &token]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().next(), Some("deny expired"));
    assert!(run
        .field("www-authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
}

#[test]
fn reads_the_token_from_stdin() {
    let dir = dir_with_config(&filter_config());
    let token = good_token(&dir, &[]);
    let now = NOW.to_string();
    let run = dir
        .run_with_stdin(
            &["verify", "--config", "filter.json", "--now", &now, "-"],
            &format!("{token}\n"),
        )
        .ok();
    assert_eq!(run.stdout.lines().next(), Some("allow"));
}

#[test]
fn accepts_pyjwt_tokens() {
    let mut config = filter_config();
    let keys = config["keys"].as_array_mut().unwrap();
    keys.push(serde_json::json!({"kid": "py", "alg": "HS256", "secret": KEY_B64}));
    keys.push(serde_json::json!({"kid": "k384", "alg": "HS384", "secret": KEY384_B64}));
    config["require_claims"] = serde_json::json!(["exp"]);
    config["issuers"] = serde_json::json!([]);
    let dir = dir_with_config(&config);
    let run = verify(&dir, &["--path", "/orders", PYJWT_HS256]).ok();
    assert_eq!(run.field("sub"), Some("py-alice"));
    // No kid, and several keys: the filter cannot choose.
    let run = verify(&dir, &["--path", "/orders", PYJWT_HS384]);
    assert_eq!(run.stdout.lines().next(), Some("deny unknown_key"));
    // With its key alone, it passes: scp and roles grant orders:write.
    let only = serde_json::json!({"keys": [{"kid": "k384", "alg": "HS384", "secret": KEY384_B64}],
        "audiences": ["orders-api"], "roles": {"manager": ["orders:write"]},
        "rules": [{"match": {"prefix": "/orders"}, "scopes": ["orders:read", "orders:write"]}]});
    dir.write("filter.json", only.to_string());
    let run = verify(
        &dir,
        &["--method", "POST", "--path", "/orders", PYJWT_HS384],
    )
    .ok();
    assert_eq!(run.field("sub"), Some("py-bob"));
}

#[test]
fn treats_the_connection_as_tls_unless_told() {
    let mut config = filter_config();
    config["require_tls"] = serde_json::json!(true);
    let dir = dir_with_config(&config);
    let token = good_token(&dir, &[]);
    verify(&dir, &[&token]).ok();
    let run = verify(&dir, &["--no-tls", &token]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().next(), Some("deny tls_required"));
    assert_eq!(run.field("status"), Some("403"));
}

#[test]
fn checks_a_bound_token_against_the_peer_certificate() {
    let dir = dir_with_config(&filter_config());
    dir.write("client.pem", CLIENT_PEM);
    let token = good_token(&dir, &["--bind-cert", "client.pem"]);
    let run = verify(&dir, &[&token]);
    assert_eq!(run.stdout.lines().next(), Some("deny binding_mismatch"));
    assert!(
        run.stderr.starts_with("hint: ") && run.stderr.contains("--peer-cert"),
        "{}",
        run.stderr
    );
    verify(&dir, &["--peer-cert", "client.pem", &token]).ok();
}

#[test]
fn puts_the_token_in_the_first_token_source() {
    let mut config = filter_config();
    config["token_sources"] = serde_json::json!([{"query": "access_token"}, {"header": "authorization", "scheme": "Bearer"}]);
    let dir = dir_with_config(&config);
    let token = good_token(&dir, &[]);
    let run = verify(&dir, &["--path", "/things?page=2", &token]).ok();
    assert!(
        run.stdout.contains("set-header: :path: /things?page=2\n"),
        "token cut from the query: {}",
        run.stdout
    );

    config["token_sources"] = serde_json::json!([{"cookie": "tg_token"}]);
    dir.write("filter.json", config.to_string());
    let run = verify(&dir, &["--header", "cookie: theme=dark", &token]).ok();
    assert!(
        run.stdout.contains("set-header: cookie: theme=dark\n"),
        "{}",
        run.stdout
    );

    config["token_sources"] = serde_json::json!([{"header": "x-api-key"}]);
    dir.write("filter.json", config.to_string());
    let run = verify(&dir, &[&token]).ok();
    assert!(
        run.stdout.contains("remove-header: x-api-key\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn extra_headers_reach_the_decision() {
    let dir = dir_with_config(&filter_config());
    let token = good_token(&dir, &[]);
    // A forged claim header is removed even on an anonymous route.
    let run = verify(
        &dir,
        &["--path", "/healthz", "--header", "X-Auth-Subject: root"],
    )
    .ok();
    assert_eq!(run.stdout, "anonymous\nremove-header: x-auth-subject\n");
    // A second Authorization header: Envoy joins them, the filter refuses.
    let run = verify(&dir, &["--header", "authorization: Bearer other", &token]);
    assert_eq!(run.stdout.lines().next(), Some("deny bad_request"));
}

#[test]
fn json_output_is_machine_readable() {
    let dir = dir_with_config(&filter_config());
    let out = verify(
        &dir,
        &["--json", "--path", "/internal/x", &good_token(&dir, &[])],
    )
    .json();
    assert_eq!(out["decision"], "deny");
    assert_eq!(out["reason"], "denied");
    assert_eq!(out["status"], 403);
    assert_eq!(out["body"]["error"], "access_denied");
    let out = verify(&dir, &["--json", &good_token(&dir, &[])]).json();
    assert_eq!(out["decision"], "allow");
    assert_eq!(out["status"], serde_json::Value::Null);
    assert_eq!(out["remove_headers"], serde_json::json!(["authorization"]));
    assert_eq!(out["sub"], "alice");
}

#[test]
fn without_a_list_a_revocation_section_answers_as_the_filter_does() {
    let mut config = filter_config();
    config["revocation"] = serde_json::json!({"max_stale_s": 60});
    let dir = dir_with_config(&config);
    let token = good_token(&dir, &[]);
    let run = verify(&dir, &[&token]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout.lines().next(),
        Some("deny revocation_unavailable")
    );
    assert_eq!(run.field("status"), Some("503"));
    assert_eq!(run.stderr.lines().count(), 1);
    assert!(
        run.stderr.starts_with("hint: ") && run.stderr.contains("--revocation-list"),
        "{}",
        run.stderr
    );
    // on_unavailable allow: decided without the list, as the filter does.
    config["revocation"] =
        serde_json::json!({"on_unavailable": "allow", "static": [{"jti": "static-1"}]});
    dir.write("filter.json", config.to_string());
    verify(&dir, &[&token]).ok();
    let revoked = good_token(&dir, &["--jti", "static-1"]);
    assert_eq!(
        verify(&dir, &[&revoked]).stdout.lines().next(),
        Some("deny revoked")
    );
}

#[test]
fn consults_a_revocation_list_json_or_signed() {
    let mut config = filter_config();
    config["revocation"] = serde_json::json!({"max_stale_s": 60});
    let mut dir = dir_with_config(&config);
    dir.env("TG_LIST_KEY", KEY_B64);
    let now = NOW.to_string();
    dir.run(&[
        "revoke",
        "--list",
        "list.json",
        "--jti",
        "bad-1",
        "--now",
        &now,
    ])
    .ok();
    dir.run(&[
        "revoke",
        "--list",
        "list.jws",
        "--sub",
        "alice",
        "--sign-key-env",
        "TG_LIST_KEY",
        "--now",
        &now,
    ])
    .ok();
    let revoked = good_token(&dir, &["--jti", "bad-1"]);
    let fine = good_token(&dir, &["--jti", "good-1"]);
    let run = verify(&dir, &["--revocation-list", "list.json", &revoked]);
    assert_eq!(run.stdout.lines().next(), Some("deny revoked"));
    assert!(run.stderr.is_empty());
    verify(&dir, &["--revocation-list", "list.json", &fine]).ok();
    let run = verify(
        &dir,
        &[
            "--revocation-list",
            "list.jws",
            "--list-key-env",
            "TG_LIST_KEY",
            &fine,
        ],
    );
    assert_eq!(
        run.stdout.lines().next(),
        Some("deny revoked"),
        "every token of alice"
    );
}

#[test]
fn reads_the_filter_out_of_an_envoy_file() {
    let dir = keyed_dir();
    let envoy =
        crate::check_config::Bootstrap::filter_only(&filter_config().to_string(), "[TG_KEY]");
    dir.write("envoy.yaml", envoy.yaml());
    let now = NOW.to_string();
    let token = good_token(&dir, &[]);
    let run = dir
        .run(&["verify", "--config", "envoy.yaml", "--now", &now, &token])
        .ok();
    assert_eq!(run.stdout.lines().next(), Some("allow"));
}

// Errors.

#[test]
fn refuses_a_missing_config_flag() {
    keyed_dir()
        .run(&["verify", "some.token"])
        .usage_error(&["--config"]);
}

#[test]
fn refuses_a_missing_config_file() {
    keyed_dir()
        .run(&["verify", "--config", "none.json"])
        .error(2, &["none.json"]);
}

#[test]
fn refuses_an_invalid_configuration_naming_the_field() {
    let mut config = filter_config();
    config["rules"][1]["match"]["methods"] = serde_json::json!(["get"]);
    dir_with_config(&config)
        .run(&["verify", "--config", "filter.json"])
        .error(
            2,
            &["filter.json", "rules[1].match.methods[0]", "upper-case"],
        );
}

#[test]
fn names_an_unset_secret_env() {
    let dir = Dir::new();
    dir.write("filter.json", filter_config().to_string());
    dir.run(&["verify", "--config", "filter.json"])
        .error(2, &["keys[0].secret_env", "TG_KEY"]);
}

#[test]
fn refuses_a_service_configuration() {
    let dir = Dir::new();
    dir.write(
        "service.json",
        r#"{"cluster":"c","authority":"a","path":"/"}"#,
    );
    dir.run(&["verify", "--config", "service.json"])
        .error(2, &["service configuration"]);
}

#[test]
fn refuses_a_signed_list_without_its_key() {
    let mut config = filter_config();
    config["revocation"] = serde_json::json!({});
    let mut dir = dir_with_config(&config);
    dir.env("TG_LIST_KEY", KEY_B64);
    let now = NOW.to_string();
    dir.run(&[
        "revoke",
        "--list",
        "list.jws",
        "--jti",
        "x",
        "--sign-key-env",
        "TG_LIST_KEY",
        "--now",
        &now,
    ])
    .ok();
    verify(&dir, &["--revocation-list", "list.jws"])
        .error(2, &["--revocation-list", "signed", "--list-key-env"]);
    dir.env("TG_OTHER", KEY384_B64);
    verify(
        &dir,
        &[
            "--revocation-list",
            "list.jws",
            "--list-key-env",
            "TG_OTHER",
        ],
    )
    .error(2, &["--revocation-list", "signature"]);
}

#[test]
fn refuses_a_bad_header_flag() {
    let dir = dir_with_config(&filter_config());
    verify(&dir, &["--header", "no-colon"]).error(2, &["--header", "NAME: VALUE"]);
}

#[test]
fn says_when_a_list_is_given_to_a_configuration_without_revocation() {
    let dir = dir_with_config(&filter_config());
    let now = NOW.to_string();
    dir.run(&["revoke", "--list", "list.json", "--jti", "j", "--now", &now])
        .ok();
    let token = good_token(&dir, &["--jti", "j"]);
    let run = verify(&dir, &["--revocation-list", "list.json", &token]).ok();
    assert!(
        run.stderr.starts_with("hint: ") && run.stderr.contains("no revocation section"),
        "{}",
        run.stderr
    );
}

#[test]
fn answers_the_refresh_path_as_the_filter_does() {
    let mut config = filter_config();
    config["refresh"] = orders_api()["refresh"].clone();
    assert_eq!(config["refresh"]["path"], "/oauth/token");
    let dir = dir_with_config(&config);
    let refresh = good_token(&dir, &["--typ", "rt+jwt", "--scope", "orders:read"]);
    let run = verify(
        &dir,
        &["--method", "POST", "--path", "/oauth/token", &refresh],
    )
    .ok();
    assert_eq!(run.stdout.lines().next(), Some("allow"));
    assert_eq!(run.field("status"), Some("200"));
    let body: serde_json::Value = serde_json::from_str(run.field("body").unwrap()).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders:read");
    assert!(run.stderr.contains("is the refresh path"), "{}", run.stderr);
    // An access token is no refresh token; another method is refused; the
    // answer never depends on a rule.
    let access = good_token(&dir, &[]);
    let run = verify(
        &dir,
        &["--method", "POST", "--path", "/oauth/token", &access],
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout.lines().next(), Some("deny wrong_token_type"));
    assert_eq!(run.field("status"), Some("400"));
    let run = verify(&dir, &["--path", "/oauth/token", &refresh]);
    assert_eq!(run.stdout.lines().next(), Some("deny bad_request"));
}
