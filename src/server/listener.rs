//! Listening sockets: one SO_REUSEPORT listener per core per bind address, and the accept loop.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures::channel::oneshot;
use glommio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use super::core::Core;
use super::{connection, cron, log, CONNECTED};
use crate::config::Config;

/// Redis 7.0's reply to a non-loopback client in protected mode (its typos included).
const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// One `bind` entry resolved: the address and whether failing to bind it is fatal.
fn bind_addrs(config: &Config) -> Vec<(SocketAddr, bool)> {
    config
        .bind
        .iter()
        .filter_map(|b| {
            let (optional, host) = match b.strip_prefix('-') {
                Some(h) => (true, h),
                None => (false, b.as_str()),
            };
            let host = match host {
                "*" => "0.0.0.0",
                "::*" => "::",
                h => h,
            };
            let ip: IpAddr = match host.parse() {
                Ok(ip) => ip,
                Err(_) => (host, 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip())?,
            };
            Some((SocketAddr::new(ip, config.port), !optional))
        })
        .collect()
}

/// The addresses every core listens on, decided once by [`check_addresses`].
static LISTEN_ADDRS: OnceLock<Vec<(SocketAddr, bool)>> = OnceLock::new();

/// Set when a core failed to listen on a required address: the process exits with 1.
pub static LISTEN_FAILED: AtomicBool = AtomicBool::new(false);

/// Held while the server runs: one abstract Unix socket per listening address.
pub struct AddressLocks(#[allow(dead_code)] Vec<std::os::unix::net::UnixListener>);

/// Claims `addr` for this process: an abstract Unix socket named after it.
///
/// Every core listens with SO_REUSEPORT, which the kernel lets any process of
/// the same user join: two percores started at the same moment would both
/// pass a plain bind test and then silently share the port. The abstract name
/// is exclusive, per network namespace like the port, and released by the
/// kernel when the process exits, however it exits.
fn lock_address(addr: SocketAddr) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("percore-listen-{addr}");
    let ua = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    std::os::unix::net::UnixListener::bind_addr(&ua)
}

/// Binds `addr` without listening (as std's bind, SO_REUSEADDR set, no
/// SO_REUSEPORT): EADDRINUSE when another server has it. Never listening
/// matters: a client connecting during start-up would otherwise land in this
/// socket's backlog and be reset when it closes, instead of being refused and
/// retrying until the real listeners are up.
fn bind_probe(addr: SocketAddr) -> std::io::Result<()> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())
}

/// Checks, before any executor starts, that every required address can be
/// bound, and claims them all; keep the returned locks until the server stops.
///
/// SO_REUSEPORT would let a second percore silently share the port with a
/// first one; a plain bind here fails with EADDRINUSE instead, as in Redis,
/// and the address lock closes the window between this check and the listen.
pub fn check_addresses(config: &Config) -> Result<AddressLocks, String> {
    let addrs = bind_addrs(config);
    if addrs.is_empty() {
        return Err("Configured to not listen anywhere, exiting.".into());
    }
    let mut locks = Vec::new();
    let mut usable = Vec::new();
    for (addr, required) in addrs {
        let res = lock_address(addr).and_then(|lock| {
            bind_probe(addr)?;
            Ok(lock)
        });
        match res {
            Ok(lock) => {
                locks.push(lock);
                usable.push((addr, required));
            }
            Err(e) if required => {
                return Err(format!(
                    "Warning: Could not create server TCP listening socket {addr}: bind: {e}"
                ))
            }
            Err(_) => {}
        }
    }
    if usable.is_empty() {
        return Err("Failed listening on all configured addresses, exiting.".into());
    }
    let _ = LISTEN_ADDRS.set(usable);
    Ok(AddressLocks(locks))
}

/// A non-blocking SO_REUSEPORT listener on `addr`, and its fd.
fn listen(addr: SocketAddr, backlog: i32) -> std::io::Result<(TcpListener, RawFd)> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    let fd = sock.into_raw_fd();
    // SAFETY: the fd is a bound, listening, non-blocking TCP socket that we
    // own; into_raw_fd gave up our ownership, so the listener owns it alone.
    Ok((unsafe { TcpListener::from_raw_fd(fd) }, fd))
}

/// Runs everything a core does until shutdown: listeners, accept loops, cron.
pub async fn serve_core(core: Rc<Core>, ready: Arc<AtomicUsize>) {
    let (addrs, backlog) = {
        let c = core.config.borrow();
        let addrs = match LISTEN_ADDRS.get() {
            Some(a) => a.clone(),
            None => bind_addrs(&c),
        };
        (addrs, c.tcp_backlog)
    };
    let mut accepts = Vec::new();
    for (addr, required) in addrs {
        match listen(addr, backlog) {
            Ok((l, fd)) => {
                let l = Rc::new(l);
                core.listeners.borrow_mut().push((l.clone(), fd));
                let core = core.clone();
                accepts.push(glommio::spawn_local(accept_loop(core, l)).detach());
            }
            Err(e) if required => {
                log::warning(&format!(
                    "Could not create server TCP listening socket {addr}: {e}"
                ));
                LISTEN_FAILED.store(true, Ordering::SeqCst);
                super::SHUTDOWN.store(true, Ordering::SeqCst);
            }
            Err(_) => {}
        }
    }
    if ready.fetch_add(1, Ordering::SeqCst) + 1 == core.nshards {
        log::notice("Ready to accept connections tcp");
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    cron::start(core.clone(), stop_tx);
    let _ = stop_rx.await;
    core.listeners.borrow_mut().clear();
    for a in accepts {
        a.cancel();
    }
    let clients: Vec<_> = core.clients.borrow().by_id.values().cloned().collect();
    for c in clients {
        c.kill();
    }
}

async fn accept_loop(core: Rc<Core>, listener: Rc<TcpListener>) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::verbose(&format!("Accepting client connection: {e}"));
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        if let Err(msg) = admit(&core, peer) {
            reject(&core, stream, msg).await;
            continue;
        }
        glommio::spawn_local(connection::serve(core.clone(), stream)).detach();
    }
}

/// Decides whether a new connection from `peer` may stay: Err(the reply
/// before closing it). Counts it as received (and in `CONNECTED`) or rejected.
pub fn admit(core: &Core, peer: Option<SocketAddr>) -> Result<(), &'static str> {
    let (maxclients, protected, nopass) = {
        let c = core.config.borrow();
        (c.maxclients, c.protected_mode, c.requirepass.is_none())
    };
    // As Redis: maxclients first, then protected mode; a refused
    // connection counts as rejected, not as received.
    if CONNECTED.fetch_add(1, Ordering::Relaxed) >= maxclients as usize {
        CONNECTED.fetch_sub(1, Ordering::Relaxed);
        core.stats.borrow_mut().rejected_connections += 1;
        return Err("-ERR max number of clients reached\r\n");
    }
    if protected && nopass && !peer.is_some_and(|a| is_local_ip(a.ip())) {
        CONNECTED.fetch_sub(1, Ordering::Relaxed);
        core.stats.borrow_mut().rejected_connections += 1;
        return Err(DENIED);
    }
    core.stats.borrow_mut().connections_received += 1;
    Ok(())
}

/// True for the two addresses Redis 7.0 treats as local (not the whole loopback range).
pub fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets() == [127, 0, 0, 1],
        IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    }
}

async fn reject(core: &Rc<Core>, stream: TcpStream, msg: &str) {
    use futures::AsyncWriteExt;
    let mut stream = stream;
    // Best effort, bounded: the client may not read.
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_millis(100)));
    if stream.write_all(msg.as_bytes()).await.is_ok() {
        core.stats.borrow_mut().net_output_bytes += msg.len() as u64;
    }
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_loopback_addresses_are_local() {
        assert!(is_local_ip("127.0.0.1".parse().unwrap()));
        assert!(is_local_ip("::1".parse().unwrap()));
        assert!(!is_local_ip("127.0.0.2".parse().unwrap()));
        assert!(!is_local_ip("10.0.0.1".parse().unwrap()));
    }
}
