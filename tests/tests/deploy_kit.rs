//! The Cloud Run manifest parses and says what docs/cloud-run.md says it does.

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
    // The shared token comes from one Secret Manager secret, never a value
    // in the file; no variable that holds a secret has a plain value.
    let secret = |c: &Value, name: &str| -> (String, String) {
        let e = c["env"]
            .as_sequence()
            .and_then(|es| es.iter().find(|e| e["name"].as_str() == Some(name)))
            .unwrap_or_else(|| panic!("{name} is set"));
        assert!(e.get("value").is_none(), "{name} has a plain value");
        let r = &e["valueFrom"]["secretKeyRef"];
        (
            r["name"].as_str().expect("a secret").to_owned(),
            r["key"].as_str().expect("a version").to_owned(),
        )
    };
    assert_eq!(
        secret(app, "LUMEN_SIDECAR_TOKEN"),
        secret(sidecar, "LUMEN_AUTH_TOKEN")
    );
    for c in [app, sidecar] {
        for e in c["env"].as_sequence().expect("env") {
            let name = e["name"].as_str().expect("a name");
            assert!(
                !(name.contains("TOKEN") || name.contains("SECRET") || name.contains("PASSWORD"))
                    || e.get("value").is_none(),
                "{name} holds a secret in plain text"
            );
        }
        // By digest: a new build is a new revision, even with the same YAML.
        let image = c["image"].as_str().expect("an image");
        assert!(
            image.contains("@sha256:") && !image.contains(":latest"),
            "{image}: deploy by digest"
        );
    }
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

/// `"0.75"` → 0.75 vCPU.
fn cpu(container: &Value) -> f64 {
    container["resources"]["limits"]["cpu"]
        .as_str()
        .expect("cpu as a string")
        .parse()
        .expect("a number")
}

/// `"512Mi"` / `"1Gi"` → MiB.
fn mebibytes(text: &str) -> f64 {
    if let Some(n) = text.strip_suffix("Mi") {
        n.parse().expect("MiB")
    } else if let Some(n) = text.strip_suffix("Gi") {
        n.parse::<f64>().expect("GiB") * 1024.0
    } else {
        panic!("unexpected memory unit in {text}")
    }
}

fn memory(container: &Value) -> f64 {
    mebibytes(
        container["resources"]["limits"]["memory"]
            .as_str()
            .expect("memory"),
    )
}

#[test]
fn cpu_and_memory_follow_cloud_runs_rules() {
    let s = service();
    let template = &s["spec"]["template"];
    let always_allocated =
        template["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] == "false";
    let containers = template["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    let total_cpu: f64 = containers.iter().map(cpu).sum();
    let total_memory: f64 = containers.iter().map(memory).sum();
    for c in containers {
        let (cpu, memory) = (cpu(c), memory(c));
        assert!(cpu >= 0.08, "{c:?}: at least 0.08 vCPU");
        if cpu > 1.0 {
            assert_eq!(cpu.fract(), 0.0, "above 1 vCPU only whole numbers");
        } else {
            assert!(
                ((cpu * 1000.0).round() - cpu * 1000.0).abs() < 1e-9,
                "steps of 0.001"
            );
        }
        if cpu < 0.5 {
            assert!(memory <= 512.0, "below 0.5 vCPU at most 512 MiB");
        }
        if cpu < 1.0 {
            assert!(memory <= 1024.0, "below 1 vCPU at most 1 GiB");
        }
    }
    if always_allocated {
        // Fail-safe reading of the rules (deploy/NOTES.md): a whole number, at least 1.
        assert!(
            total_cpu >= 1.0,
            "CPU always allocated needs 1 vCPU per instance"
        );
        assert!(
            (total_cpu - total_cpu.round()).abs() < 1e-9,
            "a whole-number total: {total_cpu}"
        );
    }
    let max_memory = match total_cpu.round() as u64 {
        1 => 4096.0,
        2 => 8192.0,
        4 => 16384.0,
        other => panic!("unexpected instance CPU {other}"),
    };
    assert!(total_memory <= max_memory);
}

#[test]
fn the_sidecar_keeps_its_state_on_an_in_memory_volume() {
    let s = service();
    let spec = &s["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "lumen-state")
        .expect("the state volume");
    assert_eq!(volume["emptyDir"]["medium"], "Memory");
    let size = mebibytes(
        volume["emptyDir"]["sizeLimit"]
            .as_str()
            .expect("a size limit"),
    );
    let sidecar = &spec["containers"][1];
    assert!(
        size < memory(sidecar),
        "the volume fits inside the sidecar's memory"
    );
    let mount = sidecar["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "lumen-state")
        .expect("mounted in the sidecar");
    let dir = mount["mountPath"].as_str().expect("a path");
    let state = env(sidecar, "LUMEN_STATE_DIR").expect("a state directory");
    assert!(
        state == dir || state.starts_with(&format!("{dir}/")),
        "{state} on the volume {dir}"
    );
}

/// The gate's manifest.
fn gate_service() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("deploy/cloudrun/gate.yaml"))
        .expect("the gate's manifest exists");
    serde_yaml::from_str(&text).expect("the gate's manifest is YAML")
}

#[test]
fn the_gate_runs_as_one_always_on_instance_under_its_own_account() {
    use clap::Parser;
    let s = gate_service();
    assert_eq!(s["kind"], "Service");
    let template = &s["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["autoscaling.knative.dev/minScale"], "1");
    assert_eq!(annotations["autoscaling.knative.dev/maxScale"], "1");
    assert_eq!(annotations["run.googleapis.com/cpu-throttling"], "false");
    let account = template["spec"]["serviceAccountName"]
        .as_str()
        .expect("an account");
    assert!(account.starts_with("lumen-gate@"), "{account}");
    let containers = template["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    let gate = &containers[0];

    // The arguments are the CLI's: they parse, and the gate listens on
    // the container's port.
    let args: Vec<String> = gate["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string").to_owned())
        .collect();
    let cli = lumen_sidecar::cli::Cli::try_parse_from(
        std::iter::once("lumen-sidecar".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("gate.yaml's args do not parse: {e}"));
    let lumen_sidecar::cli::Command::Gate {
        action: lumen_sidecar::cli::GateAction::Watch(watch),
    } = cli.command
    else {
        panic!("gate.yaml runs something other than `gate watch`: {args:?}");
    };
    let port = gate["ports"][0]["containerPort"].as_u64().expect("a port");
    assert_eq!(u64::from(watch.listen.port()), port);
    assert!(
        !watch.listen.ip().is_loopback(),
        "Cloud Run routes to all interfaces"
    );

    // Off loopback the gate needs tokens, and every token is a secret
    // reference, never a value in the file.
    let env = gate["env"].as_sequence().expect("env");
    let secret = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
            .map(str::to_owned)
    };
    assert!(secret("LUMEN_GATE_APPROVERS").is_some(), "{env:?}");
    for e in env {
        let name = e["name"].as_str().expect("a name");
        if name.contains("TOKEN") || name.contains("APPROVERS") || name.contains("SECRET") {
            assert!(
                e.get("value").is_none() && secret(name).is_some(),
                "{name} must come from Secret Manager"
            );
        }
    }
    // The roles the manifest names are the ones deploy/NOTES.md explains.
    let notes = std::fs::read_to_string(workspace_root().join("deploy/NOTES.md")).expect("notes");
    let section = notes
        .split("## The gate's service")
        .nth(1)
        .expect("NOTES.md has the gate's section");
    let manifest = std::fs::read_to_string(workspace_root().join("deploy/cloudrun/gate.yaml"))
        .expect("the gate's manifest");
    for role in [
        "roles/run.developer",
        "roles/monitoring.viewer",
        "roles/secretmanager.secretAccessor",
    ] {
        assert!(manifest.contains(role) && section.contains(role), "{role}");
    }
}
