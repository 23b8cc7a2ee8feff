//! Statistics and number formats of the benchmark tables.

use std::time::{Duration, Instant};

/// Nearest-rank percentile of sorted values (`NaN` if empty).
pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The values, sorted.
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Arithmetic mean (0 if empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Median of the finite values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    pct(&sorted(v), 0.5)
}

/// Send lateness against the straight-line schedule that the earliest
/// sends define. `points` are (probe index, send time in µs). The line
/// goes through the earliest send of the first and of the last quarter,
/// so a tool whose period is slightly off (or a clock being slewed) is
/// judged on its jitter, and its rate is reported separately.
pub fn lateness_vs_fit(points: &[(u64, f64)]) -> Vec<f64> {
    if points.len() < 8 {
        return Vec::new();
    }
    let (k0, t0) = points[0];
    let (kn, tn) = points[points.len() - 1];
    let period = (tn - t0) / (kn - k0).max(1) as f64;
    let resid: Vec<(f64, f64)> = points
        .iter()
        .map(|&(k, t)| ((k - k0) as f64, t - t0 - (k - k0) as f64 * period))
        .collect();
    let q = resid.len() / 4;
    let lowest = |s: &[(f64, f64)]| {
        s.iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0.0, 0.0))
    };
    let (ka, ra) = lowest(&resid[..q]);
    let (kb, rb) = lowest(&resid[resid.len() - q..]);
    let slope = if kb > ka { (rb - ra) / (kb - ka) } else { 0.0 };
    resid
        .iter()
        .map(|&(k, r)| r - (ra + slope * (k - ka)))
        .collect()
}

/// Lateness against the exact nominal schedule: the earliest send defines
/// the phase, `period_us` the spacing (the sidecar's schedule is absolute).
pub fn lateness_vs_schedule(points: &[(u64, f64)], period_us: f64) -> Vec<f64> {
    let Some(&(k0, _)) = points.first() else {
        return Vec::new();
    };
    let phase = points
        .iter()
        .map(|&(k, t)| t - (k - k0) as f64 * period_us)
        .fold(f64::INFINITY, f64::min);
    points
        .iter()
        .map(|&(k, t)| t - phase - (k - k0) as f64 * period_us)
        .collect()
}

/// Achieved rate from (probe index, send time µs) points, Hz.
pub fn rate_of(points: &[(u64, f64)]) -> f64 {
    match (points.first(), points.last()) {
        (Some(&(k0, t0)), Some(&(kn, tn))) if tn > t0 => (kn - k0) as f64 / (tn - t0) * 1e6,
        _ => f64::NAN,
    }
}

/// Sleeps for a measured window (the sleep *is* the window) and returns
/// its real length.
pub fn window(d: Duration) -> Duration {
    let t = Instant::now();
    std::thread::sleep(d);
    t.elapsed()
}

/// `12.3 µs`, `123 µs`, `> 1 s` (a histogram's +Inf) or `-`.
pub fn us(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.is_infinite() {
        "> 1 s".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// `1000 Hz` or `-`.
pub fn hz(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.0} Hz")
    }
}

/// kB as `12.3 MB`.
pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// A goal's outcome as the tables write it.
pub fn yes(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = sorted(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(pct(&v, 0.5), 3.0);
        assert_eq!(pct(&v, 0.99), 5.0);
        assert_eq!(pct(&v, 0.0), 1.0);
        assert!(pct(&[], 0.5).is_nan());
        assert_eq!(median(vec![f64::NAN, 2.0, 1.0, 3.0]), 2.0);
    }

    #[test]
    fn lateness_against_a_fitted_line_ignores_a_rate_error_but_not_jitter() {
        // 1 % slow, one send 50 µs late.
        let mut pts: Vec<(u64, f64)> = (0..100).map(|k| (k, k as f64 * 1010.0)).collect();
        pts[40].1 += 50.0;
        let l = lateness_vs_fit(&pts);
        assert!((l[40] - 50.0).abs() < 1e-6, "{}", l[40]);
        assert!(l.iter().enumerate().all(|(i, x)| i == 40 || x.abs() < 1e-6));
        // Against the exact 1000 µs schedule the rate error is lateness.
        let s = lateness_vs_schedule(&pts, 1000.0);
        assert!((s[99] - 990.0).abs() < 1e-6, "{}", s[99]);
        assert!((rate_of(&pts) - 1e6 / 1010.0).abs() < 1.0);
    }

    #[test]
    fn formats() {
        assert_eq!(us(12.34), "12.3 µs");
        assert_eq!(us(1234.0), "1234 µs");
        assert_eq!(us(f64::INFINITY), "> 1 s");
        assert_eq!(us(f64::NAN), "-");
        assert_eq!(mb(2048), "2.0 MB");
        assert_eq!(yes(false), "MISSED");
    }
}
