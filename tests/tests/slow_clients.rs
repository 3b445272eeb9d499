//! Slowloris against the real collector binary with the descriptor limit of
//! a stock systemd unit (1,024): 1,100 connections that send half a request
//! and stop. Another client's `/healthz` must keep answering within 100 ms,
//! and the server must close every slow connection within its header timeout
//! (issue 18, finding 1).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vitalsign_test_support::CollectorProcess;

const SLOW: usize = 1_100;
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

const CONFIG: &str = r#"
[sites.demo]
origins = ["*"]
[connections]
header_read_timeout_secs = 3
"#;

/// One `/healthz` over a fresh connection from `from` (another loopback
/// address than the attacker's); how long until the full answer.
async fn healthz_from(from: &str, addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut conn = socket.connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
        .await
        .expect("/healthz did not answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_cannot_starve_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    // The stock descriptor limit, set for the collector alone (`ulimit -n` in
    // a wrapper that then execs it, so the pid is the collector's).
    let wrapper = dir.path().join("collector-1024-fds.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 1024 || exit 97\nexec {} \"$@\"\n",
            vitalsign_test_support::binary("vitalsign-collector").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let collector = CollectorProcess::start_binary(&wrapper, dir.path(), CONFIG, "127.0.0.1:0");
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", collector.process.child.id())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        nofile.split_whitespace().nth(3) == Some("1024"),
        "the limit did not apply: {nofile}"
    );
    let addr = collector.addr();

    // The attacker, from 127.0.0.1: half a request each, then silence.
    let mut slow: Vec<(TcpStream, Instant)> = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        // The server may already have closed an over-cap connection; a failed
        // write is that, and is checked like the others below.
        let _ = conn
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await;
        slow.push((conn, Instant::now()));
    }

    // Everyone else, from 127.0.0.2, while all of that is held open.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        worst = worst.max(healthz_from("127.0.0.2", addr).await);
    }
    assert!(
        worst < Duration::from_millis(100),
        "/healthz took {worst:?} while {SLOW} slow connections were open"
    );

    // Every slow connection is closed by the server, each within its timeout
    // (plus a scheduling margin), none left for the client to give up on.
    let mut latest = Duration::ZERO;
    let mut waiting = Vec::new();
    for (mut conn, opened) in slow {
        waiting.push(tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let deadline = HEADER_TIMEOUT + Duration::from_secs(2);
            loop {
                let left = deadline.saturating_sub(opened.elapsed());
                match tokio::time::timeout(left, conn.read(&mut buf)).await {
                    // The server may answer 408 before closing; read on to EOF.
                    Ok(Ok(n)) if n > 0 => continue,
                    Ok(_) => return Some(opened.elapsed()),
                    Err(_) => return None,
                }
            }
        }));
    }
    let mut open = 0;
    for task in waiting {
        match task.await.unwrap() {
            Some(took) => latest = latest.max(took),
            None => open += 1,
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of {SLOW} slow connections were still open after {:?}",
        HEADER_TIMEOUT + Duration::from_secs(2)
    );
    assert!(
        latest <= HEADER_TIMEOUT + Duration::from_secs(2),
        "{latest:?}"
    );
    let log = collector.process.log().join("\n");
    assert!(
        !log.contains("Too many open files"),
        "the collector ran out of descriptors:\n{log}"
    );
    // Still serving once the attack is over.
    healthz_from("127.0.0.2", addr).await;
}
