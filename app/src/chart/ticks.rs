//! Where the axes put their labels: round values on the y axis, round
//! local clock times on the time axis, never more than fit the width.

/// Steps of the time axis, µs: round clock intervals.
const TIME_STEPS_US: [i64; 21] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    15_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
    900_000_000,
    1_800_000_000,
    3_600_000_000,
    7_200_000_000,
    10_800_000_000,
    21_600_000_000,
    43_200_000_000,
    86_400_000_000,
];

/// Label times on `from_us..=to_us`: multiples of a round step in local
/// time (`offset_min` minutes from UTC), at most `max` of them (at least
/// one label's room is assumed).
pub fn time_ticks(from_us: i64, to_us: i64, offset_min: i32, max: usize) -> Vec<i64> {
    let span = (to_us - from_us).max(1);
    let max = max.max(1) as i64;
    let step = TIME_STEPS_US
        .into_iter()
        .find(|s| span / s < max)
        .unwrap_or(TIME_STEPS_US[TIME_STEPS_US.len() - 1]);
    let off = i64::from(offset_min) * 60_000_000;
    let first = (from_us + off).div_euclid(step) * step - off;
    let first = if first < from_us { first + step } else { first };
    (0..)
        .map(|i| first + i * step)
        .take_while(|&t| t <= to_us)
        .collect()
}

/// Round y values on `lo..=hi` (1, 2 or 5 × 10ⁿ apart), at most `max`.
pub fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let max = max.max(2) as f64;
    let p = 10f64.powf((span / max).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0, 20.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| span / s <= max - 1.0 + 1e-9)
        .unwrap_or(50.0 * p);
    let first = (lo / step - 1e-9).ceil() as i64;
    (0..)
        .map(|i| (first + i) as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// Whole decades on a log axis from `lo` to `hi` (log10 values).
pub fn decade_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    (a..=b).map(|d| d as f64).collect()
}

/// The clock label of a tick: `HH:MM:SS.m` below 10 s of span, `HH:MM`
/// from 10 minutes, else `HH:MM:SS`, from a `HH:MM:SS.mmm` clock.
pub fn time_label(clock: &str, span_s: f64) -> &str {
    let n = if span_s < 10.0 {
        10
    } else if span_s >= 600.0 {
        5
    } else {
        8
    };
    clock.get(..n).unwrap_or(clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_000_000_000_000; // 02:13:20 UTC

    #[test]
    fn time_ticks_are_round_local_times_within_the_window() {
        // One minute: 10 s apart, 6 labels, on round seconds.
        let t = time_ticks(T0 - 60_000_000, T0, 0, 7);
        assert_eq!(t.len(), 7, "{t:?}");
        assert!(t.iter().all(|x| x % 10_000_000 == 0));
        assert_eq!(*t.last().unwrap(), T0);
        // Fewer labels fit: a wider step.
        let t = time_ticks(T0 - 60_000_000, T0, 0, 3);
        assert!(t.len() <= 3 && t.len() >= 2, "{t:?}");
        assert!(t.iter().all(|x| x % 30_000_000 == 0));
        // An hour in a zone 30 min off UTC: on local quarter hours.
        let t = time_ticks(T0 - 3_600_000_000, T0, 330, 6);
        let local = |x: i64| (x + 330 * 60_000_000).rem_euclid(900_000_000);
        assert!(!t.is_empty() && t.iter().all(|&x| local(x) == 0), "{t:?}");
        assert!(t.iter().all(|x| (T0 - 3_600_000_000..=T0).contains(x)));
        // Sub-second windows.
        let t = time_ticks(T0 - 1_000_000, T0, 0, 6);
        assert!(t.len() >= 3, "{t:?}");
    }

    #[test]
    fn linear_ticks_are_round_and_bounded() {
        assert_eq!(
            linear_ticks(0.0, 5.0, 6),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(
            linear_ticks(0.0, 10.0, 6),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = linear_ticks(0.0, 0.5, 6);
        assert_eq!(t.len(), 6, "{t:?}");
        let t = linear_ticks(-3.4, 1.2, 3);
        assert!(t.len() <= 3 && t.contains(&0.0), "{t:?}");
        assert_eq!(linear_ticks(1.0, 1.0, 5), vec![1.0]);
        assert_eq!(decade_ticks(-1.0, 3.0), vec![-1.0, 0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn time_labels_by_span() {
        let c = "14:02:07.391";
        assert_eq!(time_label(c, 5.0), "14:02:07.3");
        assert_eq!(time_label(c, 60.0), "14:02:07");
        assert_eq!(time_label(c, 3600.0), "14:02");
    }
}
