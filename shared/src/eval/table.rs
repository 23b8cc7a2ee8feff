//! The summary over many traces and its Markdown tables.

use super::*;

/// Length of [start, end] not covered by any window.
pub(super) fn baseline_time(start: i64, end: i64, windows: &[(i64, i64, &Truth)]) -> i64 {
    let mut w: Vec<(i64, i64)> = windows
        .iter()
        .map(|(a, b, _)| ((*a).max(start), (*b).min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    w.sort_unstable();
    let mut covered = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in w {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((ca, cb)) = cur {
        covered += cb - ca;
    }
    (end - start - covered).max(0)
}

/// Totals over many traces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Every trace's score.
    pub traces: Vec<TraceScore>,
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn fmt_ms(us: Option<i64>) -> String {
    us.map_or("–".into(), |v| format!("{:.1} ms", v as f64 / 1000.0))
}

impl Summary {
    /// Adds one trace's score.
    pub fn add(&mut self, s: TraceScore) {
        self.traces.push(s);
    }

    fn migrations(&self) -> impl Iterator<Item = &MigrationScore> {
        self.traces.iter().flat_map(|t| t.migrations.iter())
    }

    /// Whether every bar of issue 4 is met.
    pub fn meets_bar(&self) -> bool {
        let b = self.bars();
        b.recall.0 == b.recall.1
            && b.false_reds == 0
            && b.yellow_ok.0 == b.yellow_ok.1
            && b.red_ok.0 == b.red_ok.1
            && b.err_ok.0 == b.err_ok.1
    }

    fn bars(&self) -> Bars {
        let mut b = Bars::default();
        for m in self.migrations() {
            let iv = i64::from(m.interval_us);
            if m.downtime_us >= 2 * iv {
                b.recall.1 += 1;
                if m.level == Light::Red {
                    b.recall.0 += 1;
                }
            }
            b.yellow_ok.1 += 1;
            if m.yellow_latency_us.is_some_and(|l| l <= 2 * iv + 50_000) {
                b.yellow_ok.0 += 1;
            }
            if m.level == Light::Red {
                b.red_ok.1 += 1;
                if m.red_latency_us.is_some_and(|l| l <= 50_000) {
                    b.red_ok.0 += 1;
                }
            }
            if let Some(e) = m.downtime_err_us {
                b.err_ok.1 += 1;
                if e <= iv + 5_000 {
                    b.err_ok.0 += 1;
                }
            }
        }
        b.false_reds = self.traces.iter().map(|t| t.false_reds).sum();
        b
    }

    /// The results as Markdown tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let b = self.bars();
        let hours = self.traces.iter().map(|t| t.baseline_us).sum::<i64>() as f64 / 3.6e9;
        let per_h = |n: u32| {
            if hours > 0.0 {
                format!("{:.2} ({n} in {hours:.2} h)", f64::from(n) / hours)
            } else {
                format!("{n} (no baseline time)")
            }
        };
        let sum = |f: fn(&TraceScore) -> u32| self.traces.iter().map(f).sum::<u32>();
        let decoy_reds = self
            .traces
            .iter()
            .flat_map(|t| t.decoys.iter())
            .filter(|d| d.level == Light::Red)
            .count();
        let pct = |(a, n): (u32, u32)| {
            if n == 0 {
                "–".to_string()
            } else {
                format!("{a}/{n} ({:.0} %)", 100.0 * f64::from(a) / f64::from(n))
            }
        };
        let mut yl: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.yellow_latency_us)
            .collect();
        let mut rl: Vec<i64> = self.migrations().filter_map(|m| m.red_latency_us).collect();
        let mut rm: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.red_from_miss_us)
            .collect();
        let mut de: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.downtime_err_us)
            .collect();
        let n_mig = self.migrations().count() as u32;
        let any_yellow = self
            .migrations()
            .filter(|m| m.level >= Light::Yellow)
            .count() as u32;
        let _ = writeln!(
            s,
            "{} traces, {n_mig} migrations, {:.2} h of baseline\n",
            self.traces.len(),
            hours
        );
        let _ = writeln!(s, "| metric | measured | bar |\n|---|---|---|");
        let _ = writeln!(
            s,
            "| recall, red, downtime ≥ 2 intervals | {} | 100 % |",
            pct(b.recall)
        );
        let _ = writeln!(
            s,
            "| recall, at least yellow, all migrations | {} | |",
            pct((any_yellow, n_mig))
        );
        let _ = writeln!(
            s,
            "| false reds (decoy windows + baseline) | {} ({decoy_reds} decoy windows red) | 0 |",
            b.false_reds
        );
        let pr = sum(|t| t.pause_reds_no_channel);
        if pr > 0 {
            let _ = writeln!(
                s,
                "| pauses red with no announce channel (\"migrated or paused\", by design) | {pr} | |"
            );
        }
        let _ = writeln!(
            s,
            "| false reds per hour of baseline | {} | 0 |",
            per_h(sum(|t| t.false_reds_baseline))
        );
        let _ = writeln!(
            s,
            "| false yellows per hour of baseline | {} | |",
            per_h(sum(|t| t.false_yellows))
        );
        let _ = writeln!(
            s,
            "| transient yellows (silence that ended without loss) per hour of baseline | {} | |",
            per_h(sum(|t| t.transient_yellows))
        );
        let max = |v: &[i64]| v.iter().max().copied();
        let _ = writeln!(
            s,
            "| first missed reply → yellow, median / max | {} / {} | ≤ 2 intervals + 50 ms: {} |",
            fmt_ms(median(&mut yl)),
            fmt_ms(max(&yl)),
            pct(b.yellow_ok)
        );
        let _ = writeln!(
            s,
            "| first reply after the gap → red, median / max | {} / {} | ≤ 50 ms: {} |",
            fmt_ms(median(&mut rl)),
            fmt_ms(max(&rl)),
            pct(b.red_ok)
        );
        let _ = writeln!(
            s,
            "| first missed reply → red, median / max | {} / {} | |",
            fmt_ms(median(&mut rm)),
            fmt_ms(max(&rm))
        );
        let _ = writeln!(
            s,
            "| downtime error, median / max | {} / {} | ≤ 1 interval + 5 ms: {} |",
            fmt_ms(median(&mut de)),
            fmt_ms(max(&de)),
            pct(b.err_ok)
        );

        // Per-kind outcome of the decoys.
        let mut kinds: Vec<TruthKind> = self
            .traces
            .iter()
            .flat_map(|t| t.decoys.iter().map(|d| d.kind))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let _ = writeln!(
            s,
            "\n| decoy | windows | green | yellow | red |\n|---|---|---|---|---|"
        );
        for k in kinds {
            let levels: Vec<Light> = self
                .traces
                .iter()
                .flat_map(|t| t.decoys.iter())
                .filter(|d| d.kind == k)
                .map(|d| d.level)
                .collect();
            let c = |l: Light| levels.iter().filter(|x| **x == l).count();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                k.name(),
                levels.len(),
                c(Light::Green),
                c(Light::Yellow),
                c(Light::Red)
            );
        }

        self.verdict_table(&mut s);

        // Migrations by downtime.
        let _ = writeln!(
            s,
            "\n| downtime | interval | held reply | loaded | level | → yellow | → red (after gap) | downtime error |\n|---|---|---|---|---|---|---|---|"
        );
        let mut ms: Vec<&MigrationScore> = self.migrations().collect();
        ms.sort_by_key(|m| (m.interval_us, m.downtime_us));
        for m in ms {
            let _ = writeln!(
                s,
                "| {:.0} ms | {} ms | {} | {} | {} | {} | {} | {} |",
                m.downtime_us as f64 / 1000.0,
                f64::from(m.interval_us) / 1000.0,
                if m.held { "yes" } else { "no" },
                if m.loaded { "yes" } else { "no" },
                m.level.name(),
                fmt_ms(m.yellow_latency_us),
                fmt_ms(m.red_latency_us),
                fmt_ms(m.downtime_err_us)
            );
        }
        s
    }
}

impl Summary {
    /// What each kind of labelled event was called: the verdict of the
    /// strongest event detected in its window.
    fn verdict_table(&self, s: &mut String) {
        let all = [
            EventVerdict::Migrated,
            EventVerdict::Paused,
            EventVerdict::PathOutage,
            EventVerdict::Undecided,
        ];
        let mut rows: Vec<(&str, Vec<Option<EventVerdict>>)> =
            vec![("migration", self.migrations().map(|m| m.verdict).collect())];
        for k in [
            TruthKind::Pause,
            TruthKind::LinkOutage,
            TruthKind::LoadedCut,
            TruthKind::VmPause,
        ] {
            let v: Vec<Option<EventVerdict>> = self
                .traces
                .iter()
                .flat_map(|t| t.decoys.iter())
                .filter(|d| d.kind == k)
                .map(|d| d.verdict)
                .collect();
            if !v.is_empty() {
                rows.push((k.name(), v));
            }
        }
        let _ = writeln!(
            s,
            "\n| event | n | migrated | paused | path_outage | undecided | no event |\n|---|---|---|---|---|---|---|"
        );
        for (name, v) in rows {
            let c = |x: Option<EventVerdict>| v.iter().filter(|y| **y == x).count();
            let _ = write!(s, "| {name} | {} |", v.len());
            for x in all {
                let _ = write!(s, " {} |", c(Some(x)));
            }
            let _ = writeln!(s, " {} |", c(None));
        }
        // Pauses: the stop's length from the event.
        let mut pe: Vec<i64> = self
            .traces
            .iter()
            .flat_map(|t| t.decoys.iter())
            .filter(|d| d.kind == TruthKind::Pause)
            .filter_map(|d| d.downtime_err_us)
            .collect();
        if !pe.is_empty() {
            let _ = writeln!(
                s,
                "\npause length error, median / max: {} / {} ({} pauses with an event)",
                fmt_ms(median(&mut pe)),
                fmt_ms(pe.iter().max().copied()),
                pe.len()
            );
        }
        // Misses: every migration of ≥ 2 intervals that was not red.
        let misses: Vec<&MigrationScore> = self
            .migrations()
            .filter(|m| m.downtime_us >= 2 * i64::from(m.interval_us) && m.level != Light::Red)
            .collect();
        if !misses.is_empty() {
            let _ = writeln!(s, "\nmissed (not red), downtime ≥ 2 intervals:");
            for m in misses {
                let _ = writeln!(
                    s,
                    "- {:.1} ms at {} ms, phase {}, held {}, loaded {}: {} ({})",
                    m.downtime_us as f64 / 1000.0,
                    f64::from(m.interval_us) / 1000.0,
                    m.phase.map_or("–".into(), |p| format!("{p:.2}")),
                    m.held,
                    m.loaded,
                    m.level.name(),
                    m.verdict.map_or("no event", |v| v.name())
                );
            }
        }
    }
}

#[derive(Debug, Default)]
struct Bars {
    recall: (u32, u32),
    yellow_ok: (u32, u32),
    red_ok: (u32, u32),
    err_ok: (u32, u32),
    false_reds: u32,
}
