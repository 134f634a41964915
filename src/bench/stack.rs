//! The platform under test: this binary's roles started as child processes against the bench's
//! database and a JetStream stream of its own, as an operator runs them (`serve`, `relay`,
//! `project`, `guardrail`, or `dev` alone). Their output goes to log files; their resident memory is
//! sampled while they run.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// How long a role may take to answer `/readyz` (the guardrail loads the embedding model).
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How often resident memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// What every role of one stack shares.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub database_url: String,
    pub nats_url: String,
    /// The JetStream stream and its subject prefix (of this bench database only).
    pub stream: String,
    pub subject_prefix: String,
    /// Where the roles' logs go.
    pub log_dir: PathBuf,
    /// Evidence files of this stack.
    pub storage_dir: PathBuf,
    /// PostgreSQL connections of the gateway's pool.
    pub gateway_connections: u32,
}

impl StackConfig {
    /// `exe name` with this stack's environment (database, stream, storage, keys; rate limits off,
    /// warnings only in the logs): a role, or an operator's command against the same platform.
    pub fn command(&self, exe: &Path, name: &str) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg(name)
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", &self.nats_url)
            .env("BW_EVENTS_STREAM", &self.stream)
            .env("BW_EVENTS_SUBJECT_PREFIX", &self.subject_prefix)
            .env("BW_RATE_LIMIT_SCALE", "0")
            .env("BW_LOG_FORMAT", "json")
            .env("BW_LOG", "warn")
            .env("BW_STORAGE", "local")
            .env("BW_STORAGE_DIR", &self.storage_dir)
            .env("BW_HEARTBEAT_KEY_FILE", self.log_dir.join("heartbeat-key"))
            .env("BW_LOG_KEY_FILE", self.log_dir.join("log-key"))
            .env(
                "BW_API_KEY_SECRET",
                "betterworld-bench-api-key-secret-not-for-production",
            )
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

/// One running role.
#[derive(Debug)]
struct Role {
    name: String,
    child: Child,
}

/// The running roles, the gateway's base URL and their memory samples.
#[derive(Debug)]
pub struct Stack {
    roles: Vec<Role>,
    /// `http://127.0.0.1:PORT` of the role serving the public API.
    pub base: String,
    rss: Arc<Mutex<HashMap<String, u64>>>,
    sampler: tokio::task::JoinHandle<()>,
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

impl Stack {
    /// Starts `roles` (names of subcommands; the first with an HTTP API — `serve` or `dev` — is the
    /// gateway) and waits until every one is ready.
    pub async fn start(config: &StackConfig, roles: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(config, roles, &[]).await
    }

    /// [`Stack::start`] with `vars` added to every role's environment.
    pub async fn start_with(
        config: &StackConfig,
        roles: &[&str],
        vars: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.log_dir)
            .with_context(|| format!("cannot create {}", config.log_dir.display()))?;
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let mut started = Vec::new();
        let mut base = String::new();
        let mut ready_urls = Vec::new();
        for name in roles {
            let port = free_port()?;
            let mut cmd = config.command(&exe, name);
            cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
            let addr = format!("127.0.0.1:{port}");
            if matches!(*name, "serve" | "dev") {
                cmd.env("BW_HTTP_ADDR", &addr).env(
                    "BW_DB_MAX_CONNECTIONS",
                    config.gateway_connections.to_string(),
                );
                if base.is_empty() {
                    base = format!("http://{addr}");
                }
            } else {
                cmd.env("BW_OPS_ADDR", &addr);
            }
            let log = log_file(&config.log_dir, name)?;
            cmd.stdout(log.try_clone()?).stderr(log);
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start `betterworld {name}`"))?;
            ready_urls.push((name.to_string(), format!("http://{addr}/readyz")));
            started.push(Role {
                name: name.to_string(),
                child,
            });
        }
        let mut stack = Self {
            roles: started,
            base,
            rss: Arc::default(),
            sampler: tokio::spawn(async {}),
        };
        let http = reqwest::Client::new();
        for (name, url) in ready_urls {
            stack
                .wait_ready(&http, &name, &url, &config.log_dir)
                .await?;
        }
        stack.sampler = stack.sample_rss();
        Ok(stack)
    }

    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        name: &str,
        url: &str,
        log_dir: &Path,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        let mut wait = Duration::from_millis(20);
        loop {
            if let Some(role) = self.roles.iter_mut().find(|r| r.name == name)
                && let Some(status) = role.child.try_wait()?
            {
                anyhow::bail!(
                    "`betterworld {name}` exited ({status}) before it was ready; see {}",
                    log_dir.join(format!("{name}.log")).display()
                );
            }
            if let Ok(response) = http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "`betterworld {name}` not ready within {READY_WITHIN:?}; see {}",
                    log_dir.join(format!("{name}.log")).display()
                );
            }
            // Polling a child process that sends no signal when it is ready.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(250));
        }
    }

    /// Samples every role's resident memory until the stack stops, keeping the largest value.
    fn sample_rss(&self) -> tokio::task::JoinHandle<()> {
        let pids: Vec<(String, u32)> = self
            .roles
            .iter()
            .filter_map(|r| r.child.id().map(|pid| (r.name.clone(), pid)))
            .collect();
        let rss = self.rss.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(RSS_EVERY);
            loop {
                ticker.tick().await;
                for (name, pid) in &pids {
                    if let Some(kb) = resident_kb(*pid) {
                        let mut map = rss.lock().unwrap_or_else(|e| e.into_inner());
                        let max = map.entry(name.clone()).or_default();
                        *max = (*max).max(kb);
                    }
                }
            }
        })
    }

    /// Forgets the memory samples so far (the next reading covers what follows only).
    pub fn reset_rss(&self) {
        self.rss.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The largest resident memory of `role` sampled since the last reset, in MB.
    pub fn peak_rss_mb(&self, role: &str) -> Option<f64> {
        self.rss
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(role)
            .map(|kb| *kb as f64 / 1024.0)
    }

    /// CPU seconds `role` has used so far (user + system), from `/proc` (Linux).
    pub fn cpu_seconds(&self, role: &str) -> Option<f64> {
        let pid = self.roles.iter().find(|r| r.name == role)?.child.id()?;
        cpu_seconds(pid)
    }

    /// Stops every role with SIGTERM (they drain) and waits for them; one that does not exit within
    /// `grace` is killed. Returns each role's time to exit, `None` for one that was killed.
    pub async fn stop(mut self, grace: Duration) -> Vec<(String, Option<Duration>)> {
        self.sampler.abort();
        let started = Instant::now();
        for role in &self.roles {
            if let Some(pid) = role.child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        let mut stopped = Vec::new();
        for role in &mut self.roles {
            let left = grace.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, role.child.wait()).await.is_err() {
                tracing::warn!(role = %role.name, "did not drain in time: killed");
                let _ = role.child.kill().await;
                stopped.push((role.name.clone(), None));
            } else {
                stopped.push((role.name.clone(), Some(started.elapsed())));
            }
        }
        stopped
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// `VmRSS` of a process in kB, from `/proc` (Linux).
fn resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// User + system CPU seconds of a process (fields 14 and 15 of `/proc/PID/stat`, in clock ticks of
/// 1/100 s, Linux's `USER_HZ` on every architecture it runs on).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / 100.0)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total CPU ticks of the whole machine, from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_proc_status_when_parsed_then_vm_rss_is_read_in_kb() {
        let status = "Name:\tbetterworld\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(51234));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn given_a_proc_stat_line_when_parsed_then_user_and_system_ticks_add_up() {
        let stat =
            "4242 (bw (serve) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(machine_ticks().is_some_and(|(busy, total)| busy <= total && total > 0));
    }

    #[test]
    fn given_this_process_when_its_memory_is_read_then_it_is_some() {
        assert!(resident_kb(std::process::id()).is_some_and(|kb| kb > 0));
    }
}
