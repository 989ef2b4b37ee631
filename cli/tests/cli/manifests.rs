//! `tokengate check-config` on the Kubernetes resources of Istio and Envoy
//! Gateway (docs/deployment.md, "Istio" and "Envoy Gateway"): the shipped
//! examples pass, and each one broken in one place fails, naming the place.

use crate::util::Dir;

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example with `from` replaced by `to` (which must be there: a
/// variant that changes nothing would test nothing).
fn variant(name: &str, from: &str, to: &str) -> String {
    let text = example(name);
    assert!(text.contains(from), "{name} has no {from:?}");
    text.replacen(from, to, 1)
}

/// check-config on `text` exits 1, with one error line holding every one of
/// `words`.
#[track_caller]
fn refused(text: &str, words: &[&str]) {
    let dir = Dir::new();
    dir.write("resources.yaml", text);
    let run = dir.run(&["check-config", "resources.yaml"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    for word in words {
        assert!(errors[0].contains(word), "{:?} lacks {word:?}", errors[0]);
    }
}

const ISTIO: &str = "istio/tokengate.yaml";
const GATEWAY: &str = "envoy-gateway/tokengate.yaml";

#[test]
fn the_istio_and_envoy_gateway_examples_pass_as_checked_in() {
    let dir = Dir::new();
    for (name, filter, service) in [
        (
            ISTIO,
            "WasmPlugin istio-system/tokengate: ok: tokengate filter",
            "EnvoyFilter istio-system/tokengate-revocations: ",
        ),
        (
            GATEWAY,
            "EnvoyExtensionPolicy default/tokengate: ok: tokengate filter",
            "EnvoyProxy default/tokengate: spec.bootstrap.value.",
        ),
    ] {
        dir.write("resources.yaml", example(name));
        let run = dir.run(&["check-config", "resources.yaml"]).ok();
        assert_eq!(run.stderr, "", "{name}");
        assert!(run.stdout.contains(filter), "{name}: {}", run.stdout);
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(service) && l.contains("ok: tokengate-revocations service")),
            "{name}: {}",
            run.stdout
        );
        assert!(
            run.stdout
                .ends_with("2 tokengate configurations checked: 0 errors, 0 warnings\n"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn an_istio_service_outside_the_wasm_plugins_vm_id_is_refused() {
    // Istio gives a WasmPlugin's VM no vm_id: a service in vm_id "tokengate"
    // publishes where the filter never reads.
    refused(
        &variant(ISTIO, "vm_id: \"\"", "vm_id: tokengate"),
        &[
            "EnvoyFilter istio-system/tokengate-revocations",
            "vm_config.vm_id",
            "is \"tokengate\"",
            "WasmPlugin istio-system/tokengate",
        ],
    );
}

#[test]
fn an_envoy_gateway_service_outside_the_policys_vm_id_is_refused() {
    refused(
        &variant(
            GATEWAY,
            "vm_id: envoyextensionpolicy/default/tokengate/wasm/0",
            "vm_id: tokengate",
        ),
        &[
            "EnvoyProxy default/tokengate",
            "vm_config.vm_id",
            "envoyextensionpolicy/default/tokengate/wasm/0",
        ],
    );
    // The policy renamed, the service left behind.
    refused(
        &variant(
            GATEWAY,
            "kind: EnvoyExtensionPolicy\nmetadata:\n  name: tokengate",
            "kind: EnvoyExtensionPolicy\nmetadata:\n  name: gate",
        ),
        &[
            "vm_config.vm_id",
            "envoyextensionpolicy/default/gate/wasm/0",
        ],
    );
}

#[test]
fn a_key_not_handed_to_the_vm_is_refused_naming_the_field() {
    refused(
        &variant(
            ISTIO,
            "- name: TOKENGATE_KEY_DEMO\n      valueFrom: HOST",
            "- name: TOKENGATE_KEY_OTHER\n      valueFrom: HOST",
        ),
        &[
            "WasmPlugin istio-system/tokengate",
            "spec.pluginConfig.keys[0].secret_env",
            "TOKENGATE_KEY_DEMO",
            "spec.vmConfig.env",
        ],
    );
    refused(
        &variant(GATEWAY, "hostKeys: [TOKENGATE_KEY_DEMO]", "hostKeys: []"),
        &[
            "EnvoyExtensionPolicy default/tokengate",
            "spec.wasm[0].config.keys[0].secret_env",
            "env.hostKeys",
        ],
    );
    // Handed to the VM, but the proxy container never gets it.
    refused(
        &variant(GATEWAY, "          - name: TOKENGATE_LIST_KEY\n            valueFrom: {secretKeyRef: {name: tokengate-keys, key: TOKENGATE_LIST_KEY}}\n", ""),
        &["EnvoyProxy default/tokengate", "verify_key.secret_env", "TOKENGATE_LIST_KEY", "container env"],
    );
}

#[test]
fn an_inline_istio_env_value_for_a_secret_is_a_warning() {
    let dir = Dir::new();
    dir.write(
        "resources.yaml",
        variant(
            ISTIO,
            "- name: TOKENGATE_KEY_DEMO\n      valueFrom: HOST",
            "- name: TOKENGATE_KEY_DEMO\n      value: c2VjcmV0",
        ),
    );
    let run = dir.run(&["check-config", "resources.yaml"]).ok();
    assert!(run.stderr.contains("warning: WasmPlugin istio-system/tokengate: spec.vmConfig.env.TOKENGATE_KEY_DEMO: holds the secret"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("c2VjcmV0"),
        "a secret value in the output: {}",
        run.stderr
    );
}

#[test]
fn a_bad_configuration_inside_the_resources_is_refused_naming_the_field() {
    refused(
        &variant(
            ISTIO,
            "alg: HS256, secret_env: TOKENGATE_KEY_DEMO",
            "alg: RS256, secret_env: TOKENGATE_KEY_DEMO",
        ),
        &[
            "WasmPlugin istio-system/tokengate",
            "spec.pluginConfig.keys[0].alg",
            "RS256",
        ],
    );
    refused(
        &variant(GATEWAY, "max_stale_s: 60", "max_stale_s: -1"),
        &[
            "EnvoyExtensionPolicy default/tokengate",
            "spec.wasm[0].config.revocation.max_stale_s",
        ],
    );
    // The service's own JSON, inside a bootstrap patch.
    refused(
        &variant(
            ISTIO,
            "\"poll_interval_s\": 5",
            "\"poll_interval_s\": \"5\"",
        ),
        &[
            "EnvoyFilter istio-system/tokengate-revocations",
            "poll_interval_s",
        ],
    );
}

#[test]
fn failing_open_is_refused_in_either_dialect() {
    refused(
        &variant(ISTIO, "failStrategy: FAIL_CLOSE", "failStrategy: FAIL_OPEN"),
        &["spec.failStrategy", "FAIL_OPEN", "auth bypass"],
    );
    refused(
        &variant(GATEWAY, "failOpen: false", "failOpen: true"),
        &["spec.wasm[0].failOpen", "auth bypass"],
    );
}

#[test]
fn a_missing_list_cluster_is_refused() {
    refused(
        &variant(
            ISTIO,
            "- name: tokengate_revocations",
            "- name: other_cluster",
        ),
        &["cluster", "tokengate_revocations", "cannot fetch the list"],
    );
    // An EnvoyPatchPolicy may add it instead.
    let moved = variant(
        GATEWAY,
        "- name: tokengate_revocations",
        "- name: other_cluster",
    ) + concat!(
        "---\n",
        "apiVersion: gateway.envoyproxy.io/v1alpha1\n",
        "kind: EnvoyPatchPolicy\n",
        "metadata: {name: list, namespace: default}\n",
        "spec:\n",
        "  type: JSONPatch\n",
        "  jsonPatches:\n",
        "  - type: type.googleapis.com/envoy.config.cluster.v3.Cluster\n",
        "    name: tokengate_revocations\n",
        "    operation: {op: add, path: '', value: {name: tokengate_revocations}}\n",
    );
    let dir = Dir::new();
    dir.write("resources.yaml", moved);
    dir.run(&["check-config", "resources.yaml"]).ok();
}

#[test]
fn a_bootstrap_patch_istio_would_not_apply_is_refused() {
    refused(
        &variant(
            ISTIO,
            "- applyTo: BOOTSTRAP\n    patch:\n      operation: MERGE",
            "- applyTo: BOOTSTRAP\n    patch:\n      operation: ADD",
        ),
        &["spec.configPatches[0].patch.operation", "MERGE"],
    );
}

#[test]
fn refresh_under_a_control_plane_that_cannot_pass_bodies_is_refused() {
    refused(
        &variant(
            ISTIO,
            "revocation: {max_stale_s: 60, on_unavailable: deny}",
            "revocation: {max_stale_s: 60, on_unavailable: deny}\n    refresh: {path: /oauth/token, kid: demo}",
        ),
        &["spec.pluginConfig.refresh", "allow_on_headers_stop_iteration"],
    );
}

#[test]
fn resources_without_tokengate_say_so() {
    let dir = Dir::new();
    dir.write(
        "resources.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {}\n",
    );
    let run = dir.run(&["check-config", "resources.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("no tokengate configuration found in 0 resources"),
        "{}",
        run.stderr
    );
}
