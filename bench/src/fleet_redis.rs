//! What the fleet-store benches share: Redis's memory use, and the median
//! of timed runs.

/// Redis's `used_memory` (bytes) at `url`.
pub async fn used_memory(url: &str) -> u64 {
    let client = redis::Client::open(url).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// The median of `v` (the upper one of an even count; `v` not empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Applies minute `minute` (Unix minutes) of app instance `app` (its
/// batch `seq`, `series`) to `store` on time, a second after the minute
/// ends, as a sidecar takes it (a batch accepted after its fleet-store
/// blocks closed would be a late batch).
pub fn apply_on_time(
    store: &mut lumen_sidecar::store::WindowStore,
    service: &str,
    app: &str,
    seq: u64,
    minute: u64,
    series: Vec<lumen_middleware::wire::DecodedSeries>,
) {
    use lumen_sidecar::store::MINUTE_MS;
    let batch = lumen_middleware::wire::DecodedBatch {
        instance: app.to_owned(),
        seq,
        service: service.to_owned(),
        revision: Some(format!("{service}-00001")),
        start_ms: minute * MINUTE_MS,
        end_ms: minute * MINUTE_MS + MINUTE_MS - 1,
        process: None,
        series,
    };
    store
        .apply(&batch, (minute + 1) * MINUTE_MS + 1_000)
        .expect("stored");
}
