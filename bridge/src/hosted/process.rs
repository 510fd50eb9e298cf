//! A stdio server as a child process: newline-delimited JSON-RPC on stdin and stdout, stderr
//! to the log a line at a time. The child is always reaped, and dies with switchboard.

use super::Transport;
use super::error::HostedError;
use super::link::{Link, Proc, Sink};
use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;
use tracing::{debug, info};

/// Environment variables a child gets besides its configured ones, unless it inherits all.
const SAFE_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

pub(super) fn spawn(transport: &Transport, link: Link) -> Result<Arc<Proc>, HostedError> {
    let Transport::Process {
        command,
        args,
        env,
        inherit_env,
        cwd,
    } = transport
    else {
        return Err(HostedError::WrongTransport("process"));
    };
    let mut cmd = Command::new(command);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !inherit_env {
        cmd.env_clear();
        for key in SAFE_ENV {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
    }
    cmd.envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    let mut child = cmd.spawn().map_err(|source| HostedError::Spawn {
        command: command.clone(),
        source,
    })?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(HostedError::NoStdio);
    };
    let (kill_tx, kill_rx) = oneshot::channel();
    let proc = Proc::new(Sink::Stdin(tokio::sync::Mutex::new(stdin)), kill_tx, pid);
    // Reaps the child whatever happens, so none is left a zombie.
    tokio::spawn({
        let name = link.name.clone();
        async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            info!(upstream = %name, pid = ?pid, status = ?status.ok(), "stdio server exited");
        }
    });
    tokio::spawn({
        let name = link.name.clone();
        async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                info!(upstream = %name, "stderr: {line}");
            }
        }
    });
    let reader = proc.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(message) => link.deliver(&reader, message),
                Err(_) => debug!(upstream = %link.name, "not JSON-RPC on stdout: {line}"),
            }
        }
        link.ended(&reader, "stdio");
    });
    Ok(proc)
}

/// The child gets `signal` from the kernel when switchboard dies, even by SIGKILL.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command, signal: nix::sys::signal::Signal) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from));
    }
}
