//! Readers of the reference tools' output (iputils `ping`, `fping`) and
//! the period arguments fping takes.

/// fping's summaries (`addr : xmt/rcv/%loss = 5/4/20%, ...`, one per
/// target, at exit or on SIGINT), summed: (sent, received). `None` when it
/// printed none (it refused its arguments or died).
pub fn fping_totals(stderr: &str) -> Option<(u64, u64)> {
    let mut seen = false;
    let totals = stderr
        .lines()
        .filter_map(|l| l.split("xmt/rcv/%loss = ").nth(1))
        .filter_map(|v| {
            let mut f = v.split(['/', ',']);
            Some((
                f.next()?.trim().parse::<u64>().ok()?,
                f.next()?.trim().parse::<u64>().ok()?,
            ))
        })
        .inspect(|_| seen = true)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    seen.then_some(totals)
}

/// One `fping -D` line: `[ts] addr : [seq], 64 bytes, 0.045 ms (...)`.
/// Returns (seq, send time µs) for answered probes.
pub fn fping_line(line: &str) -> Option<(u64, f64)> {
    let ts: f64 = line.strip_prefix('[')?.split_once(']')?.0.parse().ok()?;
    let seq: u64 = line.split_once(" : [")?.1.split_once(']')?.0.parse().ok()?;
    let rtt_ms: f64 = line
        .split_once(" bytes, ")?
        .1
        .split_once(" ms")?
        .0
        .parse()
        .ok()?;
    Some((seq, ts * 1e6 - rtt_ms * 1e3))
}

/// A period in ms as fping's `-p` and `-i` take it: up to 4 decimals,
/// no trailing zeros (`1`, `0.05`).
pub fn ms_arg(ms: f64) -> String {
    let s = format!("{ms:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The `-p` of one probe every 1/`rate_hz`.
pub fn period_ms(rate_hz: u32) -> String {
    ms_arg(1000.0 / f64::from(rate_hz))
}

/// `N packets transmitted, M received` from ping's summary.
pub fn ping_summary(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|f| f.split_whitespace().next()?.parse::<u64>().ok());
    Some((nums.next()?, nums.next()?))
}

/// Every `time=` of a ping output, µs.
pub fn ping_times_us(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next())
        .filter_map(|x| x.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fping_and_ping_output() {
        let err = "198.18.0.2 : xmt/rcv/%loss = 5/4/20%, min/avg/max = 0.03/0.04/0.05\n\
                   198.18.0.3 : xmt/rcv/%loss = 7/7/0%\n";
        assert_eq!(fping_totals(err), Some((12, 11)));
        assert_eq!(fping_totals("fping: bad option"), None);
        let (seq, sent) = fping_line(
            "[1700000000.123450] 198.18.0.2 : [3], 64 bytes, 0.045 ms (0.045 avg, 0% loss)",
        )
        .expect("a reply line");
        assert_eq!(seq, 3);
        assert!((sent - (1_700_000_000_123_450.0 - 45.0)).abs() < 1.0);
        assert_eq!(period_ms(1000), "1");
        assert_eq!(period_ms(20_000), "0.05");
        assert_eq!(ms_arg(0.0333333), "0.0333");
        let ping = "64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.051 ms\n\
                    2 packets transmitted, 1 received, 50% packet loss, time 1001ms\n";
        assert_eq!(ping_summary(ping), Some((2, 1)));
        let t = ping_times_us(ping);
        assert!(t.len() == 1 && (t[0] - 51.0).abs() < 1e-9, "{t:?}");
    }
}
