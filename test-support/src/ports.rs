//! Loopback ports held until use. Binding port 0, reading the port and
//! dropping the socket leaves a window in which another test (or anything on
//! the machine) takes the port before the server meant for it binds. A
//! [`HeldPort`] stays bound the whole time: bound but not listening, so a
//! client is refused exactly as by a closed port, and no one else can bind it.
//! A child process then inherits the socket itself
//! ([`crate::Process::spawn_holding`]) and starts listening on it.
//!
//! Servers in this process need no held port: bind `127.0.0.1:0` and keep the
//! listener. Servers that report their address (the collector logs
//! `listening on http://…`) are started on port 0 and read back.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};

/// A port on 127.0.0.1, bound and not listening: connecting to it is refused.
pub struct HeldPort {
    socket: Socket,
    port: u16,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .expect("binding 127.0.0.1:0");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound socket has an address")
            .port();
        HeldPort { socket, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The descriptor a child inherits (pass it on its command line).
    pub fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// Start listening (connections now queue instead of being refused), for
    /// a child that takes an inherited socket only when it is listening
    /// already (nginx's `NGINX=fd;` hand-over).
    pub fn listen(&self) {
        self.socket.listen(1024).expect("listening on a held port");
    }

    /// Make the descriptor survive `exec` (or not); only
    /// [`crate::Process::spawn_holding`] does this, under its spawn lock.
    pub(crate) fn inheritable(&self, yes: bool) {
        self.socket
            .set_cloexec(!yes)
            .expect("setting FD_CLOEXEC on a held port");
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_refuses_connections_and_cannot_be_bound_again() {
        let held = HeldPort::new();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, held.port()));
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            std::net::TcpListener::bind(addr).is_err(),
            "the port is taken"
        );
        drop(held);
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "released on drop"
        );
    }
}
