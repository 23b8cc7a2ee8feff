//! Outages: recognising one when a loss burst ends, gathering its
//! evidence, judging it and publishing it as a migration event.

use super::episode::{Episode, Post, Slot, SlotState};
use super::*;

/// The first elevated replies after an outage while they fall as one
/// released queue: each arrives within `gap` µs of the one before, with a
/// lower RTT (a guest answering its backlog at once after resume).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ramp {
    /// Replies in the ramp.
    pub(super) n: u32,
    /// RTT of its first reply, its highest (µs).
    pub(super) peak: u32,
    /// Send time of its last reply.
    pub(super) last_sent: i64,
    last_arrival: i64,
    last_rtt: u32,
    /// A reply broke the ramp: later ones are no part of it.
    closed: bool,
}

impl Ramp {
    /// Adds the next elevated reply of the post-outage shape.
    pub(super) fn push(&mut self, sent: i64, rtt: u32, arrival: i64, gap: u32) {
        if self.closed {
            return;
        }
        if self.n > 0
            && (rtt >= self.last_rtt || arrival.abs_diff(self.last_arrival) > u64::from(gap))
        {
            self.closed = true;
            return;
        }
        if self.n == 0 {
            self.peak = rtt;
        }
        self.n += 1;
        self.last_sent = sent;
        self.last_arrival = arrival;
        self.last_rtt = rtt;
    }
}

impl Detector {
    // ---- outages ------------------------------------------------------------

    /// Probes `a..=b` went unanswered and `q = b + 1`, sent at `s_next`,
    /// was answered at `t_end`.
    pub(super) fn gap_ended(&mut self, a: u64, b: u64, q: u64, s_next: i64, t_end: i64) {
        let cfg = self.cfg;
        let n = b - a + 1;
        if let Some(ep) = self.episode.as_mut() {
            let p = &mut ep.post;
            let window = ms(cfg.sawtooth_window_ms);
            if a > ep.b
                && !p.done
                && !p.expired
                && n < cfg.min_burst
                && s_next.saturating_sub(ep.s_next) <= window
            {
                // A stray loss inside the post-resume shape, not a new outage.
                p.lost += n;
                return;
            }
        }
        self.finalise(false);

        let iv = i64::from(self.iv().max(1));
        let back = |k: u64| i64::try_from(k).unwrap_or(i64::MAX).saturating_mul(iv);
        let s_a = self
            .slot(a)
            .map_or(s_next.saturating_sub(back(q - a)), |s| s.sent_us);
        let s_b = self
            .slot(b)
            .map_or(s_next.saturating_sub(iv), |s| s.sent_us);
        let dur = s_next.saturating_sub(s_a);
        let long = (dur > ms(cfg.max_downtime_ms)).then_some(dur);
        // A held reply comes back at resume: late in the outage (extra
        // losses after resume can make up its last ~10 ms).
        let mid = s_a.saturating_add(dur / 4);
        let tol = ms(cfg.held_tol_ms);
        let (held_lo, held_hi) = (mid.max(s_b.saturating_sub(tol)), s_next.saturating_add(tol));
        let base = if self.base.ready { self.base.median } else { 0 };
        // Replies released at the outage's end (held or a paused guest's
        // queue) were the last to arrive; the level before the outage and
        // its congestion are judged without them.
        let released = self.released_before(a, held_lo, held_hi, base);
        let (mut pre_level, pre_p75) = self.recent.median_p75_before(released);
        let floor = if self.base.ready { self.base.floor } else { 0 };
        let load_base = if floor > 0 && pre_level as f32 >= cfg.load_ratio * floor as f32 {
            floor
        } else {
            0
        };
        if load_base > 0 {
            // A host stall just before the stop raises the level before
            // it: its replies came back at once, each an interval faster.
            // The load's level is the one before the stall.
            let skip = self.stall_before(a);
            if let Some(l) = self.recent.level_before(skip).filter(|_| skip > released) {
                pre_level = pre_level.min(l);
            }
        }
        let window = (ms(cfg.congestion_window_ms) / iv).clamp(16, 256) as usize;
        let congestion = (self.high.fraction_before(window, released) >= cfg.congestion_frac)
            .then_some(Congestion {
                rtt_us: pre_p75,
                baseline_us: base,
            });
        let mut ep = Episode {
            id: self.next_id,
            a,
            b,
            probes: n,
            s_a,
            s_next,
            t_end,
            iv: self.iv(),
            // Post-resume replies are judged against the level just before
            // the outage, not the MAD-scaled threshold, which a noisy
            // pre-copy on a loaded host inflates.
            elev: base.max(pre_level).saturating_add(cfg.elev_floor_us),
            pre_level,
            load_base,
            congestion,
            long,
            held_lo,
            held_hi,
            held_count: 0,
            held: None,
            held_arrival: 0,
            held_max: 0,
            held_allow: cfg
                .max_held
                .saturating_add((ms(cfg.held_span_ms) / iv).clamp(0, 1024) as u32),
            resolved: self.lost_above,
            unlost: 0,
            post: Post::default(),
            stop_from: s_a,
            clock_step: None,
            announce: None,
            steady_n: 0,
            steady_change: 0,
            clock_live: self.clock.last_any_us >= s_a.saturating_sub(ms(cfg.clock_live_ms)),
            waited: false,
            decided: false,
            dirty: true,
            published: false,
            level: Light::Green,
        };
        self.next_id += 1;
        // Replies to the probes just before the burst that came back only
        // after it: held across the stop (one) or a released queue (many).
        // Past `held_allow`, the scan only finds where the stop began: a
        // VM paused in place answers every queued request at resume, so
        // its clock steps back by more than the loss at the pause's end.
        let reach = (ms(cfg.max_downtime_ms) / iv).clamp(1, self.window() as i64 / 2) as u64;
        for j in 1..=reach.max(u64::from(ep.held_allow) + 1) {
            let Some(seq) = a.checked_sub(j) else { break };
            // Late replies count too: a queue longer than the timeout comes
            // back partly as `late`, partly as slow samples.
            let Some(s) = self
                .slot(seq)
                .filter(|s| matches!(s.state, SlotState::Answered | SlotState::LostLate))
            else {
                break;
            };
            let (rtt, arrival) = (s.rtt_us, s.arrival());
            if !ep.held_ok(arrival, rtt, &cfg) {
                break;
            }
            ep.stop_from = ep.stop_from.min(s.sent_us);
            if j <= u64::from(ep.held_allow) + 1 {
                ep.add_held(seq, rtt, 1, arrival);
            }
        }
        // Late replies that came in while the outage was still going on.
        let acc = self.held_acc;
        if acc.count > 0
            && (a..=b).contains(&acc.seq)
            && ep.held_ok(acc.arrival_us, acc.rtt_us, &cfg)
        {
            ep.add_held(acc.seq, acc.rtt_us, acc.count, acc.arrival_us);
        }
        // Signals that came before the first reply after the outage (the
        // hypervisor's RARP goes out at resume).
        if let Some(st) = self.clock.last_step {
            if self.step_owned != Some(st.first_after_us) && ep.attach_step(&st, &cfg) {
                self.step_owned = Some(st.first_after_us);
            }
        }
        self.absorb_earlier(&ep);
        if let Some(b) = self.announces.burst {
            if self.burst_owned != Some(b.first_us) && ep.attach_burst(&b, &cfg) {
                self.burst_owned = Some(b.first_us);
            }
        }
        self.episode = Some(ep);
    }

    /// One stop, one event: a pause whose first requests outlived the
    /// sidecar's timeout loses them (an earlier loss burst, already
    /// recorded) and may lose its last ones too. Once the guest clock's
    /// step ties this outage to a stop that began before that earlier
    /// event, the earlier one is withdrawn.
    pub(super) fn absorb_earlier(&mut self, ep: &Episode) {
        if ep.clock_step.is_none() || ep.stop_from >= ep.s_a {
            return;
        }
        let earlier = self.migrations.iter().rev().find(|m| {
            m.id != ep.id
                && m.start_us >= ep.stop_from
                && m.end_us <= ep.s_a
                && m.level != Light::Red
        });
        if let Some(id) = earlier.map(|m| m.id) {
            self.retract(id);
        }
    }

    /// How many answered probes just before `a` go back to the start of
    /// the last host stall among the 32 replies before it (0: none). A
    /// stall is two replies or more released at once (`align_us`), the
    /// first slower than `load_stall_us`.
    fn stall_before(&self, a: u64) -> usize {
        let align = u64::from(self.cfg.align_us.min(self.iv() / 2).max(1));
        let (mut found, mut tooth) = (0, None);
        for (j, s) in self.answered_back(a, 80) {
            let arrival = s.arrival();
            if tooth.is_some_and(|t: i64| arrival.abs_diff(t) <= align) {
                if s.rtt_us >= self.cfg.load_stall_us {
                    found = j;
                }
            } else if found > 0 || j > 32 {
                break;
            } else {
                tooth = Some(arrival);
            }
        }
        found
    }

    /// The answered probes just before `a`, newest first, as `(j, slot)`
    /// with `j` how far back (1: `a − 1`), at most `n` of them; the walk
    /// ends at the first probe not answered in time.
    fn answered_back(&self, a: u64, n: usize) -> impl Iterator<Item = (usize, &Slot)> + '_ {
        (1..=n).map_while(move |j| {
            a.checked_sub(j as u64)
                .and_then(|q| self.slot(q))
                .filter(|s| s.state == SlotState::Answered)
                .map(|s| (j, s))
        })
    }

    /// How many answered probes just before `a` were answered only at the
    /// outage's end (arrival in `lo..=hi`, RTT clearly above `base`).
    fn released_before(&self, a: u64, lo: i64, hi: i64, base: u32) -> usize {
        let floor = base
            .saturating_add(self.cfg.elev_floor_us)
            .max(self.cfg.held_min_us);
        self.answered_back(a, self.window() / 2)
            .take_while(|(_, s)| s.rtt_us >= floor && (lo..=hi).contains(&s.arrival()))
            .count()
    }

    /// The smallest sawtooth peak worth the name at this interval: the
    /// first reply after the loss samples the fall up to an interval late.
    fn saw_peak_min(&self, iv: u32) -> u32 {
        let cfg = &self.cfg;
        let decay = f64::from(cfg.sawtooth_decay_ms.max(1)) * 1000.0;
        let f = (1.0 - f64::from(iv) / decay).clamp(0.75, 1.0);
        (f64::from(cfg.sawtooth_min_us) * f) as u32
    }

    pub(super) fn min_saw_probes(&self, iv: u32) -> u32 {
        let fit = ms(self.cfg.sawtooth_min_span_ms) / i64::from(iv.max(1));
        (fit.clamp(1, i64::from(self.cfg.sawtooth_min_probes.max(1)))) as u32
    }

    /// The sawtooth judged on the post-outage shape's first ramp alone
    /// (`DetectorConfig::ramp_gap_us`): a slow guest's release at resume,
    /// whatever short stalls follow it.
    fn ramp_sawtooth(&self, ep: &Episode) -> Option<Sawtooth> {
        let cfg = &self.cfg;
        let (p, r) = (&ep.post, &ep.post.ramp);
        let span = r.last_sent.saturating_sub(ep.s_next);
        (p.done
            && r.n >= self.min_saw_probes(ep.iv)
            // Released at once: only slower than the path's tail.
            && r.peak >= self.saw_peak_min(ep.iv).max(cfg.path_tail_us)
            && r.peak <= cfg.ramp_max_us
            && r.peak >= p.max_rtt
            && span <= ms(cfg.sawtooth_window_ms)
            && r.peak as f32 >= cfg.sawtooth_rise * ep.pre_level as f32)
            .then_some(Sawtooth {
                probes: r.n,
                first_rtt_us: r.peak,
                max_rtt_us: r.peak,
                teeth: 1,
                span_us: span.clamp(0, i64::from(u32::MAX)) as u32,
            })
    }

    /// Whether the replies after the outage came back in at least
    /// `load_teeth` tall releases peaking `load_teeth_rise` × the level
    /// before: a resumed guest warming up, whatever its load after.
    fn bursts_released(&self, ep: &Episode, sawtooth: Option<Sawtooth>) -> bool {
        let cfg = &self.cfg;
        cfg.load_teeth > 0
            && ep.post.tall_teeth >= cfg.load_teeth
            && sawtooth
                .is_some_and(|s| s.max_rtt_us as f32 >= cfg.load_teeth_rise * ep.pre_level as f32)
    }

    pub(super) fn ready(&self, ep: &Episode) -> bool {
        let cfg = &self.cfg;
        let p = &ep.post;
        let held_confirms = ep.held_alone(cfg)
            && ep.held_count <= ep.held_allow
            && ep.probes.saturating_sub(ep.unlost) >= 2;
        ep.clock_step.is_some()
            || ep.announce.is_some()
            || p.done
            || p.expired
            || (p.n_elev > 0 && p.max_rtt > cfg.sawtooth_max_us)
            || ep.held_count > ep.held_allow
            || held_confirms
            || self.now_us >= ep.t_end.saturating_add(ms(cfg.sawtooth_window_ms))
    }

    /// Recomputes an episode's evidence and level and publishes it.
    pub(super) fn evaluate(&mut self, ep: &mut Episode) {
        let cfg = self.cfg;
        let p = ep.post;
        // A sawtooth of two teeth and a full-height peak needs one reply
        // fewer: at 10 ms a 40–60 ms fall can hold only two above the level
        // (above a loaded one, or sampled late on a quiet host). On a
        // loaded host only once its level fell back after the outage (the
        // pre-copy ended). One tooth of two is also a short stall, or one
        // slow reply and the one queued behind it: not enough.
        let relief =
            (ep.load_base == 0 || p.fell) && p.teeth >= 2 && p.max_rtt >= cfg.sawtooth_min_us;
        let sawtooth = (p.done
            && p.n_elev.saturating_add(u32::from(relief)) >= self.min_saw_probes(ep.iv)
            && p.max_rtt >= self.saw_peak_min(ep.iv)
            && p.max_rtt <= cfg.sawtooth_max_us
            && p.last_elev_sent.saturating_sub(ep.s_next) <= ms(cfg.sawtooth_window_ms)
            && p.max_rtt as f32 >= cfg.sawtooth_rise * ep.pre_level as f32
            && p.first_rtt >= p.max_rtt / 2
            // Released all at once: one slow reply and those queued behind
            // it, unless slower than the path's tail.
            && (p.teeth > 1 || p.n_elev < 2 || p.max_rtt >= cfg.path_tail_us))
            .then_some(Sawtooth {
                probes: p.n_elev,
                first_rtt_us: p.first_rtt,
                max_rtt_us: p.max_rtt,
                teeth: p.teeth,
                span_us: p
                    .last_elev_sent
                    .saturating_sub(ep.s_next)
                    .clamp(0, i64::from(u32::MAX)) as u32,
            })
            .or_else(|| self.ramp_sawtooth(ep));
        let flush = if sawtooth.is_none() && p.n_elev > 0 && p.max_rtt > cfg.sawtooth_max_us {
            Some(QueueFlush {
                replies: p.n_elev.saturating_add(ep.held_count),
                max_rtt_us: p.max_rtt.max(ep.held_max),
            })
        } else if ep.held_count > ep.held_allow {
            Some(QueueFlush {
                replies: ep.held_count,
                max_rtt_us: ep.held_max,
            })
        } else {
            None
        };
        // A held reply is evidence only if a stop can have held it (it
        // came back before anything sent after the outage), and on its own
        // only if it is slower than the path's tail.
        let held_ok = ep.held_count <= ep.held_allow
            && if sawtooth.is_some() {
                ep.held_timely(&cfg)
            } else {
                ep.held_alone(&cfg)
            };
        let evidence = Evidence {
            held: ep.held.filter(|_| held_ok),
            held_count: ep.held_count,
            sawtooth,
            flush,
            // A loaded level that did not fall back is the load going on
            // across a cut, not a pre-copy that ended.
            // A loaded level that stayed down after it fell was one or two
            // stalls of a pre-copy before the stop, not a starved host,
            // whose next stall comes within 60–120 ms.
            congestion: ep
                .congestion
                .filter(|_| !(ep.load_base > 0 && p.settled && !p.relapse))
                // Unless the resumed guest released its queue in several
                // tall bursts, which a host stall does not (`load_teeth`).
                .or(
                    (ep.load_base > 0 && !p.fell && !self.bursts_released(ep, sawtooth)).then_some(
                        Congestion {
                            rtt_us: ep.pre_level,
                            baseline_us: ep.load_base,
                        },
                    ),
                ),
            long_outage: ep.long,
            clock_step: ep.clock_step,
            announce: ep.announce,
            clock_steady: (ep.clock_step.is_none()
                && ep.clock_live
                && ep.steady_n >= cfg.clock_confirm.max(1)
                && ep.dur() >= 4 * i64::from(cfg.clock_step_min_us))
            .then_some(ClockSteady {
                change_us: ep.steady_change,
                outage_us: ep.dur(),
            }),
            channels: Channels {
                clock: ep.clock_live,
                announce: self.announce_channel || self.announces.seen,
            },
            waited: ep.waited,
        };
        let probes = ep.probes.saturating_sub(ep.unlost);
        let verdict = evidence.verdict(probes, &cfg);
        let level = evidence.level(probes, &cfg);
        let iv = i64::from(ep.iv.max(1));
        let (downtime, downtime_source) = match (evidence.clock_step, evidence.held) {
            (Some(c), _) => (c.downtime_us(), DowntimeSource::ClockStep),
            (None, Some(h)) => (
                (i64::from(h.rtt_us) - iv / 2).max(iv / 2),
                DowntimeSource::LateReply,
            ),
            (None, None) => (
                i64::try_from(probes).unwrap_or(i64::MAX).saturating_mul(iv),
                DowntimeSource::LossBurst,
            ),
        };
        let m = Migration {
            id: ep.id,
            first_seq: ep.a,
            last_seq: ep.b,
            probes,
            start_us: ep.s_a,
            end_us: ep.s_next,
            downtime_us: downtime,
            downtime_source,
            level,
            verdict,
            evidence,
            decided_us: self.now_us,
            interval_us: ep.iv,
        };
        let prev = ep.level;
        ep.level = level;
        ep.dirty = false;
        self.publish(ep, m, prev);
    }

    pub(super) fn publish(&mut self, ep: &mut Episode, m: Migration, prev: Light) {
        let now = self.now_us;
        if m.level == Light::Green {
            if ep.published {
                self.retract(ep.id);
                ep.published = false;
            }
            return;
        }
        let changed = !ep.published || prev != m.level;
        if ep.published {
            if let Some(slot) = self.migrations.iter_mut().rev().find(|x| x.id == m.id) {
                // Keep when it first got this level.
                let decided = if changed {
                    m.decided_us
                } else {
                    slot.decided_us
                };
                *slot = Migration {
                    decided_us: decided,
                    ..m
                };
            }
        } else {
            if self.migrations.len() >= self.cfg.max_events.max(1) as usize {
                self.migrations.remove(0);
            }
            self.migrations.push(m);
            ep.published = true;
        }
        let hold_red = ms(self.cfg.red_hold_ms);
        let hold_yellow = ms(self.cfg.yellow_hold_ms);
        if changed {
            match m.level {
                Light::Red => {
                    self.red_until = now.saturating_add(hold_red);
                    self.yellow_until = self
                        .yellow_until
                        .max(self.red_until.saturating_add(hold_yellow));
                    self.red_src = Some(m);
                    self.yellow_src = Some(m);
                }
                _ => {
                    if self.red_src.is_some_and(|r| r.id == m.id) {
                        self.red_until = i64::MIN;
                        self.red_src = None;
                    }
                    self.yellow_until = self.yellow_until.max(now.saturating_add(hold_yellow));
                    self.yellow_src = Some(m);
                }
            }
        } else {
            for src in [&mut self.red_src, &mut self.yellow_src] {
                if let Some(s) = src.as_mut().filter(|s| s.id == m.id) {
                    *s = Migration {
                        decided_us: s.decided_us,
                        ..m
                    };
                }
            }
        }
    }

    pub(super) fn retract(&mut self, id: u64) {
        self.migrations.retain(|m| m.id != id);
        if self.red_src.is_some_and(|m| m.id == id) {
            self.red_src = None;
            self.red_until = i64::MIN;
        }
        if self.yellow_src.is_some_and(|m| m.id == id) {
            self.yellow_src = None;
            self.yellow_until = i64::MIN;
        }
    }

    /// Closes the current episode. `by_time`: its resolve time passed, so
    /// an outage none of whose probes was ever reported is a hole in the
    /// data and is withdrawn.
    pub(super) fn finalise(&mut self, by_time: bool) {
        let Some(mut ep) = self.episode.take() else {
            return;
        };
        if !ep.decided || ep.dirty {
            ep.decided = true;
            ep.post.expired = !ep.post.done;
            self.evaluate(&mut ep);
        }
        if by_time && ep.published && ep.probes > 0 && ep.resolved == 0 && ep.held_count == 0 {
            self.retract(ep.id);
        }
    }

    #[inline]
    pub(super) fn timers(&mut self) {
        let Some(ep) = self.episode.as_mut() else {
            return;
        };
        let now = self.now_us;
        let cfg = &self.cfg;
        let p = &mut ep.post;
        if !p.done
            && !p.expired
            && now
                > ep.s_next
                    .saturating_add(ms(cfg.sawtooth_window_ms))
                    .saturating_add(i64::from(cfg.sawtooth_max_us.max(cfg.ramp_max_us)))
        {
            p.expired = true;
            ep.dirty = true;
        }
        if !ep.waited && now >= ep.t_end.saturating_add(ms(cfg.confirm_wait_ms)) {
            ep.waited = true;
            ep.dirty = true;
        }
        let resolve_at = ep.t_end.saturating_add(ms(cfg.resolve_ms));
        if !ep.dirty && now < resolve_at {
            return; // the common case: nothing new
        }
        let mut ep = *ep;
        if !ep.decided && self.ready(&ep) {
            ep.decided = true;
        }
        if ep.decided && ep.dirty {
            self.evaluate(&mut ep);
        }
        self.episode = Some(ep);
        if now >= resolve_at {
            self.finalise(true);
        }
    }
}
