//! A tiny stub resolver for A and AAAA records, in pure Rust.
//!
//! The agent is a static binary: static glibc has no NSS, so `getaddrinfo`
//! cannot be used. This resolver does what a pod needs: `/etc/hosts` first,
//! then UDP queries to the nameservers of `/etc/resolv.conf`, honouring
//! `search`, `ndots`, `timeout` and `attempts` like glibc (the name itself
//! first when it has at least `ndots` dots, else the search list first; a
//! name ending with `.` is absolute). Replies are matched by server address
//! (connected socket), random ID and question. No TCP fallback: A/AAAA
//! answers for a Service name fit in 512 bytes.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
pub const RCODE_NXDOMAIN: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf { nameservers: Vec::new(), ..ResolvConf::default() };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // Up to 3, like glibc; a zone index (`fe80::1%eth0`) is dropped.
                    if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse::<IpAddr>().ok())
                        && c.nameservers.len() < 3
                    {
                        c.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search") => c.search = words.map(|w| w.trim_end_matches('.').to_string()).collect(),
                Some("domain") => {
                    if let Some(d) = words.next() {
                        c.search = vec![d.trim_end_matches('.').to_string()];
                    }
                }
                Some("options") => {
                    for o in words {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|v| v.parse::<usize>().ok()) {
                            c.ndots = n.min(15);
                        } else if let Some(n) = o.strip_prefix("timeout:").and_then(|v| v.parse::<u64>().ok()) {
                            c.timeout = Duration::from_secs(n.clamp(1, 30));
                        } else if let Some(n) = o.strip_prefix("attempts:").and_then(|v| v.parse::<u32>().ok()) {
                            c.attempts = n.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        if c.nameservers.is_empty() {
            c.nameservers = ResolvConf::default().nameservers;
        }
        c
    }

    pub fn load() -> ResolvConf {
        std::fs::read_to_string("/etc/resolv.conf").map(|t| ResolvConf::parse(&t)).unwrap_or_default()
    }

    /// The names to query, in order.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let searched = self.search.iter().filter(|d| !d.is_empty()).map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

#[derive(Debug)]
pub enum DnsError {
    InvalidName,
    NotFound(String),
    Timeout,
    ServerFailure(u8),
    Malformed(&'static str),
    Io(io::Error),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::InvalidName => f.write_str("invalid host name"),
            DnsError::NotFound(n) => write!(f, "no address found for {n}"),
            DnsError::Timeout => f.write_str("DNS query timed out"),
            DnsError::ServerFailure(rc) => write!(f, "DNS server failure (rcode {rc})"),
            DnsError::Malformed(why) => write!(f, "malformed DNS response: {why}"),
            DnsError::Io(e) => write!(f, "DNS query failed: {e}"),
        }
    }
}

/// Encodes a recursive query for `name` (no trailing dot).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    if name.is_empty() || name.len() > 253 {
        return Err(DnsError::InvalidName);
    }
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::InvalidName);
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// A decoded reply: its RCODE and the addresses for the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u8,
    pub addrs: Vec<IpAddr>,
}

/// Decodes a reply to the query (`id`, `name`, `qtype`): A/AAAA records owned
/// by `name` or by a CNAME chain from it. `Ok(None)`: not a reply to this query.
pub fn decode_reply(msg: &[u8], id: u16, name: &str, qtype: u16) -> Result<Option<Reply>, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Malformed("short message"));
    }
    let u16_at = |p: usize| -> Result<u16, DnsError> {
        msg.get(p..p + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(DnsError::Malformed("truncated"))
    };
    if u16_at(0)? != id || msg[2] & 0x80 == 0 || msg[2] & 0x78 != 0 {
        return Ok(None);
    }
    let rcode = msg[3] & 0x0F;
    let qd = u16_at(4)?;
    let an = u16_at(6)?;
    let mut p = 12;
    if qd != 1 {
        return Ok(None);
    }
    let (qname, next) = read_name(msg, p)?;
    if !qname.eq_ignore_ascii_case(name) || u16_at(next)? != qtype || u16_at(next + 2)? != CLASS_IN {
        return Ok(None);
    }
    p = next + 4;
    let mut records = Vec::new();
    for _ in 0..an {
        let (owner, next) = read_name(msg, p)?;
        let rtype = u16_at(next)?;
        let class = u16_at(next + 2)?;
        let len = usize::from(u16_at(next + 8)?);
        let start = next + 10;
        let data = msg.get(start..start + len).ok_or(DnsError::Malformed("truncated record"))?;
        p = start + len;
        if class != CLASS_IN {
            continue;
        }
        let value = match (rtype, len) {
            (TYPE_A, 4) => Rdata::Addr(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                Rdata::Addr(IpAddr::V6(Ipv6Addr::from(b)))
            }
            (TYPE_CNAME, _) => Rdata::Cname(read_name(msg, start)?.0),
            _ => continue,
        };
        records.push((owner, rtype, value));
    }
    // Follow the CNAME chain from the question name.
    let mut owners = vec![name.to_ascii_lowercase()];
    for _ in 0..8 {
        let mut grew = false;
        for (owner, _, v) in &records {
            if let Rdata::Cname(target) = v {
                let target = target.to_ascii_lowercase();
                if owners.iter().any(|o| o.eq_ignore_ascii_case(owner)) && !owners.contains(&target) {
                    owners.push(target);
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    let addrs = records
        .iter()
        .filter(|(owner, t, _)| *t == qtype && owners.iter().any(|o| o.eq_ignore_ascii_case(owner)))
        .filter_map(|(_, _, v)| match v {
            Rdata::Addr(a) => Some(*a),
            Rdata::Cname(_) => None,
        })
        .collect();
    Ok(Some(Reply { rcode, addrs }))
}

enum Rdata {
    Addr(IpAddr),
    Cname(String),
}

/// Reads a (possibly compressed) name at `p`; returns it (no trailing dot) and the position after it.
fn read_name(msg: &[u8], mut p: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(p).ok_or(DnsError::Malformed("truncated name"))?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                return Ok((name, end.unwrap_or(p + 1)));
            }
            0x00 => {
                let label = msg.get(p + 1..p + 1 + len as usize).ok_or(DnsError::Malformed("truncated label"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| if b.is_ascii_graphic() { *b as char } else { '?' }));
                if name.len() > 255 {
                    return Err(DnsError::Malformed("name too long"));
                }
                p += 1 + len as usize;
            }
            0xC0 => {
                let lo = *msg.get(p + 1).ok_or(DnsError::Malformed("truncated pointer"))?;
                end.get_or_insert(p + 2);
                jumps += 1;
                if jumps > 32 {
                    return Err(DnsError::Malformed("compression loop"));
                }
                p = (usize::from(len & 0x3F) << 8) | usize::from(lo);
            }
            _ => return Err(DnsError::Malformed("bad label type")),
        }
    }
}

/// Addresses of `name` in `/etc/hosts` text.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    text.lines()
        .filter_map(|l| {
            let mut w = l.split('#').next()?.split_whitespace();
            let ip = w.next()?.parse::<IpAddr>().ok()?;
            w.any(|h| h.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

/// Resolves `host` to addresses (IPv4 first), within `deadline`.
pub fn resolve(host: &str, deadline: Instant) -> Result<Vec<IpAddr>, DnsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if let Ok(text) = std::fs::read_to_string("/etc/hosts") {
        let addrs = hosts_lookup(&text, host);
        if !addrs.is_empty() {
            return Ok(addrs);
        }
    }
    resolve_with(&ResolvConf::load(), host, deadline)
}

pub fn resolve_with(conf: &ResolvConf, host: &str, deadline: Instant) -> Result<Vec<IpAddr>, DnsError> {
    let mut last = DnsError::NotFound(host.to_string());
    for name in conf.candidates(host) {
        match query_name(conf, &name, deadline) {
            Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
            Ok(_) => {} // NXDOMAIN or no data: next candidate
            Err(DnsError::InvalidName) => return Err(DnsError::InvalidName),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(DnsError::Timeout);
        }
    }
    Err(match last {
        DnsError::NotFound(_) => DnsError::NotFound(host.to_string()),
        e => e,
    })
}

/// A and AAAA of one name, trying each server `attempts` times.
fn query_name(conf: &ResolvConf, name: &str, deadline: Instant) -> Result<Vec<IpAddr>, DnsError> {
    let mut last = DnsError::Timeout;
    for _ in 0..conf.attempts {
        for server in &conf.nameservers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DnsError::Timeout);
            }
            match exchange(*server, name, conf.timeout.min(left)) {
                Ok(addrs) => return Ok(addrs),
                Err(DnsError::InvalidName) => return Err(DnsError::InvalidName),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// Sends the A and AAAA queries to one server and waits for both replies.
fn exchange(server: SocketAddr, name: &str, timeout: Duration) -> Result<Vec<IpAddr>, DnsError> {
    let ids = [random_u16(), random_u16()];
    let types = [TYPE_A, TYPE_AAAA];
    let queries = [encode_query(ids[0], name, TYPE_A)?, encode_query(ids[1], name, TYPE_AAAA)?];
    let bind: SocketAddr = if server.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(bind).map_err(DnsError::Io)?;
    sock.connect(server).map_err(DnsError::Io)?;
    for q in &queries {
        sock.send(q).map_err(DnsError::Io)?;
    }
    let until = Instant::now() + timeout;
    let mut replies: [Option<Reply>; 2] = [None, None];
    let mut buf = [0u8; 1500];
    while replies.iter().any(Option::is_none) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DnsError::Timeout);
        }
        sock.set_read_timeout(Some(left)).map_err(DnsError::Io)?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(DnsError::Timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DnsError::Io(e)),
        };
        for i in 0..2 {
            if replies[i].is_none()
                && let Ok(Some(r)) = decode_reply(&buf[..n], ids[i], name, types[i])
            {
                replies[i] = Some(r);
                break;
            }
        }
    }
    let [Some(a), Some(aaaa)] = replies else {
        return Err(DnsError::Timeout);
    };
    for r in [&a, &aaaa] {
        if r.rcode != 0 && r.rcode != RCODE_NXDOMAIN {
            return Err(DnsError::ServerFailure(r.rcode));
        }
    }
    Ok(a.addrs.into_iter().chain(aaaa.addrs).collect())
}

/// Random bits from the kernel (no RNG crate needed).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    if n != 8 {
        // Never expected; fall back to the clock.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_ne_bytes(b)
}

fn random_u16() -> u16 {
    random_u64() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const K8S: &str = "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5 timeout:2 attempts:3\n";

    #[test]
    fn parses_resolv_conf() {
        let c = ResolvConf::parse(K8S);
        assert_eq!(c.nameservers, vec!["10.96.0.10:53".parse().unwrap()]);
        assert_eq!(c.search, vec!["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]);
        assert_eq!((c.ndots, c.timeout, c.attempts), (5, Duration::from_secs(2), 3));
        let c = ResolvConf::parse(
            "# nothing\nnameserver fe80::1%eth0\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\ndomain example.com.",
        );
        assert_eq!(c.nameservers.len(), 3);
        assert_eq!(c.nameservers[0], "[fe80::1]:53".parse().unwrap());
        assert_eq!(c.search, vec!["example.com"]);
        assert_eq!(ResolvConf::parse("").nameservers, ResolvConf::default().nameservers);
    }

    #[test]
    fn search_order() {
        let c = ResolvConf::parse(K8S);
        assert_eq!(
            c.candidates("lifecycle-webhook.lifecycle-jobs-system.svc"),
            vec![
                "lifecycle-webhook.lifecycle-jobs-system.svc.ns1.svc.cluster.local",
                "lifecycle-webhook.lifecycle-jobs-system.svc.svc.cluster.local",
                "lifecycle-webhook.lifecycle-jobs-system.svc.cluster.local",
                "lifecycle-webhook.lifecycle-jobs-system.svc",
            ]
        );
        assert_eq!(
            c.candidates("a.b.c.d.e.f"),
            vec![
                "a.b.c.d.e.f",
                "a.b.c.d.e.f.ns1.svc.cluster.local",
                "a.b.c.d.e.f.svc.cluster.local",
                "a.b.c.d.e.f.cluster.local"
            ]
        );
        assert_eq!(c.candidates("abs.example."), vec!["abs.example"]);
    }

    #[test]
    fn encodes_queries() {
        let q = encode_query(0xABCD, "a.bc", TYPE_AAAA).unwrap();
        assert_eq!(q, [0xAB, 0xCD, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 28, 0, 1]);
        assert!(encode_query(1, "", TYPE_A).is_err());
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    /// A reply to `query` with the given answer records (owner as a pointer to the question).
    fn reply(query: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = answers.len() as u8;
        for (t, data) in answers {
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn decodes_replies() {
        let q = encode_query(7, "svc.example", TYPE_A).unwrap();
        let r = reply(&q, 0, &[(TYPE_A, vec![10, 0, 0, 1]), (TYPE_A, vec![10, 0, 0, 2])]);
        let d = decode_reply(&r, 7, "svc.example", TYPE_A).unwrap().unwrap();
        assert_eq!(d.addrs, vec!["10.0.0.1".parse::<IpAddr>().unwrap(), "10.0.0.2".parse().unwrap()]);
        // Case-insensitive question match.
        assert!(decode_reply(&r, 7, "SVC.example", TYPE_A).unwrap().is_some());
        // Another ID, name or type: not ours.
        assert!(decode_reply(&r, 8, "svc.example", TYPE_A).unwrap().is_none());
        assert!(decode_reply(&r, 7, "other.example", TYPE_A).unwrap().is_none());
        assert!(decode_reply(&r, 7, "svc.example", TYPE_AAAA).unwrap().is_none());
        // The query itself (QR clear) is not a reply.
        assert!(decode_reply(&q, 7, "svc.example", TYPE_A).unwrap().is_none());
        // NXDOMAIN.
        let r = reply(&q, RCODE_NXDOMAIN, &[]);
        assert_eq!(decode_reply(&r, 7, "svc.example", TYPE_A).unwrap().unwrap(), Reply { rcode: 3, addrs: vec![] });
        // Truncated answers are errors, not panics.
        let r = reply(&q, 0, &[(TYPE_A, vec![10, 0, 0, 1])]);
        for cut in 0..r.len() {
            let _ = decode_reply(&r[..cut], 7, "svc.example", TYPE_A);
        }
    }

    #[test]
    fn decodes_aaaa_and_cname_chains() {
        let q = encode_query(9, "web", TYPE_AAAA).unwrap();
        // web CNAME real.example (at offset 12+5+4 = after question we append names)
        let mut cname = vec![4];
        cname.extend_from_slice(b"real");
        cname.extend_from_slice(&[7]);
        cname.extend_from_slice(b"example");
        cname.push(0);
        let mut r = reply(&q, 0, &[(TYPE_CNAME, cname)]);
        // real.example AAAA ::1, owner written as a pointer to the CNAME target (offset of rdata).
        let target_at = r.len() - 14;
        r[7] = 3;
        r.extend_from_slice(&[0xC0, target_at as u8, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        r.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        // An unrelated AAAA is ignored.
        r.extend_from_slice(&[5, b'o', b't', b'h', b'e', b'r', 0, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        r.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        let d = decode_reply(&r, 9, "web", TYPE_AAAA).unwrap().unwrap();
        assert_eq!(d.addrs, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    }

    #[test]
    fn compression_loops_are_errors() {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xC0, 12]);
        assert!(matches!(decode_reply(&m, 1, "x", TYPE_A), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn hosts_file() {
        let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n10.0.0.5 web web.ns # x\n";
        assert_eq!(hosts_lookup(text, "localhost").len(), 2);
        assert_eq!(hosts_lookup(text, "WEB.ns."), vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(hosts_lookup(text, "comment").is_empty());
    }

    /// A real exchange against a fake server on loopback, with the search list.
    #[test]
    fn resolves_against_a_local_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut seen = Vec::new();
            // 2 names x (A + AAAA)
            for _ in 0..4 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let q = buf[..n].to_vec();
                let (name, next) = read_name(&q, 12).unwrap();
                let qtype = u16::from_be_bytes([q[next], q[next + 1]]);
                seen.push(format!("{name}/{qtype}"));
                let r = if name == "svc.ns1.local" && qtype == TYPE_A {
                    reply(&q, 0, &[(TYPE_A, vec![10, 1, 2, 3])])
                } else if name == "svc.ns1.local" {
                    reply(&q, 0, &[])
                } else {
                    reply(&q, RCODE_NXDOMAIN, &[])
                };
                server.send_to(&r, from).unwrap();
            }
            seen
        });
        let conf = ResolvConf {
            nameservers: vec![addr],
            search: vec!["nope.local".into(), "ns1.local".into()],
            ndots: 5,
            timeout: Duration::from_secs(2),
            attempts: 1,
        };
        let addrs = resolve_with(&conf, "svc", Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(addrs, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        let mut seen = t.join().unwrap();
        seen.sort();
        assert_eq!(seen, vec!["svc.nope.local/1", "svc.nope.local/28", "svc.ns1.local/1", "svc.ns1.local/28"]);
    }

    #[test]
    fn times_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conf = ResolvConf {
            nameservers: vec![server.local_addr().unwrap()],
            search: vec![],
            ndots: 1,
            timeout: Duration::from_millis(100),
            attempts: 2,
        };
        let t = Instant::now();
        let e = resolve_with(&conf, "x.example", Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, DnsError::Timeout), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
