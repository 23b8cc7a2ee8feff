//! Marks on the time axis: layer-2 announce bursts (one tick and one label
//! per burst, not a line per frame: a migration announces ~10 times over
//! the post-resume sawtooth) and the clock track drawn as steps.

use super::paint::{Anchor, Plot};
use super::Palette;
use crate::signals::{announce_groups, Marker};

/// One burst of announces, drawn as one mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// First frame, unix µs.
    pub first_us: i64,
    /// Last frame, unix µs.
    pub last_us: i64,
    /// `RARP ×10`, `RARP ×5 + GARP ×5`, `GARP ×3`.
    pub label: String,
}

/// The bursts among `markers` (time-ordered): frames within the larger of
/// 2 s and 1 % of the window `span_us` of each other are one burst, so
/// their marks never overlap at any zoom.
pub fn bursts(markers: &[Marker], span_us: i64) -> Vec<Burst> {
    let gap_us = (span_us / 100).max(2_000_000);
    announce_groups(markers, gap_us)
        .into_iter()
        .map(|g| {
            let mut label = String::new();
            for (n, k) in [(g.rarp, "RARP ×"), (g.garp, "GARP ×")] {
                if n > 0 {
                    if !label.is_empty() {
                        label.push_str(" + ");
                    }
                    label.push_str(k);
                    label.push_str(&n.to_string());
                }
            }
            Burst {
                first_us: g.first_us,
                last_us: g.last_us,
                label,
            }
        })
        .collect()
}

/// The clock track as steps: a reading holds until the next one, so a
/// stop shows as the jump it is, not as a slope across the outage.
pub fn step_points(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push((t, points[i - 1].1));
        }
        out.push((t, v));
    }
    out
}

/// Draws the announce bursts of a window ending at `to_us`: a short tick
/// at the top edge at the burst's first frame, a bar along the edge over
/// its length and, with `labels`, its label beside the tick.
pub(super) fn draw_bursts(p: &Plot, bs: &[Burst], to_us: i64, pal: &Palette, labels: bool) {
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    let tick = p.px(10.0);
    p.verticals_px(
        bs.iter().map(|b| (x(b.first_us), p.top, p.top + tick)),
        pal.announce,
        2.0,
    );
    for b in bs {
        let (xa, xb) = (p.sx(x(b.first_us)), p.sx(x(b.last_us)));
        p.fill_px(
            (xa, p.top),
            (xb.max(xa + p.px(2.0)), p.top + p.px(3.0)),
            pal.announce,
            1.0,
        );
    }
    if !labels {
        return;
    }
    let mid = (p.left + p.right) / 2.0;
    for b in bs {
        let xa = p.sx(x(b.first_us));
        // Labels point into the plot, away from the nearer edge.
        let (at, anchor) = if xa > mid {
            (xa - p.px(4.0), Anchor::RightTop)
        } else {
            (xa + p.px(4.0), Anchor::LeftTop)
        };
        p.text(
            &b.label,
            (at, p.top + p.px(2.0)),
            anchor,
            pal.announce,
            12.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::wire::AnnounceKind;

    fn m(at_us: i64, kind: AnnounceKind) -> Marker {
        Marker { at_us, kind }
    }

    #[test]
    fn a_migrations_announces_are_one_burst_with_one_label() {
        // QEMU announces 5 RARPs 50, 150, 250, 350 ms apart; two
        // interfaces give 10.
        let mut ms: Vec<Marker> = [0, 50, 200, 450, 800]
            .iter()
            .flat_map(|&d| {
                let t = 1_000_000_000 + d * 1000;
                [m(t, AnnounceKind::Rarp), m(t + 10, AnnounceKind::Rarp)]
            })
            .collect();
        let b = bursts(&ms, 60_000_000);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].label, "RARP ×10");
        assert_eq!(b[0].first_us, 1_000_000_000);
        assert_eq!(b[0].last_us, 1_000_800_010);
        // A later burst of gratuitous ARPs is its own mark.
        ms.push(m(1_030_000_000, AnnounceKind::Garp));
        ms.push(m(1_030_100_000, AnnounceKind::Rarp));
        let b = bursts(&ms, 60_000_000);
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].label, "RARP ×1 + GARP ×1");
        // In a day-wide window the two are within 1 % of it: one mark.
        let b = bursts(&ms, 86_400_000_000);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].label, "RARP ×11 + GARP ×1");
        assert!(bursts(&[], 1).is_empty());
    }

    #[test]
    fn the_clock_track_holds_each_reading_until_the_next() {
        let p = [(0, 0.0), (10, 0.1), (50, -370.0), (60, -370.2)];
        assert_eq!(
            step_points(&p),
            vec![
                (0, 0.0),
                (10, 0.0),
                (10, 0.1),
                // The stop: flat at the last offset until the first
                // reading after it, then straight down.
                (50, 0.1),
                (50, -370.0),
                (60, -370.0),
                (60, -370.2),
            ]
        );
        assert!(step_points(&[]).is_empty());
        assert_eq!(step_points(&[(5, 1.0)]), vec![(5, 1.0)]);
    }
}
