//! The sample store's unit tests (native).

use super::*;

#[test]
fn nearest_probe_to_a_time() {
    let mut s = Store::new(1000);
    assert_eq!(s.nearest(5), None);
    for q in 0..3u64 {
        s.push_sample(&Sample {
            seq: q,
            sent_us: q as i64 * 10_000,
            rtt_us: (q != 1).then_some(250),
        });
    }
    assert_eq!(s.nearest(-50).map(|p| p.seq), Some(0));
    assert_eq!(s.nearest(4_999).map(|p| p.seq), Some(0));
    assert_eq!(s.nearest(6_000).map(|p| p.seq), Some(1));
    assert_eq!(s.nearest(99_000).map(|p| p.seq), Some(2));
    assert_eq!(s.nearest(10_000).and_then(|p| p.rtt_us()), None);
}

const T0: i64 = 1_763_000_000_000_000;

fn s(seq: u64, rtt: Option<u32>) -> Sample {
    Sample {
        seq,
        sent_us: T0 + seq as i64 * 10_000,
        rtt_us: rtt,
    }
}

fn seqs(st: &Store) -> Vec<u64> {
    st.window(i64::MIN, i64::MAX).map(|p| p.seq).collect()
}

#[test]
fn capacity_is_an_hour_clamped() {
    assert_eq!(capacity_for(10.0, 3600.0), 360_000);
    assert_eq!(capacity_for(1.0, 3600.0), MAX_CAPACITY);
    assert_eq!(capacity_for(10.0, 7200.0), 720_000);
    assert_eq!(capacity_for(10.0, 600.0), 60_000);
    assert_eq!(capacity_for(100.0, 3600.0), 36_000);
    assert_eq!(capacity_for(10_000.0, 3600.0), MIN_CAPACITY);
    assert_eq!(capacity_for(0.0, 3600.0), DEFAULT_CAPACITY);
    assert_eq!(capacity_for(f64::NAN, 3600.0), DEFAULT_CAPACITY);
    assert_eq!(capacity_for(-3.0, 3600.0), DEFAULT_CAPACITY);
    assert_eq!(capacity_for(10.0, f64::NAN), 360_000);
}

#[test]
fn late_lost_samples_are_inserted_in_seq_order() {
    let mut st = Store::default();
    for q in [0, 1, 3, 4] {
        st.push_sample(&s(q, Some(100)));
    }
    // Probe 2 timed out and is reported after 3 and 4 were answered.
    st.push_sample(&s(2, None));
    assert_eq!(seqs(&st), vec![0, 1, 2, 3, 4]);
    assert_eq!(st.totals().samples, 5);
    assert_eq!(st.totals().lost, 1);
}

#[test]
fn duplicates_are_counted_and_ignored() {
    let mut st = Store::default();
    assert!(st.push_sample(&s(0, Some(1))));
    assert!(st.push_sample(&s(1, Some(1))));
    assert!(!st.push_sample(&s(0, None)));
    assert!(!st.push_sample(&s(1, Some(5))));
    assert_eq!(st.totals().samples, 2);
    assert_eq!(st.totals().lost, 0);
    assert_eq!(st.totals().duplicates, 2);
}

#[test]
fn ring_is_bounded_and_drops_the_oldest() {
    let mut st = Store::new(100);
    for q in 0..1000 {
        st.push_sample(&s(q, Some(1)));
    }
    assert_eq!(st.len(), 100);
    assert_eq!(seqs(&st).first(), Some(&900));
    let mut big = Store::new(5000);
    for q in 0..20_000 {
        big.push_sample(&s(q, Some(1)));
    }
    assert!(
        big.points.capacity() < 5000 + 1024,
        "{}",
        big.points.capacity()
    );
    assert_eq!(st.totals().samples, 1000);
    st.set_capacity(10);
    assert_eq!(seqs(&st), (990..1000).collect::<Vec<_>>());
    st.clear();
    assert!(st.is_empty());
    assert_eq!(st.totals(), Totals::default());
    assert_eq!(st.capacity(), 10);
}

#[test]
fn late_reply_marks_its_probe() {
    let mut st = Store::default();
    for q in 0..10 {
        st.push_sample(&s(q, (q != 5).then_some(100)));
    }
    st.push_late(&Late {
        seq: 5,
        rtt_us: 468_000,
    });
    // A late reply for a probe already dropped is still counted.
    st.push_late(&Late { seq: 99, rtt_us: 1 });
    let p: Vec<_> = st.window(i64::MIN, i64::MAX).copied().collect();
    assert_eq!(p[5].late_us(), Some(468_000));
    assert_eq!(p[5].rtt_us(), None);
    assert_eq!(p[4].late_us(), None);
    assert_eq!(st.totals().late, 2);
}

#[test]
fn window_is_inclusive_by_send_time() {
    let mut st = Store::default();
    for q in 0..100 {
        st.push_sample(&s(q, Some(1)));
    }
    let w: Vec<u64> = st
        .window(T0 + 100_000, T0 + 200_000)
        .map(|p| p.seq)
        .collect();
    assert_eq!(w, (10..=20).collect::<Vec<_>>());
    assert_eq!(st.window(T0 + 5_000_000, T0 + 6_000_000).count(), 0);
    assert_eq!(st.window(T0 + 200_000, T0 + 100_000).count(), 0);
    assert_eq!(st.newest_us(), Some(T0 + 990_000));
    assert_eq!(st.newest_seq(), Some(99));
}

#[test]
fn decimation_keeps_min_and_max_per_column_in_order() {
    let mut st = Store::default();
    // 10 samples in one column: the max comes before the min.
    let rtts = [5, 9, 7, 1, 3, 5, 5, 5, 5, 5];
    for (q, r) in rtts.iter().enumerate() {
        st.push_sample(&s(q as u64, Some(*r)));
    }
    let f = st.decimate(T0, T0 + 100_000, 1);
    assert_eq!(f.points, 10);
    assert_eq!(f.lines.len(), 1);
    let ys: Vec<u32> = f.lines[0].iter().map(|v| v.1).collect();
    assert_eq!(ys, vec![9, 1]);
    assert_eq!(f.max_rtt_us, 9);
    assert_eq!(f.min_rtt_us, Some(1));
    assert_eq!(st.window_stats(T0, T0 + 100_000), (Some(5), 0));
}

#[test]
fn decimation_bounds_vertices_by_columns() {
    let mut st = Store::default();
    for q in 0..3000 {
        st.push_sample(&s(q, Some(100 + (q % 7) as u32)));
    }
    let f = st.decimate(T0, T0 + 30_000_000, 200);
    assert_eq!(f.points, 3000);
    assert_eq!(f.lines.len(), 1);
    assert!(f.vertices() <= 400, "{} vertices", f.vertices());
    assert!(f.vertices() >= 200);
}

#[test]
fn an_hour_at_100_hz_decimates_to_two_vertices_per_column() {
    let mut st = Store::default();
    for q in 0..360_000u64 {
        let lost = q % 10_000 < 5;
        st.push_sample(&s(q, (!lost).then_some(200 + (q % 13) as u32 * 10)));
    }
    assert_eq!(st.len(), DEFAULT_CAPACITY);
    let f = st.decimate(T0, T0 + 3_600_000_000, 1200);
    assert_eq!(f.points, 360_000);
    assert_eq!(f.lost, 36 * 5);
    assert!(f.vertices() <= 2 * 1200 + 2 * 36, "{}", f.vertices());
    assert_eq!(f.lost_cols.len(), 36);
    assert_eq!((f.min_rtt_us, f.max_rtt_us), (Some(200), 320));
    // Every column's extremes survive: the peak is on the line.
    assert!(f.lines.iter().flatten().any(|v| v.1 == 320));
    assert!(f.lines.iter().flatten().any(|v| v.1 == 200));
}

#[test]
fn lost_probes_break_the_line_and_become_ticks() {
    let mut st = Store::default();
    for q in 0..100 {
        let lost = (40..47).contains(&q);
        st.push_sample(&s(q, (!lost).then_some(100)));
    }
    st.push_late(&Late {
        seq: 40,
        rtt_us: 468_000,
    });
    let f = st.decimate(T0, T0 + 1_000_000, 100);
    assert_eq!(f.lines.len(), 2);
    assert_eq!(f.lost, 7);
    assert_eq!(f.answered, 93);
    assert_eq!(f.lost_cols, (40..47).collect::<Vec<_>>());
    assert_eq!(f.lost_ticks.len(), 7);
    assert_eq!(f.late, vec![(T0 + 400_000, 468_000)]);
    // The line stops before the burst and starts again after it.
    assert!(f.lines[0].iter().all(|v| v.0 < T0 + 400_000));
    assert!(f.lines[1].iter().all(|v| v.0 > T0 + 460_000));
}

#[test]
fn holes_in_seq_break_the_line_without_lost_ticks() {
    let mut st = Store::default();
    for q in (0..10).chain(20..30) {
        st.push_sample(&s(q, Some(100)));
    }
    let f = st.decimate(T0, T0 + 300_000, 30);
    assert_eq!(f.lines.len(), 2);
    assert!(f.lost_cols.is_empty());
}

#[test]
fn empty_window_is_an_empty_frame() {
    let st = Store::default();
    let f = st.decimate(T0, T0 + 1, 0);
    assert_eq!(f.points, 0);
    assert_eq!(f.vertices(), 0);
    assert_eq!(f.min_rtt_us, None);
    assert_eq!(st.window_stats(T0, T0 + 1), (None, 0));
}

#[test]
fn median_is_the_lower_middle() {
    assert_eq!(median(&mut []), None);
    assert_eq!(median(&mut [3]), Some(3));
    assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
    assert_eq!(median(&mut [5, 1, 3]), Some(3));
}
