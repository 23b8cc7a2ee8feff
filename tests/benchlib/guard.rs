//! A child process owned by the benchmark: killed by PID and reaped on
//! drop, also when a section fails half-way.

use anyhow::{bail, Result};
use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed (by PID) and reaped on drop.
pub struct Guard(pub Child);

impl Guard {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGINT, so ping and fping print their summaries, then waits up to `t`
    /// (killed after that).
    pub fn interrupt(&mut self, t: Duration) -> Result<()> {
        crate::netns::sh(&["kill", "-INT", &self.pid().to_string()])?;
        self.wait(t).map(|_| ())
    }

    /// Waits up to `t` for the exit; kills it after that.
    pub fn wait(&mut self, t: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + t;
        loop {
            if let Some(s) = self.0.try_wait()? {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                let _ = self.0.kill();
                bail!("pid {} did not exit within {t:?}; killed", self.pid());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to its (piped) stderr; empty if not piped.
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
