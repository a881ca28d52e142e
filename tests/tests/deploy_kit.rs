//! The Cloud Run manifest parses and says what the README says it does.

use lumen_tests::workspace_root;
use serde_yaml::Value;

fn service() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("deploy/cloudrun/service.yaml"))
        .expect("the manifest exists");
    serde_yaml::from_str(&text).expect("the manifest is YAML")
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

#[test]
fn the_service_has_the_app_and_the_sidecar() {
    let s = service();
    assert_eq!(s["apiVersion"], "serving.knative.dev/v1");
    assert_eq!(s["kind"], "Service");
    let template = &s["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["run.googleapis.com/cpu-throttling"], "false");
    let deps: serde_json::Value = serde_json::from_str(
        annotations["run.googleapis.com/container-dependencies"]
            .as_str()
            .expect("a string"),
    )
    .expect("JSON");
    assert_eq!(deps, serde_json::json!({ "app": ["lumen-sidecar"] }));

    let containers = template["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 2);
    let (app, sidecar) = (&containers[0], &containers[1]);
    assert_eq!(app["name"], "app");
    assert_eq!(
        app["ports"][0]["containerPort"], 8080,
        "the app has the ingress port"
    );
    assert_eq!(sidecar["name"], "lumen-sidecar");
    assert!(
        sidecar.get("ports").is_none(),
        "the sidecar has no ingress port"
    );
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["port"], 9464);

    // The app ships to the sidecar's listener with the sidecar's token.
    let listen = env(sidecar, "LUMEN_LISTEN").expect("listen");
    let port = listen.rsplit(':').next().expect("port");
    assert_eq!(
        env(app, "LUMEN_SIDECAR_URL"),
        Some(format!("http://127.0.0.1:{port}/v1/ingest"))
    );
    assert_eq!(
        env(app, "LUMEN_SIDECAR_TOKEN"),
        env(sidecar, "LUMEN_AUTH_TOKEN")
    );
    assert!(
        template["spec"]["serviceAccountName"]
            .as_str()
            .expect("an account")
            .contains("iam.gserviceaccount.com")
    );
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_without_healthcheck() {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(
        instructions
            .iter()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2
    );
    assert!(instructions.iter().any(|l| l.starts_with("USER nonroot")));
    assert!(!instructions.iter().any(|l| l.starts_with("HEALTHCHECK")));
    assert!(instructions.iter().any(|l| l.contains("-p lumen-sidecar")));
}
