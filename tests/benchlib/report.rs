//! The Markdown a benchmark prints as it goes (and writes to `--out`),
//! with the machine header every recorded run starts with, and the
//! section loop that times each section and notes the machine's load.

use crate::procstat;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// Markdown collected as it is printed.
#[derive(Default)]
pub struct Report {
    md: String,
}

impl Report {
    /// Prints one line and keeps it.
    pub fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.md.push_str(s.as_ref());
        self.md.push('\n');
    }

    /// Prints a Markdown table and a blank line after it.
    pub fn table(&mut self, head: &[&str], rows: &[Vec<String>]) {
        self.line(format!("| {} |", head.join(" | ")));
        self.line(format!("|{}", "---|".repeat(head.len())));
        for r in rows {
            self.line(format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }

    /// Writes everything printed so far to `path`.
    pub fn write(&self, path: &Path, tool: &str) -> Result<()> {
        std::fs::write(path, &self.md)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("{tool}: wrote {}", path.display());
        Ok(())
    }

    /// Runs `f` as section `name`: a failure is reported in the Markdown
    /// (the other sections still run), and a line after it gives its
    /// length, how busy the whole machine was and the load average.
    pub fn section(&mut self, name: &str, f: impl FnOnce(&mut Report) -> Result<()>) -> Result<()> {
        let busy0 = procstat::machine_ticks()?;
        let t = Instant::now();
        if let Err(e) = f(self) {
            self.line(format!("**{name} failed:** {e:#}\n"));
        }
        let busy = procstat::machine_busy(busy0, procstat::machine_ticks()?);
        self.line(format!(
            "_{name}: {:.0} s; machine {:.0} % busy (all CPUs) during it; load average after: {}_\n",
            t.elapsed().as_secs_f64(),
            busy * 100.0,
            procstat::loadavg()
        ));
        Ok(())
    }

    /// The header of every recorded run: CPUs, model, kernel, date and
    /// load; the sidecar binary with the git revision; the reference
    /// tools' versions (each a command whose first output line names it).
    pub fn machine(&mut self, sidecar: &Path, tools: &[&[&str]]) {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
            .unwrap_or("?")
            .trim()
            .to_string();
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let rev = first_line(&[
            "git",
            "-C",
            &crate::repo_root().to_string_lossy(),
            "describe",
            "--always",
            "--dirty",
        ]);
        self.line(format!(
            "Machine: {nproc} CPUs, {model}, Linux {}; {}; load average at start: {}",
            kernel.trim(),
            first_line(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
            procstat::loadavg()
        ));
        let tools: Vec<String> = tools.iter().map(|t| first_line(t)).collect();
        self.line(format!(
            "Sidecar: {} (git {rev}); reference tools: {}\n",
            sidecar.display(),
            tools.join(", ")
        ));
    }
}

/// The first line a command prints (stdout, then stderr), trimmed; `?` if
/// it cannot run.
pub fn first_line(args: &[&str]) -> String {
    let Some((cmd, rest)) = args.split_first() else {
        return "?".into();
    };
    std::process::Command::new(cmd)
        .args(rest)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// Unless `MIGWATCH_SIDECAR` is set (by `--sidecar`), points it at the
/// `migwatch-sidecar` built next to the running benchmark (the release
/// folder `scripts/bench-*.sh` build into). Call before any thread starts.
pub fn default_sidecar_next_to_exe() {
    if std::env::var_os("MIGWATCH_SIDECAR").is_some() {
        return;
    }
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("migwatch-sidecar")))
        .filter(|p| p.is_file())
    {
        std::env::set_var("MIGWATCH_SIDECAR", p);
    }
}

/// A benchmark's `main`: runs `run`, prints an error as `tool: error: …`
/// and exits 1 on failure. Every guard has been dropped by the time it
/// exits.
pub fn main_of(tool: &str, run: impl FnOnce() -> Result<()>) -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{tool}: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// The value of `--only`: section names separated by commas, each one of
/// `known` (else an error naming it, with the usage).
pub fn parse_sections(value: &str, known: &[&str], usage: &str) -> Result<Vec<String>> {
    let only: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = only.iter().find(|s| !known.contains(&s.as_str())) {
        anyhow::bail!("--only: unknown section {bad:?}\n{usage}");
    }
    Ok(only)
}
