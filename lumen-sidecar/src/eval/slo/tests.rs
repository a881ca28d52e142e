use super::*;

fn slis(availability: f64, p95: f64, p99: f64, error_rate: f64) -> Slis {
    Slis {
        requests: 1000,
        availability_percent: Some(availability),
        error_rate_percent: Some(error_rate),
        latency_p95_ms: Some(p95),
        latency_p99_ms: Some(p99),
        cache_hit_rate_percent: None,
        buckets: None,
    }
}

#[test]
fn status_at_every_boundary() {
    let t = SloTargets::default();
    // (availability, p95, p99, error rate) → (met flags, compliance, status)
    type Row = ((f64, f64, f64, f64), [bool; 4], f64, Status);
    let table: &[Row] = &[
        (
            (99.9, 100.0, 300.0, 0.0),
            [true, true, true, true],
            100.0,
            Status::Healthy,
        ),
        // Exactly the target: availability is met (>=), the others are not (<).
        (
            (99.5, 150.0, 300.0, 0.05),
            [true, true, true, true],
            100.0,
            Status::Healthy,
        ),
        (
            (99.9, 200.0, 300.0, 0.05),
            [true, false, true, true],
            75.0,
            Status::Warning,
        ),
        (
            (99.9, 150.0, 500.0, 0.05),
            [true, true, false, true],
            75.0,
            Status::Warning,
        ),
        (
            (99.9, 150.0, 300.0, 0.1),
            [true, true, true, false],
            75.0,
            Status::Warning,
        ),
        // Just below the availability target.
        (
            (99.499_999, 150.0, 300.0, 0.05),
            [false, true, true, true],
            75.0,
            Status::Warning,
        ),
        // Two of four: 50 % < 75 %.
        (
            (99.0, 250.0, 300.0, 0.05),
            [false, false, true, true],
            50.0,
            Status::Critical,
        ),
        (
            (90.0, 900.0, 900.0, 9.0),
            [false, false, false, false],
            0.0,
            Status::Critical,
        ),
    ];
    for ((a, p95, p99, e), met, compliance, status) in table {
        let got = evaluate(&slis(*a, *p95, *p99, *e), &t);
        let flags: Vec<bool> = got.slos.iter().map(|s| s.met).collect();
        assert_eq!(flags, met, "{a} {p95} {p99} {e}");
        assert_eq!(got.compliance_rate, Some(*compliance));
        assert_eq!(got.status, *status);
    }
}

#[test]
fn a_target_equal_on_paper_is_equal_in_floating_point() {
    let t = SloTargets {
        availability_percent: 99.9,
        ..SloTargets::default()
    };
    // 999 of 1000 requests: 99.9 % exactly, though 99.9 has no exact binary form.
    let availability = 999_f64 * 100.0 / 1000_f64;
    let got = evaluate(&slis(availability, 1.0, 1.0, 0.0), &t);
    assert!(got.slos[0].met);
}

#[test]
fn compliance_boundaries() {
    assert_eq!(status_of(100.0), Status::Healthy);
    assert_eq!(status_of(99.999), Status::Warning);
    assert_eq!(status_of(75.0), Status::Warning);
    assert_eq!(status_of(74.999), Status::Critical);
    assert_eq!(status_of(0.0), Status::Critical);
}

#[test]
fn no_requests_is_no_data() {
    let empty = Slis {
        requests: 0,
        availability_percent: None,
        error_rate_percent: None,
        latency_p95_ms: None,
        latency_p99_ms: None,
        cache_hit_rate_percent: None,
        buckets: None,
    };
    let got = evaluate(&empty, &SloTargets::default());
    assert_eq!(got.status, Status::NoData);
    assert_eq!(got.compliance_rate, None);
    assert!(got.slos.iter().all(|s| !s.met && s.current.is_none()));
    assert_eq!(got.slos.len(), 4);
}
