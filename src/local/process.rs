//! Child processes that never outlive their owner: own process group, parent-death signal,
//! exit reported to async code, SIGTERM-then-SIGKILL stop, SIGKILL on drop.
//!
//! Each child is spawned *and waited for* by a dedicated std thread. `PR_SET_PDEATHSIG` fires
//! when the thread that forked the child exits, not when the process does; a thread that lives
//! exactly as long as the child makes the signal mean "the js-mcp process died", whichever
//! tokio runtime (a test's, the cluster's) asked for the spawn.

use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code; a process killed by a signal gets 128 + the signal number, as shells report it.
    pub code: i32,
    /// The signal that killed the process, if one did.
    pub signal: Option<i32>,
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit { code, signal: None },
            (None, Some(sig)) => Exit {
                code: 128 + sig,
                signal: Some(sig),
            },
            (None, None) => Exit {
                code: 255,
                signal: None,
            },
        }
    }
}

/// A running (or finished) child process, leader of its own process group.
///
/// When the child ends, the rest of its process group is killed (container semantics).
/// Dropping the handle SIGKILLs the whole group if the child is still running, so a dropped
/// owner (a cancelled task, a runtime shutting down) never leaves processes behind.
#[derive(Debug)]
pub struct ChildProcess {
    pid: u32,
    exit: watch::Receiver<Option<Exit>>,
}

impl ChildProcess {
    /// Spawns `cmd` in its own process group with SIGKILL as parent-death signal; `log` (when
    /// given) receives stdout and stderr, appended.
    pub async fn spawn(mut cmd: Command, log: Option<&Path>) -> crate::Result<ChildProcess> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| crate::Error::io(format!("opening log {}", path.display()), e))?;
                let err = file
                    .try_clone()
                    .map_err(|e| crate::Error::io(format!("opening log {}", path.display()), e))?;
                cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd.stdin(Stdio::null());
        cmd.process_group(0);
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
        // functions (prctl, getppid, _exit through nix/libc wrappers); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                // The parent may have died between fork and prctl: then nobody would kill us.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::other("parent exited before exec"));
                }
                Ok(())
            });
        }

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let thread_name = format!("child-{}", short_name(&program));
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(child) => child,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let pid = child.id();
                let _ = started_tx.send(Ok(pid));
                let exit = match child.wait() {
                    Ok(status) => Exit::from(status),
                    Err(_) => Exit {
                        code: 255,
                        signal: None,
                    },
                };
                // Like a container whose main process ended: whatever it left running in its
                // group goes too. Done here, right after reaping, so the group id cannot have
                // been reused yet; later signals to an ended child are never sent.
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = exit_tx.send(Some(exit));
            })
            .map_err(|e| crate::Error::io(format!("starting a thread to run {program}"), e))?;
        let pid = started_rx
            .await
            .map_err(|_| crate::Error::Other(format!("the thread spawning {program} died")))?
            .map_err(|e| crate::Error::io(format!("starting {program}"), e))?;
        Ok(ChildProcess { pid, exit: exit_rx })
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit, if the process has ended.
    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// A receiver that changes once, when the process ends (for `select!` loops).
    pub fn exit_receiver(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// Waits for the process to end.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.clone();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The waiting thread is gone without a report: treat as ended.
                return (*rx.borrow()).unwrap_or(Exit {
                    code: 255,
                    signal: None,
                });
            }
        }
    }

    /// Sends `signal` to the whole process group (children of the child included), unless
    /// the child has ended (its group was killed then, and its id may be reused).
    pub fn signal_group(&self, signal: Signal) {
        if self.exited().is_some() {
            return;
        }
        // ESRCH (no such group) is the normal "already gone" answer.
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    /// SIGTERM to the group, then SIGKILL when it has not ended after `grace`.
    pub async fn stop(&self, grace: Duration) -> Exit {
        if let Some(exit) = self.exited() {
            return exit;
        }
        self.signal_group(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                self.signal_group(Signal::SIGKILL);
                self.wait().await
            }
        }
    }

    /// Blocking variant of [`ChildProcess::stop`] for `Drop` and non-async callers.
    pub fn stop_blocking(&self, grace: Duration) {
        stop_all_blocking(&[self], grace);
    }

    /// Blocks until the exit is recorded or `limit` passes (after SIGKILL the kernel needs a
    /// moment; waiting lets our thread reap the child so no zombie is left to `init`).
    fn wait_blocking(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.exited().is_none() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// SIGTERM to every process at once, SIGKILL to those still running after `grace`, then a
/// short wait until each is reaped.
pub fn stop_all_blocking(processes: &[&ChildProcess], grace: Duration) {
    for p in processes {
        if p.exited().is_none() {
            p.signal_group(Signal::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + grace;
    for p in processes {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        p.wait_blocking(left);
    }
    for p in processes {
        p.signal_group(Signal::SIGKILL);
    }
    for p in processes {
        p.wait_blocking(Duration::from_secs(2));
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.signal_group(Signal::SIGKILL);
    }
}

/// Whether a process with this pid exists (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised command name) is the state; Z = zombie, X = dead.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> crate::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| crate::Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| crate::Error::io("reading a bound port", e))?
        .port();
    Ok(port)
}

fn short_name(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    base.chars().take(9).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_exit_code_of_a_finished_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]);
        let child = ChildProcess::spawn(cmd, None).await.unwrap();
        assert_eq!(child.wait().await.code, 7);
    }

    #[tokio::test]
    async fn stop_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let mut cmd = Command::new("sh");
        // The grandchild ignores SIGTERM; only the group SIGKILL ends it.
        cmd.args([
            "-c",
            &format!(
                "sh -c 'trap \"\" TERM; echo $$ > {}; exec sleep 60' & wait",
                pidfile.display()
            ),
        ]);
        let child = ChildProcess::spawn(cmd, None).await.unwrap();
        let mut grandchild = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = text.trim().parse::<u32>()
            {
                grandchild = Some(pid);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let grandchild = grandchild.unwrap();
        assert!(pid_alive(grandchild));
        child.stop(Duration::from_millis(300)).await;
        for _ in 0..200 {
            if !pid_alive(grandchild) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(!pid_alive(grandchild), "grandchild {grandchild} survived");
    }

    #[tokio::test]
    async fn background_jobs_die_with_their_leader() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("sleep 60 & echo $! > {}", pidfile.display())]);
        let child = ChildProcess::spawn(cmd, None).await.unwrap();
        assert_eq!(child.wait().await.code, 0);
        let bg: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for _ in 0..200 {
            if !pid_alive(bg) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(!pid_alive(bg), "background job {bg} outlived its leader");
    }

    #[tokio::test]
    async fn missing_program_is_a_clear_error() {
        let cmd = Command::new("/nonexistent/js-mcp-test-program");
        let err = ChildProcess::spawn(cmd, None).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/js-mcp-test-program"));
    }
}
