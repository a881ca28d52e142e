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
