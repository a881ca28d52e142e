use super::*;
use crate::eval::StatusClass;
use std::collections::HashMap;

fn load(toml_text: Option<&str>, env: &[(&str, &str)]) -> Result<SidecarConfig, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "lumen-config-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("lumen.toml");
    if let Some(text) = toml_text {
        std::fs::write(&path, text).expect("write");
    }
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let result =
        SidecarConfig::load_with(toml_text.map(|_| path.as_path()), |k| env.get(k).cloned());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn defaults_are_the_seeds_targets() {
    let c = load(None, &[]).expect("defaults are valid");
    assert_eq!(c, SidecarConfig::default());
    assert_eq!(c.slo.availability_percent, 99.5);
    assert_eq!(c.slo.latency_p95_ms, 200.0);
    assert_eq!(c.slo.latency_p99_ms, 500.0);
    assert_eq!(c.slo.error_rate_percent, 0.1);
    assert_eq!(c.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.window, Duration::from_secs(3600));
}

#[test]
fn file_then_environment() {
    let c = load(
        Some("service = \"api\"\n[slo]\navailability = 99.9\nwindow = \"30m\"\nerror_classes = [\"5xx\"]\n"),
        &[("LUMEN_SLO_LATENCY_P95_MS", "150"), ("LUMEN_WINDOW", "2h")],
    )
    .expect("valid");
    assert_eq!(c.service.as_deref(), Some("api"));
    assert_eq!(c.slo.availability_percent, 99.9);
    assert_eq!(c.slo.latency_p95_ms, 150.0);
    assert_eq!(c.window, Duration::from_secs(7200), "environment wins");
    assert_eq!(c.slo.error_classes, [StatusClass::ServerError]);
}

#[test]
fn bad_keys_and_values_name_the_key_and_what_is_allowed() {
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            Some("[slo]\navailabilty = 99.9\n"),
            &[],
            "unknown key `slo.availabilty`",
        ),
        (
            Some("[slo]\navailability = \"high\"\n"),
            &[],
            "availability",
        ),
        (
            Some("[slo]\navailability = 101\n"),
            &[],
            "slo.availability in lumen.toml = 101: a percent above 0, at most 100",
        ),
        (
            None,
            &[("LUMEN_FEEDBACK_MIN_LOOKUPS", "0")],
            "LUMEN_FEEDBACK_MIN_LOOKUPS = 0: at least 1",
        ),
        (
            Some("[slo]\nwindow = \"90s\"\n"),
            &[],
            "slo.window in lumen.toml = 90s: whole minutes from 1m to 24h",
        ),
        (
            Some("[slo]\nerror_classes = [\"6xx\"]\n"),
            &[],
            "slo.error_classes in lumen.toml = 6xx: 6xx is not one of 1xx, 2xx, 3xx, 4xx, 5xx",
        ),
        (
            Some("[server]\nlisten = \"0.0.0.0:9464\"\n"),
            &[],
            "set server.auth_token",
        ),
        (None, &[("LUMEN_WINDOW", "soon")], "LUMEN_WINDOW = soon"),
        (
            None,
            &[("LUMEN_SLO_ERROR_RATE", "x")],
            "LUMEN_SLO_ERROR_RATE = x: a number",
        ),
        (
            None,
            &[("LUMEN_LISTEN", "localhost")],
            "LUMEN_LISTEN = localhost: an IP address and port",
        ),
        (
            None,
            &[("LUMEN_SLO_LATENCY_P99_MS", "0")],
            "LUMEN_SLO_LATENCY_P99_MS = 0: milliseconds above 0",
        ),
    ];
    for (file, env, expected) in cases {
        let err = load(*file, env).expect_err(expected).to_string();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }
}

#[test]
fn a_missing_file_is_an_error() {
    let err = SidecarConfig::load_with(Some(Path::new("/nonexistent/lumen.toml")), |_| None)
        .expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("cannot read config file /nonexistent/lumen.toml")
    );
}

#[test]
fn shown_config_loads_back_to_the_same() {
    let c = load(
        Some("[slo]\nlatency_p99_ms = 750\n[store]\nsnapshot_path = \"/tmp/x.json\"\n"),
        &[],
    )
    .expect("valid");
    let shown = c.to_toml();
    let again = load(Some(&shown), &[]).expect("shown config is valid");
    assert_eq!(again, c);
    let with_token = load(None, &[("LUMEN_AUTH_TOKEN", "secret")]).expect("valid");
    assert!(!with_token.to_toml().contains("secret"));
}

#[test]
fn otlp_export_follows_the_otel_conventions() {
    let off = load(None, &[]).expect("valid");
    assert_eq!(off.export.mode, ExportMode::Off, "no endpoint, no export");
    let c = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=a%20b,api-key=k"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_SERVICE_NAME", "api"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ],
    )
    .expect("valid");
    assert_eq!(c.export.mode, ExportMode::Otlp);
    assert_eq!(
        c.export.endpoint.as_deref(),
        Some("http://127.0.0.1:4318/v1/metrics")
    );
    assert_eq!(
        c.export.headers,
        [
            ("x-tenant".to_owned(), "a b".to_owned()),
            ("api-key".to_owned(), "k".to_owned())
        ]
    );
    assert_eq!(c.export.interval, Duration::from_secs(15));
    assert_eq!(c.export.service_name.as_deref(), Some("api"));
    assert!(!c.export.google_auth);
    let grpc = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    )
    .expect("valid");
    assert_eq!(
        grpc.export.endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );
    assert_eq!(grpc.export.protocol, OtlpProtocol::Grpc);
    let full = load(
        None,
        &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://h:1/custom")],
    )
    .expect("valid");
    assert_eq!(full.export.endpoint.as_deref(), Some("http://h:1/custom"));
}

#[test]
fn cloud_run_defaults_to_googles_endpoint_with_a_token() {
    let c = load(
        None,
        &[
            ("K_SERVICE", "api"),
            ("K_REVISION", "api-00002"),
            ("K_CONFIGURATION", "api"),
        ],
    )
    .expect("valid");
    assert_eq!(c.export.mode, ExportMode::Otlp);
    assert_eq!(
        c.export.endpoint.as_deref(),
        Some("https://telemetry.googleapis.com/v1/metrics")
    );
    assert!(c.export.google_auth);
    assert_eq!(
        c.export.cloud_run.as_ref().map(|r| r.revision.as_deref()),
        Some(Some("api-00002"))
    );
    let off = load(None, &[("K_SERVICE", "api"), ("LUMEN_EXPORT", "off")]).expect("valid");
    assert_eq!(off.export.mode, ExportMode::Off);
}

#[test]
fn bad_export_settings_are_refused() {
    for (env, expected) in [
        (
            &[("OTEL_METRIC_EXPORT_INTERVAL", "5000")][..],
            "at least 10s",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ][..],
            "http/protobuf or grpc",
        ),
        (&[("LUMEN_EXPORT", "otlp")][..], "an endpoint"),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")][..],
            "an http:// or https:// URL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")][..],
            "key=value",
        ),
    ] {
        let err = load(None, env).expect_err(expected).to_string();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }
}

#[test]
fn roi_settings_and_their_errors() {
    let c = load(
        Some("[roi]\ncost_per_miss_usd = 0.01\nredis_monthly_cost_usd = 30\n"),
        &[("LUMEN_ROI_PASS_PERCENT", "600")],
    )
    .expect("valid");
    assert_eq!(c.roi.cost_per_miss_usd, 0.01);
    assert_eq!(c.roi.redis_monthly_cost_usd, 30.0);
    assert_eq!(c.roi.pass_percent, 600.0);
    let zero = load(Some("[roi]\nredis_monthly_cost_usd = 0\n"), &[])
        .expect_err("zero cost")
        .to_string();
    assert!(
        zero.contains(
            "roi.redis_monthly_cost_usd in lumen.toml = 0: the cache's monthly cost in USD, above 0"
        ),
        "{zero}"
    );
    let order = load(None, &[("LUMEN_ROI_WARN_PERCENT", "800")])
        .expect_err("warn above pass")
        .to_string();
    assert!(
        order.contains("roi.pass_percent (default) = 500: a percent above roi.warn_percent (800, from LUMEN_ROI_WARN_PERCENT)"),
        "{order}"
    );
}

#[test]
fn budget_period_from_file_and_environment() {
    let c = load(Some("[budget]\nperiod = \"month\"\nmin_events = 20\n"), &[]).expect("valid");
    assert_eq!(c.budget_period, crate::eval::SloPeriod::CalendarMonth);
    assert_eq!(c.budget_min_events, 20);
    let e = load(None, &[("LUMEN_BUDGET_PERIOD", "7d")]).expect("valid");
    assert_eq!(e.budget_period, crate::eval::SloPeriod::Rolling(7));
    let err = load(Some("[budget]\nperiod = \"1y\"\n"), &[])
        .expect_err("bad period")
        .to_string();
    assert!(
        err.contains("budget.period in lumen.toml = 1y: 7d, 28d, 30d or month"),
        "{err}"
    );
    let shown = load(Some("[budget]\nperiod = \"28d\"\n"), &[])
        .expect("valid")
        .to_toml();
    assert!(shown.contains("period = \"28d\""), "{shown}");
}

#[test]
fn the_table_has_one_entry_per_key_and_variable() {
    let mut keys: Vec<&str> = SETTINGS.iter().filter_map(|s| s.key).collect();
    let mut vars: Vec<&str> = SETTINGS
        .iter()
        .flat_map(|s| s.env.iter().copied())
        .collect();
    let (k, v) = (keys.len(), vars.len());
    keys.sort_unstable();
    keys.dedup();
    vars.sort_unstable();
    vars.dedup();
    assert_eq!(
        (keys.len(), vars.len()),
        (k, v),
        "a key or variable is listed twice"
    );
    assert!(
        SETTINGS
            .iter()
            .all(|s| s.key.is_some() || !s.env.is_empty())
    );
    assert!(
        SETTINGS
            .iter()
            .all(|s| !s.help.is_empty() && !s.default.is_empty())
    );
}

#[test]
fn every_file_key_is_shown_and_read_back() {
    let shown = SidecarConfig::default().to_toml();
    let table: toml::Table = toml::from_str(&shown).expect("TOML");
    for key in SETTINGS.iter().filter_map(|s| s.key) {
        let found = match key.split_once('.') {
            Some((section, name)) => table
                .get(section)
                .and_then(|t| t.as_table())
                .is_some_and(|t| t.contains_key(name)),
            None => table.contains_key(key),
        };
        let optional = [
            "service",
            "server.auth_token",
            "server.allowed_hosts",
            "store.snapshot_path",
            "store.state_dir",
            "store.max_bytes",
            "store.state_max_bytes",
            "export.endpoint",
            "export.quota_project",
            "export.data_path",
            "roi.redis_monthly_cost_usd",
            "roi.instances",
            "fleet.redis_url",
            "fleet.redis_ca_file",
            "fleet.instance",
            "fleet.prometheus_url",
            "experiment.param",
            "experiment.a",
            "experiment.b",
        ];
        assert!(
            found || optional.contains(&key),
            "{key} missing from\n{shown}"
        );
    }
}

#[test]
fn a_value_of_the_wrong_shape_names_its_key() {
    let err = load(Some("[slo]\navailability = { x = 1 }\n"), &[])
        .expect_err("a table is no percent")
        .to_string();
    assert!(
        err.starts_with("slo.availability in lumen.toml = "),
        "{err}"
    );
    let err = load(None, &[("SLACK_WEBHOOK_URL", "not a url")])
        .expect_err("bad webhook")
        .to_string();
    assert_eq!(
        err,
        "SLACK_WEBHOOK_URL = ***: an https:// incoming-webhook URL"
    );
}

#[test]
fn the_configuration_page_table_is_the_settings_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let readme = std::fs::read_to_string(path).expect("docs/ is beside the crate");
    let table = markdown_table();
    assert!(
        readme.contains(&table),
        "docs/configuration.md's table differs from the settings; replace it with:\n{table}"
    );
}

#[test]
fn store_limits_are_read_and_checked() {
    let c = load(
        None,
        &[
            ("LUMEN_STORE_MAX_BYTES", "64MiB"),
            ("LUMEN_MAX_ROUTES", "40"),
        ],
    )
    .expect("valid");
    assert_eq!(c.store_max_bytes, Some(64 << 20));
    assert_eq!(c.max_routes, 40);
    let c = load(Some("[store]\nmax_bytes = \"2GiB\"\n"), &[]).expect("valid");
    assert_eq!(c.store_max_bytes, Some(2 << 30));
    for (key, bad, says) in [
        ("LUMEN_STORE_MAX_BYTES", "12", "at least 1MiB"),
        ("LUMEN_STORE_MAX_BYTES", "5XB", "KiB, MiB or GiB"),
        ("LUMEN_MAX_ROUTES", "0", "from 1 to 10000"),
    ] {
        let e = load(None, &[(key, bad)]).expect_err("refused").to_string();
        assert!(e.contains(key) && e.contains(says), "{e}");
    }
}

#[test]
fn an_experiment_at_boot_needs_its_three_values_and_a_runnable_spec() {
    let c = load(
        Some("[experiment]\nparam = \"answer_ttl_s\"\na = 300\nb = 900\nduration = \"2d\"\n"),
        &[("LUMEN_EXPERIMENT_PRIMARY", "error_rate")],
    )
    .expect("a full experiment");
    let spec = c.experiment.spec().expect("configured");
    assert_eq!((spec.a, spec.b, spec.share_b_percent), (300, 900, 50));
    assert_eq!(spec.duration, Duration::from_secs(2 * 86_400));
    assert_eq!(spec.primary, crate::eval::Metric::ErrorRate);
    let err = load(
        None,
        &[
            ("LUMEN_EXPERIMENT_PARAM", "ttl"),
            ("LUMEN_EXPERIMENT_A", "1"),
        ],
    )
    .expect_err("b missing")
    .to_string();
    assert!(err.contains("experiment.b"), "{err}");
    let err = load(
        None,
        &[
            ("LUMEN_EXPERIMENT_PARAM", "ttl"),
            ("LUMEN_EXPERIMENT_A", "5"),
            ("LUMEN_EXPERIMENT_B", "5"),
        ],
    )
    .expect_err("equal arms")
    .to_string();
    assert!(err.contains("the arms must differ"), "{err}");
    let err = load(None, &[("LUMEN_EXPERIMENT_SHARE", "100")])
        .expect_err("share")
        .to_string();
    assert!(err.starts_with("LUMEN_EXPERIMENT_SHARE"), "{err}");
    let err = load(None, &[("LUMEN_EXPERIMENT_PRIMARY", "p95")])
        .expect_err("metric")
        .to_string();
    assert!(err.contains("cache_hit_rate, error_rate"), "{err}");
}

#[test]
fn a_bad_value_of_a_secret_bearing_setting_is_never_echoed() {
    const MARK: &str = "s3cretMARK";
    let cases = [
        (
            "LUMEN_FLEET_REDIS_URL",
            format!("http://lumen:{MARK}@10.0.0.3:6379"),
        ),
        ("LUMEN_FLEET_PROMETHEUS_URL", format!("ftp://u:{MARK}@host")),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization Bearer {MARK}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            format!("x={MARK},broken"),
        ),
        (
            "SLACK_WEBHOOK_URL",
            format!("hooks.slack.com/services/{MARK}"),
        ),
        ("LUMEN_AUTH_TOKEN", format!("{MARK}\n")),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("nonsense://u:{MARK}@"),
        ),
    ];
    let mut refused = 0;
    for (var, value) in &cases {
        let Err(e) = load(None, &[(var, value.as_str())]) else {
            continue;
        };
        refused += 1;
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(MARK), "{var}: {shown}");
        }
        assert!(e.to_string().contains(var), "{var} named: {e}");
    }
    assert!(
        refused >= 5,
        "only {refused} of the bad values were refused"
    );
    // In the file too.
    let e = load(
        Some(&format!("[fleet]\nredis_url = \"http://:{MARK}@host\"\n")),
        &[],
    )
    .expect_err("not a redis URL");
    assert!(!format!("{e} {e:?}").contains(MARK), "{e}");
}

#[test]
fn maintenance_windows_from_file_and_environment() {
    let c = load(
        Some("[budget]\nmaintenance = [\"Sun 02:00-03:00\", \"daily 04:00-04:10\"]\n"),
        &[],
    )
    .expect("valid");
    let shown: Vec<String> = c
        .budget_maintenance
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["Sun 02:00-03:00", "daily 04:00-04:10"]);
    let e = load(
        None,
        &[(
            "LUMEN_BUDGET_MAINTENANCE",
            "Sat 23:00-24:00; Sun 00:00-01:00",
        )],
    )
    .expect("valid");
    assert_eq!(e.budget_maintenance.len(), 2);
    let err = load(None, &[("LUMEN_BUDGET_MAINTENANCE", "Sat 23:00-01:00")])
        .expect_err("over midnight")
        .to_string();
    assert!(
        err.contains("LUMEN_BUDGET_MAINTENANCE") && err.contains("a window over midnight is two"),
        "{err}"
    );
    assert!(
        load(None, &[])
            .expect("valid")
            .budget_maintenance
            .is_empty()
    );
}
