//! Three hosts for `smartmesh node`s: each in its own network namespace, linked in a line by
//! veth pairs (Alice - Brandon - Carol), so their traffic really crosses a link that a test can
//! take down; and an uplink from each to this host, where the test forwards the chain, the
//! watcher and the relayer, so going online is bringing the uplink up. Where namespaces cannot
//! be made (no privileges, or `SMARTMESH_NO_NETNS` set), [`Village::create`] says so and
//! returns `None`: the nodes then run on loopback.

use std::{net::Ipv4Addr, process::Command};

use tokio::net::{TcpListener, TcpStream};

/// The hosts and their links.
pub(crate) struct Village {
    namespaces: Vec<String>,
    /// Host-side names of the uplinks.
    uplinks: Vec<String>,
    /// Subnet base: 10.<net>.x.y, distinct per test process.
    net: u8,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

fn ip(args: &[&str]) -> eyre::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    eyre::ensure!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl Village {
    /// Three namespaces linked 0 - 1 - 2, each with an uplink; `None` when this user cannot
    /// make namespaces.
    pub(crate) fn create(tag: &str) -> eyre::Result<Option<Self>> {
        let pid = std::process::id();
        let net = 100 + (pid % 100) as u8;
        let namespaces: Vec<String> = (0..3).map(|n| format!("sm{tag}{pid}-{n}")).collect();
        if std::env::var_os("SMARTMESH_NO_NETNS").is_some() {
            eprintln!("SMARTMESH_NO_NETNS is set: the nodes run on loopback");
            return Ok(None);
        }
        if let Err(error) = ip(&["netns", "add", &namespaces[0]]) {
            // CI runs as root: there the namespace version must run, not the fallback.
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
            if root && std::env::var("CI").as_deref() == Ok("true") {
                eyre::bail!("CI runs as root, yet network namespaces cannot be made: {error}");
            }
            eprintln!(
                "network namespaces cannot be made here ({error}): the nodes run on loopback"
            );
            return Ok(None);
        }
        let mut village = Self {
            namespaces: namespaces[..1].to_vec(),
            uplinks: Vec::new(),
            net,
            forwarders: Vec::new(),
        };
        for name in &namespaces[1..] {
            ip(&["netns", "add", name])?;
            village.namespaces.push(name.clone());
        }
        for n in 0..3 {
            let ns = &village.namespaces[n];
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            // The uplink: 10.net.(10+n).1 on this host, .2 in the namespace.
            let (host, inside) = (format!("u{pid}h{n}"), format!("u{pid}n{n}"));
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside, "netns", ns,
            ])?;
            ip(&[
                "addr",
                "add",
                &format!("10.{net}.{}.1/30", 10 + n),
                "dev",
                &host,
            ])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.{net}.{}.2/30", 10 + n),
                "dev",
                &inside,
            ])?;
            ip(&["-n", ns, "link", "set", &inside, "up"])?;
            village.uplinks.push(host);
        }
        // The line: link n joins host n (.1) and host n+1 (.2) on 10.net.n.0/24.
        for n in 0..2 {
            let (a, b) = (village.link_end(n, n), village.link_end(n, n + 1));
            ip(&[
                "-n",
                &village.namespaces[n],
                "link",
                "add",
                &a,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &village.namespaces[n + 1],
            ])?;
            for (host, end, last) in [(n, &a, 1), (n + 1, &b, 2)] {
                let ns = &village.namespaces[host];
                ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("10.{net}.{n}.{last}/24"),
                    "dev",
                    end,
                ])?;
                ip(&["-n", ns, "link", "set", end, "up"])?;
            }
        }
        Ok(Some(village))
    }

    fn link_end(&self, link: usize, host: usize) -> String {
        format!("l{}x{link}h{host}", std::process::id())
    }

    /// The namespace of host `n`.
    pub(crate) fn namespace(&self, n: usize) -> &str {
        &self.namespaces[n]
    }

    /// Brings link `link` (0: hosts 0-1, 1: hosts 1-2) up or down, at both ends.
    pub(crate) fn set_link(&self, link: usize, up: bool) -> eyre::Result<()> {
        let state = if up { "up" } else { "down" };
        for host in [link, link + 1] {
            ip(&[
                "-n",
                &self.namespaces[host],
                "link",
                "set",
                &self.link_end(link, host),
                state,
            ])?;
        }
        Ok(())
    }

    /// Brings host `n`'s uplink (its way to the chain and the services) up or down.
    pub(crate) fn set_online(&self, n: usize, up: bool) -> eyre::Result<()> {
        ip(&[
            "link",
            "set",
            &self.uplinks[n],
            if up { "up" } else { "down" },
        ])
    }

    /// Forwards `url`'s service (on loopback) to host `n` over its uplink; returns the URL
    /// host `n` reaches it at.
    pub(crate) async fn forward(&mut self, n: usize, url: &str) -> eyre::Result<String> {
        let target = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let address = Ipv4Addr::new(10, self.net, 10 + n as u8, 1);
        let listener = TcpListener::bind((address, 0)).await?;
        let port = listener.local_addr()?.port();
        self.forwarders.push(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
        Ok(format!("http://{address}:{port}"))
    }

    /// Host `n`'s address on link `link`, where its node listens.
    pub(crate) fn address(&self, link: usize, host: usize) -> String {
        format!(
            "10.{}.{link}.{}",
            self.net,
            if host == link { 1 } else { 2 }
        )
    }
}

impl Drop for Village {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
        // Deleting a namespace deletes its veth ends, and so their peers on this host.
        for name in &self.namespaces {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
